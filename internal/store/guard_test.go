package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/relocvol/relocvol/internal/store"
)

func TestLeaseExpired(t *testing.T) {
	for _, tt := range []struct {
		ttl  int64
		want bool
	}{
		{ttl: -1, want: true}, // lease not found
		{ttl: 0, want: false}, // under a second left, rounded down
		{ttl: 1, want: false},
		{ttl: 30, want: false},
	} {
		if got := store.LeaseExpired(tt.ttl); got != tt.want {
			t.Errorf("LeaseExpired(%d) = %v, want %v", tt.ttl, got, tt.want)
		}
	}
}

// heldByA makes volume db with its claim held by host a (epoch 1) and
// returns the claim and the revisions of the claim and the volume.
func heldByA(t *testing.T, st *store.Store) (store.Claim, int64, int64) {
	t.Helper()
	ctx := context.Background()
	_, _, vrev, _ := st.CreateVolume(ctx, store.Volume{Name: "db", State: store.StateReady})
	crev, err := st.PutClaim(ctx, store.Claim{Volume: "db", Host: "a", Epoch: 1}, 0, vrev)
	if err != nil {
		t.Fatal(err)
	}
	held, _, _ := st.GetClaim(ctx, "db")
	return held, crev, vrev
}

// A takeover decided on an earlier read must not land once the victim has
// a lease again: the fence mark, the leader's release and the claim
// takeover each re-check it in their own transaction.
func TestTakeoverWritesRequireVictimGone(t *testing.T) {
	st, cli := newStore(t)
	ctx := context.Background()
	held, crev, vrev := heldByA(t, st)
	la := grant(t, cli, 30)
	if err := st.RegisterHost(ctx, store.Host{Name: "a", Lease: la}, 0, 0); err != nil {
		t.Fatal(err)
	}
	// a is alive: every takeover write fails with ErrHostAlive.
	if _, err := st.MarkFence(ctx, store.Fence{Host: "a", By: "b"}); !errors.Is(err, store.ErrHostAlive) {
		t.Fatalf("mark a live host fenced: err = %v, want ErrHostAlive", err)
	}
	if err := st.ReleaseClaim(ctx, held, crev, 1); !errors.Is(err, store.ErrHostAlive) {
		t.Fatalf("release a live host's claim: err = %v, want ErrHostAlive", err)
	}
	taken := store.Claim{Volume: "db", Host: "b", Epoch: 2, TakenFrom: "a"}
	if _, err := st.PutClaim(ctx, taken, crev, vrev, st.HostGone("a")); !errors.Is(err, store.ErrHostAlive) {
		t.Fatalf("take a live host's claim: err = %v, want ErrHostAlive", err)
	}
	if f, _ := st.ListFences(ctx); len(f) != 0 {
		t.Fatalf("fence marks of a live host: %v", f)
	}
	if c, _, _ := st.GetClaim(ctx, "db"); c.Host != "a" {
		t.Fatalf("claim moved off a live host: %+v", c)
	}
	// a's lease is gone: the same writes land.
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(la)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.MarkFence(ctx, store.Fence{Host: "a", By: "b"}); err != nil {
		t.Fatalf("mark a dead host: %v", err)
	}
	if _, err := st.PutClaim(ctx, taken, crev, vrev, st.HostGone("a")); err != nil {
		t.Fatalf("take a dead host's claim: %v", err)
	}
}

// A host's own claim writes need its key bound to the lease it renews: a
// host whose lease is gone (or a stale process of it) takes and keeps no
// claim.
func TestOwnClaimWritesRequireOwnLease(t *testing.T) {
	st, cli := newStore(t)
	ctx := context.Background()
	_, _, vrev, _ := st.CreateVolume(ctx, store.Volume{Name: "db", State: store.StateReady})
	lb := grant(t, cli, 30)
	c := store.Claim{Volume: "db", Host: "b", Epoch: 1}
	if _, err := st.PutClaim(ctx, c, 0, vrev, st.HostLease("b", lb)); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("claim by an unregistered host: err = %v, want ErrLeaseLost", err)
	}
	if err := st.RegisterHost(ctx, store.Host{Name: "b", Lease: lb}, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutClaim(ctx, c, 0, vrev, st.HostLease("b", lb+1)); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("claim under another lease: err = %v, want ErrLeaseLost", err)
	}
	if _, err := st.PutClaim(ctx, c, 0, vrev, st.HostLease("b", lb)); err != nil {
		t.Fatalf("claim by a live host: %v", err)
	}
}

// A host registers only while no mark names it, or in the transaction that
// clears the very mark it cleaned up after: a mark written after it looked
// keeps it out.
func TestRegisterRequiresNoFenceMark(t *testing.T) {
	st, cli := newStore(t)
	ctx := context.Background()
	rev1, err := st.MarkFence(ctx, store.Fence{Host: "a", By: "b", Method: "none"})
	if err != nil {
		t.Fatal(err)
	}
	l := grant(t, cli, 30)
	if err := st.RegisterHost(ctx, store.Host{Name: "a", Lease: l}, 0, 0); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("register while marked: err = %v, want ErrFenced", err)
	}
	// A second taker shares the mark that stands: same revision, the first
	// taker's record kept.
	if again, err := st.MarkFence(ctx, store.Fence{Host: "a", By: "c", Method: "none"}); err != nil || again != rev1 {
		t.Fatalf("a second mark of a marked host: revision %d, %v; want the standing mark's %d", again, err, rev1)
	}
	if f, _, _ := st.GetFence(ctx, "a"); f.By != "b" {
		t.Fatalf("the standing mark was rewritten: %+v", f)
	}
	// a cleans up after mark rev1; meanwhile the mark is removed and
	// written anew (by hand): a's clean-up was for another mark.
	if _, err := cli.Delete(ctx, "/test/fenced/a"); err != nil {
		t.Fatal(err)
	}
	rev2, err := st.MarkFence(ctx, store.Fence{Host: "a", By: "c", Method: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RegisterHost(ctx, store.Host{Name: "a", Lease: l}, 0, rev1); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("register clearing a mark that was replaced: err = %v, want ErrFenced", err)
	}
	if hs, _ := st.HostState(ctx, "a"); hs.Alive {
		t.Fatal("a registered although fenced again")
	}
	if err := st.RegisterHost(ctx, store.Host{Name: "a", Lease: l}, 0, rev2); err != nil {
		t.Fatalf("register clearing the current mark: %v", err)
	}
	if _, rev, _ := st.GetFence(ctx, "a"); rev != 0 {
		t.Fatal("mark still there after registering")
	}
	if hs, _ := st.HostState(ctx, "a"); !hs.Alive {
		t.Fatal("a not registered")
	}
	// Alive now: nobody can mark it.
	if _, err := st.MarkFence(ctx, store.Fence{Host: "a", By: "c"}); !errors.Is(err, store.ErrHostAlive) {
		t.Fatalf("mark a live host: err = %v, want ErrHostAlive", err)
	}
}

// A host in announced maintenance is not taken over, dead or not: the
// fence mark, the leader's release and a Mount's takeover all fail with
// ErrInMaintenance until the maintenance ends (an operator, or its
// lease at the deadline).
func TestTakeoverWritesRequireNoMaintenance(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	held, crev, vrev := heldByA(t, st)
	m, err := st.SetMaintenance(ctx, "a", time.Minute, "operator", "upgrade")
	if err != nil || m.Until.Before(time.Now().Add(50*time.Second)) {
		t.Fatalf("SetMaintenance = %+v, %v", m, err)
	}
	hs, err := st.HostState(ctx, "a")
	if err != nil || hs.Alive || hs.Maintenance == nil || hs.Maintenance.Reason != "upgrade" {
		t.Fatalf("HostState of a dead host in maintenance: %+v %v", hs, err)
	}
	if _, err := st.MarkFence(ctx, store.Fence{Host: "a", By: "b"}); !errors.Is(err, store.ErrInMaintenance) {
		t.Fatalf("mark a host in maintenance: err = %v, want ErrInMaintenance", err)
	}
	if err := st.ReleaseClaim(ctx, held, crev, 1); !errors.Is(err, store.ErrInMaintenance) {
		t.Fatalf("release the claim of a host in maintenance: err = %v, want ErrInMaintenance", err)
	}
	taken := store.Claim{Volume: "db", Host: "b", Epoch: 2, TakenFrom: "a"}
	if _, err := st.PutClaim(ctx, taken, crev, vrev, st.HostGone("a")); !errors.Is(err, store.ErrInMaintenance) {
		t.Fatalf("take the claim of a host in maintenance: err = %v, want ErrInMaintenance", err)
	}
	if ended, err := st.EndMaintenance(ctx, "a", store.MaintenanceByPluginStop); ended || err != nil {
		t.Fatalf("the plugin ended an operator's maintenance: %v %v", ended, err)
	}
	if ended, err := st.EndMaintenance(ctx, "a", ""); !ended || err != nil {
		t.Fatalf("EndMaintenance = %v %v", ended, err)
	}
	if _, err := st.PutClaim(ctx, taken, crev, vrev, st.HostGone("a")); err != nil {
		t.Fatalf("take the claim once the maintenance ended: %v", err)
	}
	if err := store.ValidateMaintenance(2 * time.Second); err == nil || !strings.Contains(err.Error(), "use from 10s to 24h0m0s") {
		t.Fatalf("ValidateMaintenance(2s) = %v", err)
	}
}

// A release or takeover needs, in its own transaction, the very mark whose
// fencing the taker proved: an absent host key alone proves nothing (the
// host may have registered before the mark, then lost its new lease), and
// a mark the victim cleared when it rejoined, or another taker's newer
// mark, is not this taker's proof.
func TestTakeoverWritesRequireTheProvenMark(t *testing.T) {
	st, cli := newStore(t)
	ctx := context.Background()
	held, crev, vrev := heldByA(t, st)
	taken := store.Claim{Volume: "db", Host: "b", Epoch: 2, TakenFrom: "a"}
	// No mark at all: a's key is absent, yet nothing may be taken.
	for _, markRev := range []int64{0, vrev} {
		if err := st.ReleaseClaim(ctx, held, crev, markRev); !errors.Is(err, store.ErrMarkChanged) {
			t.Fatalf("release without a mark (rev %d): err = %v, want ErrMarkChanged", markRev, err)
		}
		if _, err := st.PutClaim(ctx, taken, crev, vrev, st.HostGone("a"), st.FencedBy("a", markRev)); !errors.Is(err, store.ErrMarkChanged) {
			t.Fatalf("takeover without a mark (rev %d): err = %v, want ErrMarkChanged", markRev, err)
		}
	}
	m1, err := st.MarkFence(ctx, store.Fence{Host: "a", By: "b"})
	if err != nil {
		t.Fatal(err)
	}
	// a cleans up and rejoins (clearing m1), then loses its new lease.
	la := grant(t, cli, 30)
	if err := st.RegisterHost(ctx, store.Host{Name: "a", Lease: la}, 0, m1); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(la)); err != nil {
		t.Fatal(err)
	}
	if err := st.ReleaseClaim(ctx, held, crev, m1); !errors.Is(err, store.ErrMarkChanged) {
		t.Fatalf("release on a mark a cleared: err = %v, want ErrMarkChanged", err)
	}
	// Marked again by c: b's old proof is not c's.
	m2, err := st.MarkFence(ctx, store.Fence{Host: "a", By: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutClaim(ctx, taken, crev, vrev, st.HostGone("a"), st.FencedBy("a", m1)); !errors.Is(err, store.ErrMarkChanged) {
		t.Fatalf("takeover on a replaced mark: err = %v, want ErrMarkChanged", err)
	}
	if c, _, _ := st.GetClaim(ctx, "db"); c.Host != "a" {
		t.Fatalf("claim moved without its proven mark: %+v", c)
	}
	if err := st.ReleaseClaim(ctx, held, crev, m2); err != nil {
		t.Fatalf("release with the proven mark: %v", err)
	}
}

// A process that has no lease yet (0: it has not registered) takes and
// keeps no claim: lease 0 is no proof of liveness, whether or not the
// host's key is there and whether or not the host is in maintenance.
func TestHostLeaseZeroNeverHolds(t *testing.T) {
	st, cli := newStore(t)
	ctx := context.Background()
	_, _, vrev, _ := st.CreateVolume(ctx, store.Volume{Name: "db", State: store.StateReady})
	c := store.Claim{Volume: "db", Host: "b", Epoch: 1}
	if _, err := st.PutClaim(ctx, c, 0, vrev, st.HostLease("b", 0)); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("claim under lease 0, no host key: err = %v, want ErrLeaseLost", err)
	}
	if _, err := st.SetMaintenance(ctx, "b", time.Minute, store.MaintenanceByPluginStop, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutClaim(ctx, c, 0, vrev, st.HostLease("b", 0)); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("claim under lease 0 during maintenance: err = %v, want ErrLeaseLost", err)
	}
	if err := st.RegisterHost(ctx, store.Host{Name: "b", Lease: grant(t, cli, 30)}, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutClaim(ctx, c, 0, vrev, st.HostLease("b", 0)); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("claim under lease 0 while the host key is held: err = %v, want ErrLeaseLost", err)
	}
}

// Each registration is a new incarnation, which outlasts the host's lease:
// a peer that saw the host dead tells by it that the host came back (and
// maybe died again) since, whether or not it looked meanwhile.
func TestIncarnationOutlastsTheLease(t *testing.T) {
	st, cli := newStore(t)
	ctx := context.Background()
	if hs, err := st.HostState(ctx, "a"); err != nil || hs.Incarnation != 0 || hs.Alive {
		t.Fatalf("a host never registered: %+v %v", hs, err)
	}
	var seen []int64
	for i := 0; i < 2; i++ {
		l := grant(t, cli, 30)
		if err := st.RegisterHost(ctx, store.Host{Name: "a", Lease: l}, 0, 0); err != nil {
			t.Fatal(err)
		}
		alive, err := st.HostState(ctx, "a")
		if err != nil || !alive.Alive || alive.Incarnation == 0 {
			t.Fatalf("registered: %+v %v", alive, err)
		}
		if _, err := cli.Revoke(ctx, clientv3.LeaseID(l)); err != nil {
			t.Fatal(err)
		}
		dead, err := st.HostState(ctx, "a")
		if err != nil || dead.Alive || dead.Incarnation != alive.Incarnation {
			t.Fatalf("dead: %+v %v, want the incarnation %d it died in", dead, err, alive.Incarnation)
		}
		seen = append(seen, dead.Incarnation)
	}
	if seen[0] == seen[1] {
		t.Fatalf("two registrations, one incarnation %d", seen[0])
	}
	snap, err := st.Snapshot(ctx)
	if err != nil || snap.Registered["a"].Rev != seen[1] {
		t.Fatalf("snapshot's registration of a: %+v %v, want revision %d", snap.Registered["a"], err, seen[1])
	}
}

// StillRegistered is the proof a host asks before it registers on the
// storage outside its join: its key bound to its lease, and no mark.
func TestStillRegistered(t *testing.T) {
	st, cli := newStore(t)
	ctx := context.Background()
	l := grant(t, cli, 30)
	for _, tc := range []struct {
		name  string
		setup func()
		lease int64
		want  bool
	}{
		{"not registered", func() {}, l, false},
		{"registered under the lease", func() {
			if err := st.RegisterHost(ctx, store.Host{Name: "a", Lease: l}, 0, 0); err != nil {
				t.Fatal(err)
			}
		}, l, true},
		{"another lease", func() {}, l + 1, false},
		{"no lease yet", func() {}, 0, false},
		{"lease gone and marked", func() {
			if _, err := cli.Revoke(ctx, clientv3.LeaseID(l)); err != nil {
				t.Fatal(err)
			}
			if _, err := st.MarkFence(ctx, store.Fence{Host: "a", By: "b"}); err != nil {
				t.Fatal(err)
			}
		}, l, false},
	} {
		tc.setup()
		if got, err := st.StillRegistered(ctx, "a", tc.lease); err != nil || got != tc.want {
			t.Errorf("%s: StillRegistered = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}
