package controller

import (
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
	st, ctx := testenv.Store(t, "/test")
	hb := newHeartbeat(t, st, "a")
	if err := hb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	vols := &fakeVolumes{d: &fakeDocker{}, stuck: map[string]time.Time{"db": {}}}
	c := New(Options{Host: "a", Store: st, Beat: hb, Fencer: &recordingFencer{}, Log: quietLog(), Volumes: vols})
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
