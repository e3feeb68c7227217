package controller

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/relocvol/relocvol/heartbeat"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

// fakeDocker is an engine in memory for the agent's unit tests; the agent
// runs against real dockerd in e2e/cluster.
type fakeDocker struct {
	events chan events.Message
	// images, when set, are the images the engine has; others are pulled.
	images map[string]bool
	pulls  map[string]string // image -> error message of its pull
	mu     sync.Mutex
	byName map[string]*container.InspectResponse
	calls  []string
	seq    int
}

func newFakeDocker() *fakeDocker {
	return &fakeDocker{byName: map[string]*container.InspectResponse{}, events: make(chan events.Message, 10)}
}

func (f *fakeDocker) add(name string, running bool, labels map[string]string, vols ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	c := &container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: fmt.Sprintf("id%d", f.seq), Name: "/" + name,
			State: &container.State{Running: running}, HostConfig: &container.HostConfig{}},
		Config: &container.Config{Image: "img", Labels: labels},
	}
	for _, v := range vols {
		c.Mounts = append(c.Mounts, container.MountPoint{Type: mount.TypeVolume, Name: v, Driver: "relocvol:latest", Destination: "/" + v, RW: true})
	}
	f.byName[name] = c
}

func (f *fakeDocker) find(id string) (string, *container.InspectResponse) {
	for n, c := range f.byName {
		if c.ID == id {
			return n, c
		}
	}
	return "", nil
}

// mountedVolumes plays the plugin: a volume is mounted while a running
// container uses it.
func (f *fakeDocker) mountedVolumes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.byName {
		if c.State.Running {
			for _, m := range c.Mounts {
				out = append(out, m.Name)
			}
		}
	}
	return out
}

func (f *fakeDocker) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeDocker) state(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.byName[name]
	switch {
	case !ok:
		return "absent"
	case c.State.Running:
		return "running"
	default:
		return "exited"
	}
}

func (f *fakeDocker) ContainerList(_ context.Context, opts container.ListOptions) ([]container.Summary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []container.Summary
	for n, c := range f.byName {
		if !opts.All && !c.State.Running {
			continue
		}
		state := "exited"
		if c.State.Running {
			state = "running"
		}
		if opts.Filters.Len() > 0 && c.Config.Labels[LabelRelocate] == "" {
			continue // the agent filters by label
		}
		out = append(out, container.Summary{ID: c.ID, Names: []string{"/" + n}, Labels: c.Config.Labels, State: state, Mounts: c.Mounts})
	}
	return out, nil
}

func (f *fakeDocker) ContainerInspect(_ context.Context, id string) (container.InspectResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, c := f.find(id); c != nil {
		return *c, nil
	}
	return container.InspectResponse{}, fmt.Errorf("no container %s", id)
}

type notFound struct{ error }

func (notFound) NotFound() {}

func (f *fakeDocker) ContainerCreate(_ context.Context, cfg *container.Config, hc *container.HostConfig, _ *network.NetworkingConfig, _ *ocispec.Platform, name string) (container.CreateResponse, error) {
	f.mu.Lock()
	f.calls = append(f.calls, "create "+name)
	if f.images != nil && !f.images[cfg.Image] {
		f.mu.Unlock()
		return container.CreateResponse{}, notFound{fmt.Errorf("No such image: %s", cfg.Image)}
	}
	f.mu.Unlock()
	f.add(name, false, cfg.Labels)
	return container.CreateResponse{ID: f.byName[name].ID}, nil
}

func (f *fakeDocker) set(id, call string, running bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, c := f.find(id)
	if c == nil {
		return fmt.Errorf("no container %s", id)
	}
	f.calls = append(f.calls, call+" "+n)
	c.State.Running = running
	return nil
}

func (f *fakeDocker) ContainerStart(_ context.Context, id string, _ container.StartOptions) error {
	f.mu.Lock()
	if c, ok := f.byName[id]; ok { // Docker takes a name too
		id = c.ID
	}
	f.mu.Unlock()
	return f.set(id, "start", true)
}

func (f *fakeDocker) ContainerStop(_ context.Context, id string, _ container.StopOptions) error {
	return f.set(id, "stop", false)
}

func (f *fakeDocker) ContainerRemove(_ context.Context, id string, _ container.RemoveOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, c := f.find(id)
	if c == nil {
		return fmt.Errorf("no container %s", id)
	}
	f.calls = append(f.calls, "remove "+n)
	delete(f.byName, n)
	return nil
}

func (f *fakeDocker) ImagePull(_ context.Context, ref string, _ image.PullOptions) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "pull "+ref)
	if msg, ok := f.pulls[ref]; ok && msg != "" {
		// Docker reports most pull failures inside the progress stream.
		return io.NopCloser(strings.NewReader(`{"status":"Pulling"}` + "\n" + `{"errorDetail":{"message":"` + msg + `"},"error":"` + msg + `"}` + "\n")), nil
	}
	f.images[ref] = true
	return io.NopCloser(strings.NewReader(`{"status":"Downloaded newer image for ` + ref + `"}` + "\n")), nil
}

func (f *fakeDocker) Events(context.Context, events.ListOptions) (<-chan events.Message, <-chan error) {
	return f.events, make(chan error)
}

// userDid plays an action of the user on a container, as Docker reports it.
func (f *fakeDocker) userDid(name string, action events.Action, running bool) {
	f.mu.Lock()
	if action == events.ActionDestroy {
		delete(f.byName, name)
	} else if c, ok := f.byName[name]; ok {
		c.State.Running = running
	}
	f.mu.Unlock()
	f.events <- events.Message{Type: events.ContainerEventType, Action: action,
		Actor: events.Actor{Attributes: map[string]string{"name": name, LabelRelocate: "true"}}}
}

var relocate = map[string]string{LabelRelocate: "true"}

// agentEnv is one host's agent on a real etcd with a fake engine.
func agentEnv(t *testing.T) (*store.Store, *heartbeat.Heartbeat, *fakeDocker, *Agent, context.Context) {
	st, ctx := testenv.Store(t, "/test")
	hb := newHeartbeat(t, st, "a")
	if err := hb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := st.CreateVolume(ctx, store.Volume{Name: "db", State: store.StateReady}); err != nil {
		t.Fatal(err)
	}
	d := newFakeDocker()
	rec := NewRecorder(st, "a", nil, quietLog())
	go rec.Run(ctx)
	return st, hb, d, NewAgent(st, d, hb, rec, nil, "a", &fakeVolumes{d: d}, testKeySource, quietLog()), ctx
}

// The agent records a relocatable container that uses relocvol volumes,
// ignores one that does not, and reports where it runs.
func TestAgentRecordsApps(t *testing.T) {
	st, _, d, a, ctx := agentEnv(t)
	d.add("pg", true, map[string]string{LabelRelocate: "true", LabelHosts: "a,b"}, "db")
	d.add("web", true, relocate, "not-ours")
	d.add("plain", true, nil, "db")
	go a.Run(ctx)
	testenv.WaitFor(t, "pg recorded and running", 10*time.Second, func() bool {
		r, _ := st.ListRunning(ctx)
		return r["pg"] == "a"
	})
	apps, _ := st.ListApps(ctx)
	pg := apps["pg"].Value
	if len(apps) != 1 || pg.Host != "a" || len(pg.Volumes) != 1 || pg.Volumes[0] != "db" || len(pg.Allowed) != 2 || pg.Spec.Image != "img" {
		t.Fatalf("apps %+v", apps)
	}
	if err := verifyApp(testAppKey, pg); err != nil {
		t.Fatalf("the recorded app does not verify: %v", err)
	}
}

// Lease lost: the agent stops its containers. Back with the app still
// placed here: it restarts it. Back with the app placed elsewhere: it
// removes its copy and never starts it.
func TestAgentSelfFences(t *testing.T) {
	for _, tc := range []struct {
		name      string
		movedTo   string
		wantState string
	}{
		{name: "nobody took it: restarted", wantState: "running"},
		{name: "placed elsewhere meanwhile: removed", movedTo: "b", wantState: "absent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, hb, d, a, ctx := agentEnv(t)
			d.add("pg", true, relocate, "db")
			// Not an app, but it uses a relocvol volume mounted here: it
			// must stop too, and comes back where it was.
			d.add("job", true, nil, "db2")
			go a.Run(ctx)
			testenv.WaitFor(t, "pg recorded", 10*time.Second, func() bool { _, _, err := st.GetApp(ctx, "pg"); return err == nil })

			// The lease is gone (as after a partition longer than the TTL).
			if _, err := st.Client().Revoke(ctx, hb.Lease()); err != nil {
				t.Fatal(err)
			}
			testenv.WaitFor(t, "pg and job stopped", 10*time.Second, func() bool { return d.state("pg") == "exited" && d.state("job") == "exited" })
			if tc.movedTo != "" {
				app, rev, _ := st.GetApp(ctx, "pg")
				app.Host = tc.movedTo
				if _, err := st.PutApp(ctx, app, rev); err != nil {
					t.Fatal(err)
				}
			}
			testenv.WaitFor(t, "heartbeat rejoined", 10*time.Second, hb.Alive)
			testenv.WaitFor(t, "pg "+tc.wantState, 10*time.Second, func() bool { return d.state("pg") == tc.wantState })
			testenv.WaitFor(t, "job running again", 10*time.Second, func() bool { return d.state("job") == "running" })
			time.Sleep(2500 * time.Millisecond) // a full reconcile period: nothing changes any more
			if got := d.state("pg"); got != tc.wantState {
				t.Fatalf("pg %s after settling, want %s; docker calls %v", got, tc.wantState, d.log())
			}
			for _, c := range d.log() {
				if tc.movedTo != "" && c == "start pg" {
					t.Fatalf("the copy of an app placed elsewhere was started: %v", d.log())
				}
			}
		})
	}
}

// An app placed here by a relocation is created and started once its
// volume is free, and the relocation is finished with a timeline.
func TestAgentStartsRelocatedApp(t *testing.T) {
	st, _, d, a, ctx := agentEnv(t)
	started := time.Now().UTC()
	rel := &store.Relocation{ID: "pg-1", Kind: store.KindMove, From: "b", To: "a", Started: started}
	if _, err := st.PutApp(ctx, signed(t, store.App{Name: "pg", Host: "a", Volumes: []string{"db"}, Spec: store.AppSpec{Image: "img", Labels: relocate}, Relocation: rel}), 0); err != nil {
		t.Fatal(err)
	}
	// b still holds the volume and is alive: the agent waits.
	hbB := newHeartbeat(t, st, "b")
	bctx, stopB := context.WithCancel(ctx)
	if err := hbB.Start(bctx); err != nil {
		t.Fatal(err)
	}
	_, vrev, _ := st.GetVolume(ctx, "db")
	if _, err := st.PutClaim(ctx, store.Claim{Volume: "db", Host: "b", Epoch: 1}, 0, vrev); err != nil {
		t.Fatal(err)
	}
	go a.Run(ctx)
	time.Sleep(2500 * time.Millisecond)
	if d.state("pg") != "absent" {
		t.Fatalf("pg created while b still holds its volume: %v", d.log())
	}
	// b releases it (as its plugin does after the last unmount).
	c, crev, _ := st.GetClaim(ctx, "db")
	if _, err := st.PutClaim(ctx, c.Released(""), crev, vrev); err != nil {
		t.Fatal(err)
	}
	stopB()
	testenv.WaitFor(t, "pg running", 10*time.Second, func() bool { return d.state("pg") == "running" })
	testenv.WaitFor(t, "relocation finished", 10*time.Second, func() bool {
		app, _, _ := st.GetApp(ctx, "pg")
		return app.Relocation == nil
	})
	testenv.WaitFor(t, "timeline done", 10*time.Second, func() bool {
		ev, _ := st.ListEvents(ctx, 20)
		return len(ev) > 0 && ev[len(ev)-1].Phase == "done" && ev[len(ev)-1].Relocation == "pg-1"
	})
	if calls := fmt.Sprint(d.log()); calls != "[create pg start pg]" {
		t.Errorf("docker calls %s", calls)
	}
}

// What the user does to a container placed here is kept: a stopped app is
// relocated stopped, a removed one is forgotten.
func TestAgentFollowsTheUser(t *testing.T) {
	st, _, d, a, ctx := agentEnv(t)
	d.add("pg", true, relocate, "db")
	go a.Run(ctx)
	testenv.WaitFor(t, "pg recorded", 10*time.Second, func() bool { _, _, err := st.GetApp(ctx, "pg"); return err == nil })
	d.userDid("pg", events.ActionStop, false)
	testenv.WaitFor(t, "pg recorded as stopped", 10*time.Second, func() bool { app, _, _ := st.GetApp(ctx, "pg"); return app.Stopped })
	d.userDid("pg", events.ActionStart, true)
	testenv.WaitFor(t, "pg recorded as started", 10*time.Second, func() bool { app, _, _ := st.GetApp(ctx, "pg"); return !app.Stopped })
	d.userDid("pg", events.ActionDestroy, false)
	testenv.WaitFor(t, "pg forgotten", 10*time.Second, func() bool { _, _, err := st.GetApp(ctx, "pg"); return err != nil })
	if calls := d.log(); len(calls) != 0 {
		t.Errorf("the agent acted on the user's container: %v", calls)
	}
}

// A relocated app whose image is not on the new host is pulled first; a
// failed pull is in the timeline with Docker's message.
func TestAgentPullsMissingImage(t *testing.T) {
	for _, tc := range []struct {
		name, pullErr, want string
	}{
		{name: "pulled", want: "[create pg pull img create pg start pg]"},
		{name: "pull fails", pullErr: "manifest for img not found", want: "[create pg pull img"}, // and again at the next reconcile
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _, d, a, ctx := agentEnv(t)
			d.images, d.pulls = map[string]bool{}, map[string]string{"img": tc.pullErr}
			rel := &store.Relocation{ID: "pg-1", Kind: store.KindFailover, From: "b", To: "a", Started: time.Now()}
			if _, err := st.PutApp(ctx, signed(t, store.App{Name: "pg", Host: "a", Volumes: []string{"db"}, Spec: store.AppSpec{Image: "img", Labels: relocate}, Relocation: rel}), 0); err != nil {
				t.Fatal(err)
			}
			go a.Run(ctx)
			want := "done"
			if tc.pullErr != "" {
				want = "failed"
			}
			var last store.Event
			testenv.WaitFor(t, "timeline "+want, 10*time.Second, func() bool {
				ev, _ := st.ListEvents(ctx, 20)
				if len(ev) == 0 {
					return false
				}
				last = ev[len(ev)-1]
				return last.Phase == want
			})
			if tc.pullErr != "" && !strings.Contains(last.Error, "No such image: img; pulling it failed: "+tc.pullErr) {
				t.Errorf("failed event %+v", last)
			}
			if got := fmt.Sprint(d.log()); !strings.HasPrefix(got, tc.want) || strings.Contains(got, "start") != (tc.pullErr == "") {
				t.Errorf("docker calls %s, want %s", got, tc.want)
			}
		})
	}
}
