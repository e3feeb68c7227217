package controller

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/heartbeat"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

// rejoinAtMark is a LeaderStore whose fencing mark of host races the
// host's return: the host registers just before the mark lands (so the
// mark meets ErrHostAlive), then its storage join fails and its new lease
// is revoked (heartbeat.join's drop), so its key is gone again.
type rejoinAtMark struct {
	*store.Store
	t    *testing.T
	host string
}

func (r rejoinAtMark) MarkFence(ctx context.Context, f store.Fence, guards ...store.Guard) (int64, error) {
	if f.Host != r.host {
		return r.Store.MarkFence(ctx, f, guards...)
	}
	cli := r.Client()
	grant, err := cli.Grant(ctx, 5)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.RegisterHost(ctx, store.Host{Name: r.host, Lease: int64(grant.ID)}, 0, 0); err != nil {
		r.t.Fatal(err)
	}
	rev, err := r.Store.MarkFence(ctx, f, guards...)
	if _, rerr := cli.Revoke(ctx, grant.ID); rerr != nil {
		r.t.Fatal(rerr)
	}
	return rev, err
}

// deadHolder is a real etcd where host b is alive and volume db is
// claimed by host x, which has no lease.
func deadHolder(t *testing.T) (*store.Store, context.Context, *heartbeat.Heartbeat) {
	st, ctx := testenv.Store(t, "/test")
	hbB := newHeartbeat(t, st, "b")
	if err := hbB.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_, _, vrev, _ := st.CreateVolume(ctx, store.Volume{Name: "db", State: store.StateReady})
	if _, err := st.PutClaim(ctx, store.Claim{Volume: "db", Host: "x", Epoch: 1}, 0, vrev); err != nil {
		t.Fatal(err)
	}
	return st, ctx, hbB
}

// The leader's fence of x meets x alive (it registered just before the
// mark); x's key is gone again by the time the releases run. The leader
// must release nothing of x: x was neither marked nor cut off, and a
// released claim would let any Mount take db without fencing x.
func TestLeaderNeverReleasesAHostItFoundAlive(t *testing.T) {
	st, ctx, hbB := deadHolder(t)
	if _, err := st.PutApp(ctx, store.App{Name: "web", Host: "x", Volumes: []string{"db"}}, 0); err != nil {
		t.Fatal(err)
	}
	fencer := &recordingFencer{}
	l, lead, grace := steppedLeader(t, st, rejoinAtMark{Store: st, t: t, host: "x"}, hbB, fencer)
	now := time.Now()
	if err := l.step(ctx, lead, now); err != nil { // x seen down
		t.Fatal(err)
	}
	_ = l.step(ctx, lead, now.Add(2*grace)) // the grace is over: fence, release, place
	if c, _, _ := st.GetClaim(ctx, "db"); c.Host != "x" {
		t.Fatalf("claim %+v released although the fence found x alive (never marked, never cut off)", c)
	}
	if app, _, _ := st.GetApp(ctx, "web"); app.Host != "x" {
		t.Fatalf("app placed on %s although the fence found x alive", app.Host)
	}
	if f := fencer.list(); len(f) != 0 {
		t.Fatalf("fenced %v after the mark failed", f)
	}
}

// rejoiningFencer is a fencer during whose first fence of host the host
// cleans up and rejoins (its registration clears the leader's mark), then
// dies again: the proof the fence returns is of a mark that is gone.
type rejoiningFencer struct {
	recordingFencer
	st   *store.Store
	t    *testing.T
	host string
	once bool
}

func (f *rejoiningFencer) Fence(ctx context.Context, host string) error {
	if host == f.host && !f.once {
		f.once = true
		_, markRev, err := f.st.GetFence(ctx, host)
		if err != nil {
			f.t.Fatal(err)
		}
		cli := f.st.Client()
		grant, err := cli.Grant(ctx, 5)
		if err != nil {
			f.t.Fatal(err)
		}
		if err := f.st.RegisterHost(ctx, store.Host{Name: host, Lease: int64(grant.ID)}, 0, markRev); err != nil {
			f.t.Fatal(err)
		}
		if _, err := cli.Revoke(ctx, grant.ID); err != nil {
			f.t.Fatal(err)
		}
	}
	return f.recordingFencer.Fence(ctx, host)
}

// A release needs the mark the leader proved: when the host rejoined
// (clearing it) and died again between two steps the leader never saw it
// alive in, the release fails, and the leader fences it again first (once
// the grace of that last death has passed).
func TestLeaderFencesAgainWhenItsMarkIsGone(t *testing.T) {
	st, ctx, hbB := deadHolder(t)
	fencer := &rejoiningFencer{st: st, t: t, host: "x"}
	l, lead, grace := steppedLeader(t, st, st, hbB, fencer)
	now := time.Now()
	if err := l.step(ctx, lead, now); err != nil {
		t.Fatal(err)
	}
	err := l.step(ctx, lead, now.Add(2*grace))
	if !errors.Is(err, store.ErrMarkChanged) {
		t.Fatalf("release on a mark x cleared: step err = %v, want ErrMarkChanged", err)
	}
	if c, _, _ := st.GetClaim(ctx, "db"); c.Host != "x" {
		t.Fatalf("claim %+v released on a mark x cleared when it rejoined", c)
	}
	// x registered again meanwhile: its last death is new, and has its
	// own grace.
	stepFencing(t, l, lead, now.Add(3*grace), &fencer.recordingFencer, 1, "x's last death waits its own grace")
	stepFencing(t, l, lead, now.Add(5*grace), &fencer.recordingFencer, 2, "x fenced again before its release")
	if c, _, _ := st.GetClaim(ctx, "db"); c.Held() {
		t.Fatalf("claim %+v not released after the second fence", c)
	}
}

// A host the leader saw dead (in maintenance, so not failed over) that
// registered again and died again between two of the leader's looks is
// dead since its last death, not since the first sighting: the leader
// waits the whole grace again before it fails it over.
func TestLeaderGraceCountsFromTheLastDeath(t *testing.T) {
	st, ctx, hbB := deadHolder(t)
	if _, err := st.SetMaintenance(ctx, "x", time.Minute, store.MaintenanceByPluginStop, ""); err != nil {
		t.Fatal(err)
	}
	fencer := &recordingFencer{}
	l, lead, grace := steppedLeader(t, st, st, hbB, fencer)
	now := time.Now()
	if err := l.step(ctx, lead, now); err != nil { // x seen dead, in maintenance
		t.Fatal(err)
	}
	grant, err := st.Client().Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RegisterHost(ctx, store.Host{Name: "x", Lease: int64(grant.ID)}, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := st.EndMaintenance(ctx, "x", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Client().Revoke(ctx, grant.ID); err != nil {
		t.Fatal(err)
	}
	later := now.Add(10 * grace) // x died just now: its grace has not passed
	stepFencing(t, l, lead, later, fencer, 0, "not at once after x died again: the grace counts from its last death")
	if c, _, _ := st.GetClaim(ctx, "db"); c.Host != "x" {
		t.Fatalf("claim %+v released before the grace of x's last death", c)
	}
	stepFencing(t, l, lead, later.Add(2*grace), fencer, 1, "x once the grace of its last death passed")
}

// steppedLeader is b's leader on ls (st, or st with hooks) with fencer
// and a grace of 500 ms, elected, for tests that run its steps themselves.
func steppedLeader(t *testing.T, st *store.Store, ls LeaderStore, hbB *heartbeat.Heartbeat, fencer fencing.Method) (*Leader, *store.Leadership, time.Duration) {
	t.Helper()
	grace := 500 * time.Millisecond
	l := NewLeader(ls, hbB, fencer, grace, NewRecorder(st, "b", nil, quietLog()), nil, "b", quietLog())
	lead, err := st.Campaign(context.Background(), "b", 3)
	if err != nil {
		t.Fatal(err)
	}
	l.reset()
	return l, lead, grace
}

// stepFencing runs one step of l at now and checks that fencer has fenced
// want hosts in all by then.
func stepFencing(t *testing.T, l *Leader, lead *store.Leadership, now time.Time, fencer *recordingFencer, want int, why string) {
	t.Helper()
	if err := l.step(context.Background(), lead, now); err != nil {
		t.Fatal(err)
	}
	if f := fencer.list(); len(f) != want {
		t.Fatalf("fenced %v, want %d fence(s): %s", f, want, why)
	}
}
