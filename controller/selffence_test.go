package controller

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/relocvol/relocvol/heartbeat"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

// cuttableEnv is agentEnv with a heartbeat that cut stops for good, as a
// partition from etcd does: no renewal, no rejoin.
func cuttableEnv(t *testing.T) (*store.Store, *heartbeat.Heartbeat, *fakeDocker, context.Context, func()) {
	st, ctx := testenv.Store(t, "/test")
	hb := newHeartbeat(t, st, "a")
	hctx, cut := context.WithCancel(ctx)
	if err := hb.Start(hctx); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := st.CreateVolume(ctx, store.Volume{Name: "db", State: store.StateReady}); err != nil {
		t.Fatal(err)
	}
	return st, hb, newFakeDocker(), ctx, cut
}

// gaugeValue reads one unlabelled metric of m.
func gaugeValue(t *testing.T, m *Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func running(name string, labels map[string]string, vols ...string) container.Summary {
	c := container.Summary{ID: "id-" + name, Names: []string{"/" + name}, Labels: labels, State: "running"}
	for _, v := range vols {
		c.Mounts = append(c.Mounts, container.MountPoint{Type: mount.TypeVolume, Name: v})
	}
	return c
}

func TestUnusedVolumes(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	age := time.Minute
	for _, tc := range []struct {
		name    string
		mounted map[string]time.Time
		running []container.Summary
		minAge  time.Duration
		want    []string
	}{
		{name: "nothing mounted", running: []container.Summary{running("pg", nil, "db")}, minAge: age},
		{name: "used by a running container", mounted: map[string]time.Time{"db": now.Add(-time.Hour)},
			running: []container.Summary{running("pg", nil, "db")}, minAge: age},
		{name: "old and unused", mounted: map[string]time.Time{"db": now.Add(-2 * time.Minute)}, minAge: age, want: []string{"db"}},
		{name: "mounted just now, its container not running yet", mounted: map[string]time.Time{"db": now.Add(-5 * time.Second)}, minAge: age},
		{name: "recovered at start and unused: at once", mounted: map[string]time.Time{"db": {}}, minAge: age, want: []string{"db"}},
		{name: "self-fencing: any age", mounted: map[string]time.Time{"db": now, "logs": now}, running: []container.Summary{running("x", nil, "logs")},
			want: []string{"db"}},
		{name: "a bind mount of the same name is not a volume", mounted: map[string]time.Time{"db": {}},
			running: []container.Summary{{Names: []string{"/b"}, State: "running", Mounts: []container.MountPoint{{Type: mount.TypeBind, Name: "db"}}}}, minAge: age, want: []string{"db"}},
		{name: "sorted", mounted: map[string]time.Time{"b": {}, "a": {}, "c": {}}, minAge: age, want: []string{"a", "b", "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := unusedVolumes(tc.mounted, tc.running, now, tc.minAge)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("unusedVolumes = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestToStop(t *testing.T) {
	list := []container.Summary{
		running("pg", relocate, "db"),
		running("web", relocate), // labelled: stopped even without a mounted volume
		running("job", nil, "db"),
		running("other", nil, "local-vol"),
	}
	var got []string
	for _, c := range toStop(list, map[string]time.Time{"db": {}}) {
		got = append(got, containerName(c.Names))
	}
	if want := []string{"pg", "web", "job"}; !slices.Equal(got, want) {
		t.Fatalf("toStop = %v, want %v", got, want)
	}
}

// fakeVolumes plays the plugin's counts: a volume is mounted while a
// running container uses it (Docker unmounts it when the container
// stops), and stuck volumes stay counted until dropped.
type fakeVolumes struct {
	d       *fakeDocker
	mu      sync.Mutex
	stuck   map[string]time.Time
	dropped []string
}

func (f *fakeVolumes) Mounts() map[string]time.Time {
	out := map[string]time.Time{}
	for _, v := range f.d.mountedVolumes() {
		out[v] = time.Now()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for v, t := range f.stuck {
		out[v] = t
	}
	return out
}

func (f *fakeVolumes) Drop(_ context.Context, name, _ string, _ time.Time) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.stuck[name]; !ok {
		return false, nil
	}
	delete(f.stuck, name)
	f.dropped = append(f.dropped, name)
	return true, nil
}

func (f *fakeVolumes) left() []string {
	var out []string
	for v := range f.Mounts() {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// flakyDocker fails its first container listings and the first stops of
// some containers, as an engine under load does.
type flakyDocker struct {
	*fakeDocker
	mu         sync.Mutex
	listFails  int
	stopFails  map[string]int
	neverStops map[string]bool
}

func (f *flakyDocker) ContainerList(ctx context.Context, opts container.ListOptions) ([]container.Summary, error) {
	f.mu.Lock()
	if !opts.All && f.listFails > 0 {
		f.listFails--
		f.mu.Unlock()
		return nil, errors.New("Cannot connect to the Docker daemon")
	}
	f.mu.Unlock()
	return f.fakeDocker.ContainerList(ctx, opts)
}

func (f *flakyDocker) ContainerStop(ctx context.Context, id string, opts container.StopOptions) error {
	name, _ := f.find(id)
	f.mu.Lock()
	if f.neverStops[name] {
		f.mu.Unlock()
		return errors.New("cannot stop container: tried to kill container, but did not receive an exit event")
	}
	if f.stopFails[name] > 0 {
		f.stopFails[name]--
		f.mu.Unlock()
		return errors.New("request timed out")
	}
	f.mu.Unlock()
	return f.fakeDocker.ContainerStop(ctx, id, opts)
}

// Self-fencing does not give up after one try: a failed listing, a stop
// that fails once and a volume counted here that no container uses are
// all dealt with by later passes, until nothing relocvol is mounted here.
func TestSelfFencingRepeatsUntilNothingIsLeft(t *testing.T) {
	st, hb, fd, ctx, cut := cuttableEnv(t)
	d := &flakyDocker{fakeDocker: fd, listFails: 2, stopFails: map[string]int{"pg": 2}}
	vols := &fakeVolumes{d: fd, stuck: map[string]time.Time{"orphan": time.Now()}}
	rec := NewRecorder(st, "a", nil, quietLog())
	a := NewAgent(st, d, hb, rec, nil, "a", vols, testKeySource, quietLog())
	fd.add("pg", true, relocate, "db")
	fd.add("job", true, nil, "logs")
	go a.Run(ctx)
	testenv.WaitFor(t, "pg recorded", 10*time.Second, func() bool { _, _, err := st.GetApp(ctx, "pg"); return err == nil })

	cut() // no more renewals: the host passes its cut-off
	testenv.WaitFor(t, "nothing relocvol left on the host", 10*time.Second, func() bool { return len(vols.left()) == 0 })
	if fd.state("pg") != "exited" || fd.state("job") != "exited" {
		t.Fatalf("pg %s, job %s: want both stopped", fd.state("pg"), fd.state("job"))
	}
	if !slices.Equal(vols.dropped, []string{"orphan"}) {
		t.Fatalf("dropped %v, want the orphan only (Docker unmounts what its containers used)", vols.dropped)
	}
	sf := a.SelfFencing()
	if !sf.Active || len(sf.Left) != 0 || sf.Passes < 3 {
		t.Fatalf("self-fencing state %+v: want active, nothing left, after at least 3 passes", sf)
	}
}

// What self-fencing cannot stop is reported, not forgotten.
func TestSelfFencingReportsWhatIsLeft(t *testing.T) {
	st, hb, fd, ctx, cut := cuttableEnv(t)
	d := &flakyDocker{fakeDocker: fd, neverStops: map[string]bool{"pg": true}}
	a := NewAgent(st, d, hb, NewRecorder(st, "a", nil, quietLog()), NewMetrics(nil), "a", &fakeVolumes{d: fd}, testKeySource, quietLog())
	fd.add("pg", true, relocate, "db")
	go a.Run(ctx)
	testenv.WaitFor(t, "pg recorded", 10*time.Second, func() bool { _, _, err := st.GetApp(ctx, "pg"); return err == nil })
	cut()
	testenv.WaitFor(t, "the stuck container reported", 10*time.Second, func() bool {
		sf := a.SelfFencing()
		return sf.Active && slices.Equal(sf.Left, []string{"db"}) && strings.Contains(sf.Error, "pg")
	})
	if got := gaugeValue(t, a.m, "relocvol_self_fencing_volumes_left"); got != 1 {
		t.Fatalf("relocvol_self_fencing_volumes_left = %v, want 1", got)
	}
}

// A live host collects mount IDs Docker will never unmount: a volume
// counted here that no container of the engine uses (recovered at start,
// or mounted long ago), never one mounted a moment ago for a container
// that is still starting, nor one a running container uses.
func TestAgentCollectsOrphanMounts(t *testing.T) {
	st, hb, fd, _, ctx := agentEnv(t)
	vols := &fakeVolumes{d: fd, stuck: map[string]time.Time{"recovered": {}, "old": time.Now().Add(-time.Hour), "starting": time.Now()}}
	a := NewAgent(st, fd, hb, NewRecorder(st, "a", nil, quietLog()), nil, "a", vols, testKeySource, quietLog())
	a.orphanEvery = 200 * time.Millisecond
	fd.add("pg", true, nil, "db")
	go a.Run(ctx)
	testenv.WaitFor(t, "orphans dropped", 10*time.Second, func() bool {
		vols.mu.Lock()
		defer vols.mu.Unlock()
		return len(vols.dropped) == 2
	})
	time.Sleep(time.Second)
	slices.Sort(vols.dropped)
	if !slices.Equal(vols.dropped, []string{"old", "recovered"}) {
		t.Fatalf("dropped %v, want old and recovered", vols.dropped)
	}
	if got := vols.left(); !slices.Equal(got, []string{"db", "starting"}) {
		t.Fatalf("left %v, want db (used by pg) and starting", got)
	}
}

// Without an agent's own collection (or before it runs), an operator
// clears orphaned mount IDs through the API; never while a running
// container uses the volume.
func TestForgetMounts(t *testing.T) {
	st, hb, fd, ctx, _ := cuttableEnv(t)
	vols := &fakeVolumes{d: fd, stuck: map[string]time.Time{"orphan": time.Now()}}
	c := New(Options{Host: "a", Store: st, Docker: fd, Beat: hb, Volumes: vols, Log: quietLog()})
	fd.add("pg", true, nil, "db")
	for _, tc := range []struct{ volume, want string }{
		{"db", `volume "db" is used by the running container pg on host a`},
		{"nosuch", `host a counts no mount of volume "nosuch"`},
		{"../x", `invalid volume name "../x"`},
	} {
		if err := c.ForgetMounts(ctx, tc.volume); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ForgetMounts(%s) = %v, want %q", tc.volume, err, tc.want)
		}
	}
	if err := c.ForgetMounts(ctx, "orphan"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(vols.dropped, []string{"orphan"}) {
		t.Fatalf("dropped %v", vols.dropped)
	}
	l, _ := c.Local(ctx)
	if !l.Alive || len(l.Mounted) != 1 || l.Mounted[0].Name != "db" {
		t.Fatalf("Local = %+v", l)
	}
}
