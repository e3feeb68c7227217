package controller

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

// A plugin that stops cleanly with volumes mounted announces maintenance
// only while its own lease is current in etcd: once its key is gone (its
// lease lost, a peer marking and taking it over), a maintenance that
// landed now would shield a host that was already taken over.
func TestMaintainOnStopNeedsTheOwnLease(t *testing.T) {
	st, ctx, c := stoppingHost(t)
	hb := c.opt.Beat
	// a's lease is gone in etcd (revoked: as when it expired while a was
	// paused), though a still counts itself alive up to its cut-off.
	if _, err := st.Client().Revoke(ctx, clientv3.LeaseID(hb.Lease())); err != nil {
		t.Fatal(err)
	}
	if _, err := st.MarkFence(ctx, store.Fence{Host: "a", By: "b"}); err != nil {
		t.Fatal(err)
	}
	if !hb.Alive() {
		t.Fatal("a no longer counts itself alive: the race this test is about is over")
	}
	c.MaintainOnStop(ctx, time.Minute)
	if m, rev, err := st.GetMaintenance(ctx, "a"); err != nil || rev != 0 {
		t.Fatalf("maintenance %+v announced after a's lease was gone and b marked it (%v)", m, err)
	}
}

// expiringBetween lets the window the controller read run out before the
// store's SetMaintenance reads it again.
type expiringBetween struct {
	*store.Store
}

func (s expiringBetween) SetMaintenance(ctx context.Context, host string, d time.Duration, by, reason string, guards ...store.Guard) (store.Maintenance, error) {
	if m, rev, err := s.Store.GetMaintenance(ctx, host); err == nil && rev != 0 {
		// the window's deadline: etcd deletes the key with its lease
		_, _ = s.Store.Client().Revoke(ctx, clientv3.LeaseID(m.Lease))
	}
	return s.Store.SetMaintenance(ctx, host, d, by, reason, guards...)
}

// An operator extends the window of a dead host in maintenance; the window
// runs out between the controller's read and the store's write (a leader
// may be failing the host over from that moment): nothing lands. (The
// store compared only the window it read itself, none by then, and a new
// window landed on a dead host being taken over.)
func TestOperatorWindowNeverLandsOnAHostWhoseWindowEnded(t *testing.T) {
	st, ctx := testenv.Store(t, "/test")
	if _, err := st.SetMaintenance(ctx, "x", 10*time.Second, "operator", "work"); err != nil {
		t.Fatal(err)
	}
	hb := newHeartbeat(t, st, "a")
	if err := hb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c := New(Options{Host: "a", Store: expiringBetween{st}, Beat: hb, Fencer: &recordingFencer{}, Log: quietLog()})
	_, err := c.SetMaintenance(ctx, "x", time.Hour, "extend")
	if m, rev, _ := st.GetMaintenance(ctx, "x"); rev != 0 {
		t.Fatalf("a window (%+v) landed on dead host x after its previous window ended (err %v): the controller would have refused it had it read the state then", m, err)
	}
}

// The operator announces an hour of maintenance, then disables the plugin
// (the documented disable -f / set / enable): the plugin's stop keeps the
// operator's longer window. (It replaced it with its own 10 minutes, which
// the rejoin then ended: the host was failed over 50 minutes before the
// deadline the operator was given, its containers running with no plugin.)
func TestPluginStopKeepsTheOperatorsLongerWindow(t *testing.T) {
	st, ctx, c := stoppingHost(t)
	if _, err := c.SetMaintenance(ctx, "a", time.Hour, "kernel update"); err != nil {
		t.Fatal(err)
	}
	c.MaintainOnStop(ctx, 10*time.Minute)
	m, _, err := st.GetMaintenance(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if time.Until(m.Until) < 50*time.Minute {
		t.Fatalf("the operator's hour was replaced by %+v (ends in %s)", m, time.Until(m.Until).Round(time.Second))
	}
}

// An operator's window that ends before the plugin's stop would need is
// lengthened, and stays the operator's: the rejoin ends only the plugin's
// own window.
func TestPluginStopLengthensAShorterOperatorWindow(t *testing.T) {
	st, ctx, c := stoppingHost(t)
	if _, err := c.SetMaintenance(ctx, "a", time.Minute, "kernel update"); err != nil {
		t.Fatal(err)
	}
	c.MaintainOnStop(ctx, 10*time.Minute)
	m, _, err := st.GetMaintenance(ctx, "a")
	if err != nil || m.By != "operator" || m.Reason != "kernel update" || time.Until(m.Until) < 9*time.Minute {
		t.Fatalf("maintenance after the stop: %+v %v; want the operator's, lengthened to 10m", m, err)
	}
	c.endStopMaintenance(ctx)
	if _, rev, _ := st.GetMaintenance(ctx, "a"); rev == 0 {
		t.Fatal("the rejoin ended the operator's window")
	}
}

// stoppingHost is host a, alive, with volume db mounted (its plugin about
// to stop), and its controller.
func stoppingHost(t *testing.T) (*store.Store, context.Context, *Controller) {
	st, ctx := testenv.Store(t, "/test")
	hb := newHeartbeat(t, st, "a")
	if err := hb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	vols := &fakeVolumes{d: &fakeDocker{}, stuck: map[string]time.Time{"db": {}}}
	return st, ctx, New(Options{Host: "a", Store: st, Beat: hb, Fencer: &recordingFencer{}, Log: quietLog(), Volumes: vols})
}

func TestStopWindow(t *testing.T) {
	now := time.Now()
	op := func(until time.Duration) store.Maintenance {
		return store.Maintenance{By: "operator", Reason: "kernel", Until: now.Add(until)}
	}
	for _, tc := range []struct {
		name       string
		cur        store.Maintenance
		rev        int64
		keep       bool
		by, reason string
	}{
		{"none: the plugin's own", store.Maintenance{}, 0, false, store.MaintenanceByPluginStop, "the plugin stopped with volumes mounted"},
		{"the plugin's own of an earlier stop: replaced", store.Maintenance{By: store.MaintenanceByPluginStop, Until: now.Add(time.Hour)}, 5, false, store.MaintenanceByPluginStop, "the plugin stopped with volumes mounted"},
		{"an operator's, longer: kept", op(time.Hour), 5, true, "operator", "kernel"},
		{"an operator's, as long: kept", op(10 * time.Minute), 5, true, "operator", "kernel"},
		{"an operator's, shorter: lengthened, the operator's", op(time.Minute), 5, false, "operator", "kernel"},
	} {
		keep, by, reason := stopWindow(tc.cur, tc.rev, now, 10*time.Minute)
		if keep != tc.keep || by != tc.by || reason != tc.reason {
			t.Errorf("%s: stopWindow = %v %q %q, want %v %q %q", tc.name, keep, by, reason, tc.keep, tc.by, tc.reason)
		}
	}
}
