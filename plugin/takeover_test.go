package plugin_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/plugin"
)

// twoWriters is the state "never two writers" forbids: the victim is
// registered with the storage (it may write), still has the volume
// mounted, and the claim names another host (which mounts it too).
func twoWriters(tbl *prTable, victim, taker *host, vol string) (bool, error) {
	c, _, err := taker.st.GetClaim(context.Background(), vol)
	if err != nil {
		return false, err
	}
	return tbl.registered(victim.name) && victim.drv.MountCount(vol) > 0 && c.Held() && c.Host != victim.name, nil
}

// gate holds a goroutine at one point of its flow, once: the test learns
// that it got there (reached) and lets it go on (release).
type gate struct {
	once    sync.Once
	reached chan struct{}
	resume  chan struct{}
}

func newGate() *gate { return &gate{reached: make(chan struct{}), resume: make(chan struct{})} }

func (g *gate) hold() {
	g.once.Do(func() {
		close(g.reached)
		<-g.resume
	})
}

func (g *gate) release() {
	select {
	case <-g.resume:
	default:
		close(g.resume)
	}
}

// TestFencedVictimNeverRejoinsUnderATakeover: the victim lost its lease
// with a volume mounted (its self-fencing did not get to it) and rejoins
// while a peer takes the volume over. The victim is held at a point of its
// rejoin (after its "was I fenced?" check, or just before it registers its
// reservation key) while the peer runs to a point of its takeover (waiting
// the grace, before its mark; after its mark, before or after it preempts
// the victim's key; or to the end of its Mount); then both go on. Over every such interleaving, the victim must never be
// registered with the volume still mounted while the claim names the peer.
func TestFencedVictimNeverRejoinsUnderATakeover(t *testing.T) {
	for _, vAt := range []string{"after-check", "before-join"} {
		for _, tAt := range []string{"in-grace", "before-preempt", "after-preempt", "mount-returned"} {
			t.Run(vAt+"/"+tAt, func(t *testing.T) { raceRejoinWithTakeover(t, vAt, tAt) })
		}
	}
}

func raceRejoinWithTakeover(t *testing.T, vAt, tAt string) {
	c := newCluster(t)
	tbl := newPRTable()
	vpr, tpr := &fakePR{tbl: tbl, host: "node-v"}, &fakePR{tbl: tbl, host: "node-t"}
	v := c.hostWith("node-v", "", "", hostOpts{fencer: vpr})
	tk := c.hostWith("node-t", "", "", hostOpts{fencer: tpr})
	mustCreate(t, v, "db", nil)
	mustMount(t, v, "db", "v1")

	vg, tg := newGate(), newGate()
	vpr.mu.Lock()
	if vAt == "after-check" {
		vpr.afterCheck = vg.hold
	} else {
		vpr.beforeJoin = vg.hold
	}
	vpr.mu.Unlock()
	tpr.mu.Lock()
	switch tAt {
	case "before-preempt":
		tpr.beforePreempt = func(string) { tg.hold() }
	case "after-preempt":
		tpr.afterPreempt = func(string) { tg.hold() }
	}
	tpr.mu.Unlock()
	defer vg.release()
	defer tg.release()

	// Watch the invariant for the whole race.
	var violation atomic.Value
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			bad, err := twoWriters(tbl, v, tk, "db")
			if err == nil && bad && violation.Load() == nil {
				c, _, _ := tk.st.GetClaim(context.Background(), "db")
				violation.Store(fmt.Sprintf("node-v registered with db mounted while the claim names %s (epoch %d)", c.Host, c.Epoch))
			}
		}
	}()

	if _, err := v.cli.Revoke(context.Background(), v.hb.Lease()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-vg.reached:
	case <-time.After(15 * time.Second):
		t.Fatal("the victim never tried to rejoin")
	}
	mounted := make(chan error, 1)
	go func() {
		_, err := tk.drv.Mount(&volume.MountRequest{Name: "db", ID: "t1"})
		mounted <- err
	}()
	var mountErr error
	done := false
	switch tAt {
	case "mount-returned":
		mountErr, done = <-mounted, true
	case "in-grace":
		time.Sleep(200 * time.Millisecond) // the grace is 1.25s
	default:
		select {
		case <-tg.reached:
		case mountErr = <-mounted:
			done = true
		case <-time.After(20 * time.Second):
			t.Fatal("the takeover neither reached its point nor returned")
		}
	}
	vg.release()
	time.Sleep(500 * time.Millisecond) // the victim goes on alone for a while
	tg.release()
	if !done {
		mountErr = <-mounted
	}
	time.Sleep(3 * time.Second) // and both settle (the victim retries every second)
	close(stop)
	<-watched
	if msg := violation.Load(); msg != nil {
		t.Fatalf("two writers: %s", msg)
	}
	t.Logf("takeover: %v; victim registered %v, victim mounts %d; claim %+v",
		mountErr, tbl.registered("node-v"), v.drv.MountCount("db"), claimOf(t, tk, "db"))
	// Leave nothing mounted: the victim's copy first (on this shared
	// kernel it keeps the loop device open), then the taker's.
	if v.drv.MountCount("db") > 0 {
		if err := v.drv.Unmount(&volume.UnmountRequest{Name: "db", ID: "v1"}); err != nil {
			t.Errorf("clean up the victim's mount: %v", err)
		}
	}
	if mountErr == nil {
		mustUnmount(t, tk, "db", "t1")
	}
}

// A host whose lease is gone takes no claim, even in the moment before its
// heartbeat notices: its claim writes are guarded by its own lease in etcd,
// not by its local clock.
func TestMountRefusedOnceOwnLeaseIsGone(t *testing.T) {
	c := newCluster(t)
	a, b := c.host("node-a", "", ""), c.host("node-b", "", "")
	mustCreate(t, a, "db", nil)
	if _, err := b.cli.Revoke(context.Background(), b.hb.Lease()); err != nil {
		t.Fatal(err)
	}
	_, err := b.drv.Mount(&volume.MountRequest{Name: "db", ID: "b1"})
	wantErr(t, err, plugin.ErrNotAlive, "host node-b has no current etcd lease", `may not mount volume "db"`)
	if cl := claimOf(t, a, "db"); cl.Held() {
		t.Fatalf("a host without a lease took the claim: %+v", cl)
	}
	if n := b.drv.MountCount("db"); n != 0 {
		t.Fatalf("refused mount counted: %d", n)
	}
}

// A Mount takes a dead host's volume over only after the grace every peer
// waits once a lease is gone (the leader too): the cushion for a dead
// host's self-fencing.
func TestTakeoverWaitsTheGrace(t *testing.T) {
	c := newCluster(t)
	a := c.host("node-a", "", "")
	b := c.hostWith("node-b", "", "", hostOpts{grace: 2 * time.Second})
	mustCreate(t, a, "db", nil)
	mustMount(t, a, "db", "a1")
	a.kill(t)
	start := time.Now()
	mustMount(t, b, "db", "b1")
	took := time.Since(start)
	f, _, err := b.st.GetFence(context.Background(), "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if took < 2*time.Second || f.At.Sub(start) < 2*time.Second {
		t.Fatalf("took over after %s, fence mark %s after the Mount began: want at least the 2s grace", took, f.At.Sub(start))
	}
	// The dead host's mount is still there on this shared kernel.
	if err := c.fs.Unmount(context.Background(), filepath.Join(a.root, "db")); err != nil {
		t.Fatal(err)
	}
	mustUnmount(t, b, "db", "b1")
}

// conflictingStore loses every claim write, as when another host mounts
// the same volume over and over.
type conflictingStore struct{ plugin.Store }

func (conflictingStore) PutClaim(context.Context, store.Claim, int64, int64, ...store.Guard) (int64, error) {
	return 0, fmt.Errorf("claim volume db: %w", store.ErrConflict)
}

func TestClaimThatKeepsConflictingSaysSo(t *testing.T) {
	c := newCluster(t)
	a := c.host("node-a", "", "")
	mustCreate(t, a, "db", nil)
	drv := plugin.New(conflictingStore{a.st}, c.be, c.fs, fencing.None{Log: logrus.New()}, a.hb, plugin.Options{
		Host: "node-a", MountRoot: t.TempDir(), Defaults: spec.Defaults{Size: 64 << 20, FS: "ext4"},
	})
	_, err := drv.Mount(&volume.MountRequest{Name: "db", ID: "m1"})
	wantErr(t, err, plugin.ErrBusy, `volume "db": its claim kept changing while host node-a tried to take it (6 attempts`, "another host is mounting it at the same time; try again")
}
