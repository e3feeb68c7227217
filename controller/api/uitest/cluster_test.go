// Package uitest drives the status page (controller/api/ui) in a real
// headless Chromium, Debian's chromium, against the real API handler and
// the real controller on a real embedded etcd, and checks what an operator
// sees through the page's DOM: hosts, volumes, apps, the relocations'
// timelines, live updates, an etcd outage, the bearer token, and that the
// page loads nothing from anywhere but the host it came from. It needs no
// Docker; it skips without chromium (fails under CI=true).
package uitest

import (
	"context"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/controller"
	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/heartbeat"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

const (
	prefix = "/uitest"
	token  = "uitest-7f3a9c"
)

// cluster is three hosts on a real etcd, as the page of host a shows them:
// a (this host, the leader, in maintenance before an upgrade) runs db; b
// runs web since the failover that fenced c, which is dead.
type cluster struct {
	ctx  context.Context
	st   *store.Store // straight to etcd: the other hosts, and the timeline's writer
	url  string       // host a's API
	etcd *cutter      // between host a's controller and etcd
	// The relocations of the fixture: web's failover and db's earlier move.
	failover, move store.Relocation
}

// noFencing is the leader's fencing method: nobody dies in this test
// after the start, and the real methods have their own tests.
type noFencing struct{}

func (noFencing) Name() string                        { return "scsi3" }
func (noFencing) Fence(context.Context, string) error { return nil }

func quietLog() *logrus.Logger {
	log := logrus.New()
	log.SetLevel(logrus.ErrorLevel)
	return log
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	endpoints := testenv.Etcd(t)
	st := store.New(testenv.EtcdClient(t, endpoints), prefix)
	u, err := url.Parse(endpoints[0])
	if err != nil {
		t.Fatal(err)
	}
	cut := newCutter(t, u.Host)
	viaCut := store.New(testenv.EtcdClient(t, []string{"http://" + cut.addr()}), prefix)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := quietLog()

	beats := map[string]*heartbeat.Heartbeat{}
	for _, h := range []string{"a", "b"} {
		hb := heartbeat.New(st, h, 3*time.Second, t.TempDir(), "v0.9.2", log)
		hb.Info = func(h *store.Host) { h.Agent = true }
		if err := hb.Start(ctx); err != nil {
			t.Fatal(err)
		}
		beats[h] = hb
	}
	ctl := controller.New(controller.Options{Host: "a", Version: "v0.9.2", Store: viaCut, Beat: beats["a"], Fencer: noFencing{}, Log: log})
	ctl.Run(ctx)
	srv := httptest.NewServer(api.Handler(ctl, api.Options{Token: token, Metrics: ctl.Metrics(), Log: log}))
	t.Cleanup(srv.Close) // after the browser's cleanup, which ends the event stream
	cl := &cluster{ctx: ctx, st: st, url: srv.URL, etcd: cut}
	cl.write(t, beats)
	testenv.WaitFor(t, "a leads", 15*time.Second, func() bool { l, _ := st.Leader(ctx); return l == "a" })
	return cl
}

// write puts the fixture's records into etcd, through the store as the
// hosts write them.
func (cl *cluster) write(t *testing.T, beats map[string]*heartbeat.Heartbeat) {
	t.Helper()
	ctx, st, now := cl.ctx, cl.st, time.Now().UTC()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	volume := func(name string, size int64, fs string, c store.Claim, created time.Time, grow ...store.Grow) {
		t.Helper()
		v := store.Volume{Name: name, Backend: "lvm", Size: size, FS: fs, State: store.StateReady, CreatedAt: created, CreatedBy: "b"}
		for _, g := range grow {
			v.Grow = &g
		}
		_, _, rev, err := st.CreateVolume(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		c.Volume = name
		must(st.PutClaim(ctx, c, 0, rev))
	}
	// db-data was just grown from b; a, which mounts it, grows its filesystem.
	volume("db-data", 20<<30, "xfs", store.Claim{Host: "a", Epoch: 7, Mounts: map[string]time.Time{"9c1f…db": now.Add(-49 * time.Minute)}, Since: now.Add(-49 * time.Minute)}, now.Add(-72*time.Hour),
		store.Grow{Size: 20 << 30, From: 10 << 30, By: "b", At: now, Owner: "a"})
	volume("web-data", 5<<30, "ext4", store.Claim{Host: "b", Epoch: 4, Mounts: map[string]time.Time{"41ab…web": now.Add(-3 * time.Minute)}, Since: now.Add(-3 * time.Minute)}, now.Add(-30*time.Hour))
	volume("scratch", 1<<30, "ext4", store.Claim{Epoch: 2, TakenFrom: "c"}, now.Add(-5*time.Hour))

	must(st.PutApp(ctx, store.App{Name: "db", Host: "a", Volumes: []string{"db-data"}, Allowed: []string{"a", "b"}, Spec: store.AppSpec{Image: "postgres:16"}}, 0))
	must(st.PutApp(ctx, store.App{Name: "web", Host: "b", Volumes: []string{"web-data"}, Spec: store.AppSpec{Image: "nginx:1.27"}}, 0))
	for app, host := range map[string]string{"db": "a", "web": "b"} {
		if err := st.SetRunning(ctx, app, host, beats[host].Lease()); err != nil {
			t.Fatal(err)
		}
	}
	cl.failover = relocation(store.KindFailover, "web", "c", "b", now.Add(-3*time.Minute))
	must(st.MarkFence(ctx, store.Fence{Host: "c", By: "a", Method: "scsi3", At: cl.failover.Started.Add(10600 * time.Millisecond)}))
	must(st.SetMaintenance(ctx, "a", 30*time.Minute, "operator", "plugin upgrade to v0.9.3"))

	// db moved from b to a 50 minutes ago; c died 3 minutes ago and web was
	// failed over to b, its first fencing attempt failing.
	cl.move = relocation(store.KindMove, "db", "b", "a", now.Add(-50*time.Minute))
	cl.steps(t, cl.move, "db", []step{
		{"requested", "a", 0, 0, "move db from b to a", ""},
		{"stopped", "b", 1800, 1900, "", ""},
		{"released", "b", 400, 2400, "unmounted and released db-data", ""},
		{"pulled", "a", 2100, 4600, "image postgres:16", ""},
		{"created", "a", 300, 4900, "image postgres:16", ""},
		{"claimed", "a", 150, 5100, "volume db-data", ""},
		{"activated", "a", 350, 5450, "volume db-data", ""},
		{"mounted", "a", 250, 5700, "volume db-data", ""},
		{"started", "a", 1000, 5950, "", ""},
		{"done", "a", 5950, 5950, "move of db from b to a took 5.95s", ""},
	})
	cl.steps(t, cl.failover, "web", failoverSteps)
}

// failoverSteps are web's failover from c to b: c's lease gone, 8 s of
// grace, a fencing attempt that fails (0.5 s), one that works (2 s), then
// the start on b, its mount's steps within the container's start.
var failoverSteps = []step{
	{"detected", "a", 0, 8000, "lease of host c gone; waited 8s grace", ""},
	{"fenced", "a", 500, 8500, "method scsi3", "fence host c: scsi3: preempt on /dev/mapper/mpatha: sg_persist: exit status 6 (unit attention: the LUN was reset); retrying"},
	{"fenced", "a", 2000, 10600, "method scsi3", ""},
	{"placed", "a", 15, 10615, "on host b", ""},
	{"created", "b", 250, 10900, "image nginx:1.27", ""},
	{"claimed", "b", 180, 11100, "volume web-data", ""},
	{"activated", "b", 420, 11550, "volume web-data", ""},
	{"mounted", "b", 310, 11900, "volume web-data", ""},
	{"started", "b", 1300, 12200, "", ""},
	{"done", "b", 12200, 12200, "failover of web from c to b took 12.2s", ""},
}

// step is one timeline event: its phase, the host it ran on, how long it
// took and when it ended (ms since the relocation's start).
type step struct {
	phase, host string
	took, end   int64
	detail, err string
}

// relocation is a relocation as the controller makes it (its ID is the app
// and its start in ms, base 36).
func relocation(kind, app, from, to string, started time.Time) store.Relocation {
	return store.Relocation{ID: app + "-" + strconv.FormatInt(started.UnixMilli(), 36), Kind: kind, From: from, To: to, Started: started}
}

// steps records the steps of app's relocation r, as the recorder does.
func (cl *cluster) steps(t *testing.T, r store.Relocation, app string, steps []step) {
	t.Helper()
	for _, s := range steps {
		e := store.Event{At: r.Started.Add(time.Duration(s.end) * time.Millisecond), Relocation: r.ID, Kind: r.Kind, App: app,
			Phase: s.phase, Host: s.host, From: r.From, To: r.To, TookMS: s.took, SinceStartMS: s.end, Detail: s.detail, Error: s.err}
		if err := cl.st.AddEvent(cl.ctx, e); err != nil {
			t.Fatal(err)
		}
	}
}
