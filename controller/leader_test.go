package controller

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/heartbeat"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

// recordingFencer fences nothing but remembers whom it was asked to fence;
// the real fencers have their own tests (fencing/scsi3 and the VM lab).
type recordingFencer struct {
	mu     sync.Mutex
	fenced []string
	fail   error
}

func (f *recordingFencer) Name() string { return "recording" }
func (f *recordingFencer) Fence(_ context.Context, host string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.fenced = append(f.fenced, host)
	return nil
}
func (f *recordingFencer) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.fenced...)
}

func quietLog() *logrus.Logger {
	log := logrus.New()
	log.SetLevel(logrus.ErrorLevel)
	return log
}

// The leader on b sees a's lease expire, waits the grace period, fences a,
// releases its claim and places its app on b, recording each step, all
// through real etcd.
// twoHosts is hosts a and b on a real etcd, a holding volume db (claim
// epoch 2) and running app web, and b the leader with a recording fencer;
// killA stops a's renewals.
func twoHosts(t *testing.T) (st *store.Store, ctx context.Context, hbA *heartbeat.Heartbeat, killA func(), fencer *recordingFencer) {
	st, ctx = testenv.Store(t, "/test")
	hbA = newHeartbeat(t, st, "a")
	hbB := newHeartbeat(t, st, "b")
	actx, killA := context.WithCancel(ctx)
	if err := hbA.Start(actx); err != nil {
		t.Fatal(err)
	}
	if err := hbB.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_, _, vrev, _ := st.CreateVolume(ctx, store.Volume{Name: "db", State: store.StateReady})
	if _, err := st.PutClaim(ctx, store.Claim{Volume: "db", Host: "a", Epoch: 2}, 0, vrev); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutApp(ctx, store.App{Name: "web", Host: "a", Volumes: []string{"db"}}, 0); err != nil {
		t.Fatal(err)
	}
	fencer = &recordingFencer{}
	rec := NewRecorder(st, "b", nil, quietLog())
	go rec.Run(ctx)
	l := NewLeader(st, hbB, fencer, time.Second, rec, nil, "b", quietLog())
	go l.Run(ctx)
	testenv.WaitFor(t, "b is the leader", 10*time.Second, l.Leading)
	return st, ctx, hbA, killA, fencer
}

func TestLeaderFailsOverADeadHost(t *testing.T) {
	st, ctx, hbA, killA, fencer := twoHosts(t)

	// Nothing happens while a is alive.
	time.Sleep(1500 * time.Millisecond)
	if f := fencer.list(); len(f) != 0 {
		t.Fatalf("fenced %v while every host is alive", f)
	}

	// a dies: its keepalive stops and etcd expires its lease (TTL 3s).
	lease := hbA.Lease()
	killA()
	died := time.Now()
	testenv.WaitFor(t, "a's app placed on b", 15*time.Second, func() bool {
		app, _, err := st.GetApp(ctx, "web")
		return err == nil && app.Host == "b"
	})
	if took := time.Since(died); took < 3*time.Second {
		t.Errorf("app placed %s after a stopped renewing: before its lease (3s) could have expired", took)
	}
	// And only once etcd had expired it.
	if ttl, err := st.Client().TimeToLive(ctx, lease); err != nil || ttl.TTL > 0 {
		t.Fatalf("a's lease when its app was placed: %+v %v, want expired", ttl, err)
	}
	if f := fencer.list(); len(f) != 1 || f[0] != "a" {
		t.Fatalf("fenced %v, want [a]", f)
	}
	c, _, _ := st.GetClaim(ctx, "db")
	if c.Held() || c.Epoch != 2 {
		t.Fatalf("claim %+v: want released, epoch kept", c)
	}
	marks, _ := st.ListFences(ctx)
	if m := marks["a"].Value; m.By != "b" || m.Method != "recording" {
		t.Fatalf("fence mark %+v", m)
	}
	app, _, _ := st.GetApp(ctx, "web")
	if r := app.Relocation; r == nil || r.Kind != store.KindFailover || r.From != "a" || r.To != "b" {
		t.Fatalf("relocation %+v", app.Relocation)
	}
	var phases []string
	testenv.WaitFor(t, "timeline recorded", 5*time.Second, func() bool {
		ev, _ := st.ListEvents(ctx, 100)
		phases = phases[:0]
		for _, e := range ev {
			if e.Relocation == app.Relocation.ID {
				phases = append(phases, e.Phase)
			}
		}
		return len(phases) >= 3
	})
	if got := strings.Join(phases, ","); got != "detected,fenced,placed" {
		t.Errorf("timeline %s, want detected,fenced,placed", got)
	}
	// The plan is done: further steps change nothing and fence no one again.
	time.Sleep(1500 * time.Millisecond)
	if f := fencer.list(); len(f) != 1 {
		t.Errorf("fenced %v: a dead host is fenced once", f)
	}
}

// A failed fence stops the failover: no claim is released, no app moves.
func TestLeaderNeverReleasesUnfenced(t *testing.T) {
	st, ctx := testenv.Store(t, "/test")
	hbB := newHeartbeat(t, st, "b")
	if err := hbB.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_, _, vrev, _ := st.CreateVolume(ctx, store.Volume{Name: "db", State: store.StateReady})
	_, _ = st.PutClaim(ctx, store.Claim{Volume: "db", Host: "gone", Epoch: 1}, 0, vrev)
	_, _ = st.PutApp(ctx, store.App{Name: "web", Host: "gone", Volumes: []string{"db"}}, 0)
	fencer := &recordingFencer{fail: errors.New("sg_persist: reservation conflict (exit 24)")}
	rec := NewRecorder(st, "b", nil, quietLog())
	go rec.Run(ctx)
	l := NewLeader(st, hbB, fencer, 500*time.Millisecond, rec, nil, "b", quietLog())
	go l.Run(ctx)
	testenv.WaitFor(t, "the failed fence is in the timeline", 10*time.Second, func() bool {
		ev, _ := st.ListEvents(ctx, 100)
		for _, e := range ev {
			if e.Phase == "fenced" && strings.Contains(e.Error, "reservation conflict") {
				return true
			}
		}
		return false
	})
	time.Sleep(time.Second)
	if c, _, _ := st.GetClaim(ctx, "db"); c.Host != "gone" {
		t.Fatalf("claim %+v released without fencing", c)
	}
	if app, _, _ := st.GetApp(ctx, "web"); app.Host != "gone" {
		t.Fatalf("app placed on %s without fencing", app.Host)
	}
}

func TestMoveChecks(t *testing.T) {
	st, ctx := testenv.Store(t, "/test")
	for _, h := range []string{"a", "b", "c"} {
		hb := newHeartbeat(t, st, h)
		if err := hb.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// d serves volumes only: no agent to start apps with.
	hbD := newHeartbeat(t, st, "d")
	hbD.Info = nil
	if err := hbD.Start(ctx); err != nil {
		t.Fatal(err)
	}
	hb := newHeartbeat(t, st, "a")
	_, _ = st.PutApp(ctx, store.App{Name: "web", Host: "a", Volumes: []string{"db"}, Allowed: []string{"a", "b"}}, 0)
	_, _ = st.PutApp(ctx, store.App{Name: "free", Host: "a", Volumes: []string{"x"}}, 0)
	// A mark on a live host (state older than the mark protocol, which
	// marks only hosts without a lease) still keeps apps off it.
	if _, err := st.Client().Put(ctx, "/test/fenced/b", `{"host":"b","by":"c"}`); err != nil {
		t.Fatal(err)
	}
	c := New(Options{Host: "a", Store: st, Beat: hb, Fencer: &recordingFencer{}, Log: quietLog()})
	go c.rec.Run(ctx)

	for _, tc := range []struct {
		app, to string
		kind    error
		want    string
	}{
		{"nope", "b", api.ErrNotFound, `no app "nope"`},
		{"web", "a", api.ErrConflict, `app "web" already runs on host a`},
		{"web", "c", api.ErrInvalid, `app "web" may only run on [a b] (label relocvol.hosts): host c is not one of them`},
		{"web", "b", api.ErrConflict, `host "b" was fenced and has not rejoined cleanly yet`},
		{"free", "d", api.ErrInvalid, `host "d" runs no agent (its plugin has RELOCVOL_DOCKER_HOST empty), so it cannot start app "free"`},
	} {
		_, err := c.Move(ctx, tc.app, tc.to)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("move %s to %s: %v, want %v %q", tc.app, tc.to, err, tc.kind, tc.want)
		}
	}
	if _, err := c.Move(ctx, "free", "zzz"); err == nil || !strings.Contains(err.Error(), `host "zzz" is not alive (no lease in etcd): pick one of the live hosts [a b c d]`) {
		t.Errorf("move to an unknown host: %v", err)
	}
	rel, err := c.Move(ctx, "free", "c")
	if err != nil {
		t.Fatal(err)
	}
	app, _, _ := st.GetApp(ctx, "free")
	if app.Host != "c" || app.Relocation == nil || apiRelocation(*app.Relocation) != rel || rel.From != "a" || rel.Kind != store.KindMove {
		t.Fatalf("after the move request: app %+v, relocation %+v", app, rel)
	}
	if _, err := c.Move(ctx, "free", "b"); err == nil || !strings.Contains(err.Error(), `app "free" is already being relocated (move from a to c`) {
		t.Errorf("second move during the first: %v", err)
	}
	testenv.WaitFor(t, "requested event", 5*time.Second, func() bool {
		ev, _ := c.Events(ctx, api.EventFilter{Relocation: rel.ID, Limit: 10})
		return len(ev) == 1 && ev[0].Phase == "requested" && ev[0].Host == "a"
	})
}

// A host that announced maintenance is not failed over while it lasts,
// even once its lease is gone; at the deadline (etcd expires the
// maintenance's lease) it is, like any dead host.
func TestLeaderWaitsForMaintenance(t *testing.T) {
	st, ctx, _, killA, fencer := twoHosts(t)
	m, err := st.SetMaintenance(ctx, "a", store.MinMaintenance, "operator", "upgrade")
	if err != nil {
		t.Fatal(err)
	}
	killA() // the plugin is down for the upgrade: no more renewals
	testenv.WaitFor(t, "a's lease gone", 10*time.Second, func() bool { hs, _ := st.HostState(ctx, "a"); return !hs.Alive })
	for time.Until(m.Until) > time.Second {
		if f := fencer.list(); len(f) != 0 {
			t.Fatalf("fenced %v during a's maintenance", f)
		}
		if app, _, _ := st.GetApp(ctx, "web"); app.Host != "a" {
			t.Fatalf("a's app placed on %s during its maintenance", app.Host)
		}
		time.Sleep(200 * time.Millisecond)
	}
	testenv.WaitFor(t, "a failed over after its maintenance", 15*time.Second, func() bool {
		app, _, err := st.GetApp(ctx, "web")
		return err == nil && app.Host == "b"
	})
	if f := fencer.list(); len(f) != 1 || f[0] != "a" {
		t.Fatalf("fenced %v, want [a]", f)
	}
}
