package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

func newStore(t *testing.T) (*store.Store, *clientv3.Client) {
	cli := testenv.EtcdClient(t, testenv.Etcd(t))
	return store.New(cli, "/test"), cli
}

func TestCreateVolumeOnlyOnce(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	v := store.Volume{Name: "db", Size: 1 << 30, FS: "ext4", State: store.StateCreating, CreatedBy: "a"}
	created, _, rev, err := st.CreateVolume(ctx, v)
	if err != nil || !created || rev == 0 {
		t.Fatalf("first create: created=%v rev=%d err=%v", created, rev, err)
	}
	v2 := v
	v2.CreatedBy = "b"
	created, cur, rev2, err := st.CreateVolume(ctx, v2)
	if err != nil || created {
		t.Fatalf("second create: created=%v err=%v", created, err)
	}
	if cur.CreatedBy != "a" || rev2 != rev {
		t.Fatalf("second create returned %+v at %d, want a's record at %d", cur, rev2, rev)
	}
}

func TestClaimCompareAndSwap(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	_, _, vrev, err := st.CreateVolume(ctx, store.Volume{Name: "db", State: store.StateReady})
	if err != nil {
		t.Fatal(err)
	}
	c, crev, err := st.GetClaim(ctx, "db")
	if err != nil || crev != 0 || c.Held() {
		t.Fatalf("absent claim: %+v rev %d err %v", c, crev, err)
	}
	a := store.Claim{Volume: "db", Host: "a", Epoch: 1}
	if _, err := st.PutClaim(ctx, a, 0, vrev); err != nil {
		t.Fatalf("a takes the free claim: %v", err)
	}
	// b read the claim as absent too: its write must lose.
	b := store.Claim{Volume: "db", Host: "b", Epoch: 1}
	if _, err := st.PutClaim(ctx, b, 0, vrev); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("b's stale claim: err = %v, want ErrConflict", err)
	}
	got, crev, err := st.GetClaim(ctx, "db")
	if err != nil || got.Host != "a" {
		t.Fatalf("claim after race: %+v %v", got, err)
	}
	// A claim write against a changed volume record fails too.
	if _, err := st.UpdateVolume(ctx, store.Volume{Name: "db", State: store.StateRemoving}, vrev, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutClaim(ctx, a, crev, vrev); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("claim on a changed volume: err = %v, want ErrConflict", err)
	}
}

func TestUpdateVolumeGuardedByClaim(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	_, _, vrev, _ := st.CreateVolume(ctx, store.Volume{Name: "db", State: store.StateReady})
	_, crev, _ := st.GetClaim(ctx, "db")
	// Another host claims between our read and our write.
	if _, err := st.PutClaim(ctx, store.Claim{Volume: "db", Host: "b", Epoch: 1}, crev, vrev); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateVolume(ctx, store.Volume{Name: "db", State: store.StateRemoving}, vrev, crev); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("mark removing under a new claim: err = %v, want ErrConflict", err)
	}
}

func TestDeleteVolumeRemovesClaim(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	_, _, vrev, _ := st.CreateVolume(ctx, store.Volume{Name: "db", State: store.StateReady})
	if _, err := st.PutClaim(ctx, store.Claim{Volume: "db", Epoch: 3}, 0, vrev); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteVolume(ctx, "db", vrev-1); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("delete at a stale revision: err = %v, want ErrConflict", err)
	}
	if err := st.DeleteVolume(ctx, "db", vrev); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.GetVolume(ctx, "db"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("volume after delete: %v", err)
	}
	if _, crev, _ := st.GetClaim(ctx, "db"); crev != 0 {
		t.Fatalf("claim survived the volume")
	}
}

func grant(t *testing.T, cli *clientv3.Client, ttl int64) int64 {
	t.Helper()
	g, err := cli.Grant(context.Background(), ttl)
	if err != nil {
		t.Fatal(err)
	}
	return int64(g.ID)
}

func TestRegisterHostAndLiveness(t *testing.T) {
	st, cli := newStore(t)
	ctx := context.Background()
	l1 := grant(t, cli, 30)
	if err := st.RegisterHost(ctx, store.Host{Name: "a", Lease: l1, PID: 1}, 0, 0); err != nil {
		t.Fatal(err)
	}
	hs, err := st.HostState(ctx, "a")
	if err != nil || !hs.Alive || hs.Info.PID != 1 {
		t.Fatalf("host a: %+v %v", hs, err)
	}
	// Another process claiming the same name, not knowing a's lease, is refused.
	l2 := grant(t, cli, 30)
	if err := st.RegisterHost(ctx, store.Host{Name: "a", Lease: l2, PID: 2}, 0, 0); !errors.Is(err, store.ErrHostTaken) {
		t.Fatalf("duplicate host name: err = %v, want ErrHostTaken", err)
	}
	// The same host restarted knows its previous lease: it replaces it.
	if err := st.RegisterHost(ctx, store.Host{Name: "a", Lease: l2, PID: 3}, l1, 0); err != nil {
		t.Fatalf("re-register with the previous lease: %v", err)
	}
	hs, _ = st.HostState(ctx, "a")
	if hs.Info.PID != 3 || hs.Info.Lease != l2 {
		t.Fatalf("after restart: %+v", hs.Info)
	}
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(l2)); err != nil {
		t.Fatal(err)
	}
	if hs, _ := st.HostState(ctx, "a"); hs.Alive {
		t.Fatalf("host alive after its lease was revoked")
	}
}

func TestLeaseExpiryMakesHostDead(t *testing.T) {
	st, cli := newStore(t)
	ctx := context.Background()
	l := grant(t, cli, 2) // etcd's minimum
	if err := st.RegisterHost(ctx, store.Host{Name: "a", Lease: l}, 0, 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		hs, err := st.HostState(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if !hs.Alive {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("host still alive 15s after a 2s lease stopped being renewed")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestLockIsExclusive(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	held, err := st.Lock(ctx, "vg/san")
	if err != nil {
		t.Fatal(err)
	}
	unlock := held.Unlock
	got := make(chan time.Time, 1)
	go func() {
		h2, err := st.Lock(ctx, "vg/san")
		if err != nil {
			t.Error(err)
			got <- time.Time{}
			return
		}
		got <- time.Now()
		h2.Unlock()
	}()
	// A second taker must wait while the first holds the lock.
	select {
	case <-got:
		t.Fatal("second Lock returned while the first was held")
	case <-time.After(500 * time.Millisecond):
	}
	released := time.Now()
	unlock()
	select {
	case at := <-got:
		if at.Before(released) {
			t.Fatal("second Lock got it before the release")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second Lock never got the lock after the release")
	}
	// A waiter whose request is cancelled gives up with an error.
	held, _ = st.Lock(ctx, "vg/san")
	defer held.Unlock()
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := st.Lock(cctx, "vg/san"); err == nil {
		t.Fatal("a cancelled waiter got the lock")
	}
	// Another key is independent.
	h3, err := st.Lock(ctx, "vg/other")
	if err != nil {
		t.Fatal(err)
	}
	h3.Unlock()
}

// A holder cut off etcd loses its lock when its session expires; it must
// find out before its next protected step, not run it.
func TestLockCheckedBeforeEachStep(t *testing.T) {
	st, cli := newStore(t)
	ctx := context.Background()
	ran := 0
	if err := st.WithLock(ctx, "vg/san", func(context.Context) error { ran++; return nil }); err != nil || ran != 1 {
		t.Fatalf("WithLock: ran %d, %v", ran, err)
	}
	held, err := st.Lock(ctx, "vg/san")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	if err := held.Check(ctx); err != nil {
		t.Fatalf("fresh lock: %v", err)
	}
	// The session's lease expires (as after lockTTL without etcd).
	leases, err := cli.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leases.Leases {
		if _, err := cli.Revoke(ctx, l.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := held.Check(ctx); !errors.Is(err, store.ErrLockLost) {
		t.Fatalf("check after the session expired: %v, want ErrLockLost", err)
	}
	// Another holder can take it now; the old one's step does not run.
	other, err := st.Lock(ctx, "vg/san")
	if err != nil {
		t.Fatal(err)
	}
	other.Unlock()
}

func TestLeadershipGuardsWrites(t *testing.T) {
	st, cli := newStore(t)
	ctx := context.Background()
	a, err := st.Campaign(ctx, "node-a", 5)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := st.Leader(ctx); l != "node-a" {
		t.Fatalf("leader %q, want node-a", l)
	}
	if err := st.LeaderTxn(ctx, a, clientv3.OpPut("/test/apps/db", "node-a")); err != nil {
		t.Fatalf("leader's write: %v", err)
	}
	bCh := make(chan *store.Leadership, 1)
	go func() {
		b, err := st.Campaign(ctx, "node-b", 5)
		if err != nil {
			t.Error(err)
		}
		bCh <- b
	}()
	select {
	case <-bCh:
		t.Fatal("node-b became leader while node-a leads")
	case <-time.After(300 * time.Millisecond):
	}
	// node-a is deposed (its session's lease is gone, as after a long pause)
	// but does not know it yet: its writes must fail from now on.
	if _, err := cli.Revoke(ctx, a.Lease()); err != nil {
		t.Fatal(err)
	}
	var b *store.Leadership
	select {
	case b = <-bCh:
	case <-time.After(10 * time.Second):
		t.Fatal("node-b never became leader")
	}
	if l, _ := st.Leader(ctx); l != "node-b" {
		t.Fatalf("leader %q, want node-b", l)
	}
	if err := st.LeaderTxn(ctx, a, clientv3.OpPut("/test/apps/db", "stale")); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("deposed leader's write: err = %v, want ErrNotLeader", err)
	}
	if err := st.LeaderTxn(ctx, b, clientv3.OpPut("/test/apps/db", "node-b")); err != nil {
		t.Fatalf("new leader's write: %v", err)
	}
	resp, _ := cli.Get(ctx, "/test/apps/db")
	if string(resp.Kvs[0].Value) != "node-b" {
		t.Fatalf("value %q: the deposed leader's write got through", resp.Kvs[0].Value)
	}
	if err := b.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if l, _ := st.Leader(ctx); l != "" {
		t.Fatalf("leader %q after resigning, want none", l)
	}
}
