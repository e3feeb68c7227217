package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/etcdembed"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

// member is a Member whose answers a test sets.
type member struct {
	prepares, joins, checks atomic.Int32
	prepare                 func(context.Context) (int64, error)
	join, check             func(context.Context) error
}

func (m *member) Prepare(ctx context.Context) (int64, error) {
	m.prepares.Add(1)
	if m.prepare != nil {
		return m.prepare(ctx)
	}
	return 0, nil
}

func (m *member) Join(ctx context.Context) error {
	m.joins.Add(1)
	if m.join != nil {
		return m.join(ctx)
	}
	return nil
}

func (m *member) Check(ctx context.Context) error {
	m.checks.Add(1)
	if m.check != nil {
		return m.check(ctx)
	}
	return nil
}

func newHeartbeat(t *testing.T, st *store.Store, host string) (*Heartbeat, *member) {
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	hb := New(st, host, 3*time.Second, t.TempDir(), "test", log)
	m := &member{}
	hb.Member = m
	hb.Info = func(h *store.Host) { h.Agent = true } // as on a host with an engine
	return hb, m
}

func TestHeartbeatRejoinsAfterLosingItsLease(t *testing.T) {
	st, ctx := testenv.Store(t, "/test")
	hb, m := newHeartbeat(t, st, "node-a")
	if err := hb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !hb.Alive() || m.prepares.Load() != 1 || m.joins.Load() != 1 {
		t.Fatalf("after start: alive %v, prepares %d, joins %d", hb.Alive(), m.prepares.Load(), m.joins.Load())
	}
	hs, err := st.HostState(ctx, "node-a")
	if err != nil || !hs.Alive {
		t.Fatalf("host key: %+v %v", hs, err)
	}
	// Stay alive across several renewals.
	time.Sleep(4 * time.Second)
	if !hb.Alive() {
		t.Fatal("not alive although etcd answers")
	}
	// The lease disappears (as after a long partition): the host must run
	// its cleanup hook again and come back under a new lease.
	if _, err := st.Client().Revoke(ctx, clientv3.LeaseID(hs.Info.Lease)); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "rejoin with a new lease", 15*time.Second, func() bool {
		hs2, err := st.HostState(ctx, "node-a")
		return err == nil && hs2.Alive && hs2.Info.Lease != hs.Info.Lease && hb.Alive()
	})
	if m.prepares.Load() != 2 || m.joins.Load() != 2 {
		t.Fatalf("prepare ran %d times and join %d, want 2 each (start and rejoin)", m.prepares.Load(), m.joins.Load())
	}
}

func TestHeartbeatNotAliveWithoutEtcd(t *testing.T) {
	srv, err := etcdembed.Start(t.TempDir(), "127.0.0.1:0", etcdembed.Options{NoFsync: true, LogLevel: "fatal"})
	if err != nil {
		t.Fatal(err)
	}
	cli := testenv.EtcdClient(t, srv.Endpoints())
	hb, _ := newHeartbeat(t, store.New(cli, "/test"), "node-a")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := hb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	closing := time.Now()
	srv.Close() // waits for open streams, during which etcd may still answer
	lost := time.Now()
	t.Logf("etcd took %s to close", lost.Sub(closing).Round(time.Millisecond))
	testenv.WaitFor(t, "not alive once etcd is gone", 10*time.Second, func() bool { return !hb.Alive() })
	// It must give up before etcd could expire the lease (TTL 3s).
	if d := time.Since(lost); d >= 3*time.Second {
		t.Fatalf("still alive %s after etcd went away, past the 3s TTL", d)
	}
}

func TestHeartbeatStartFailsWhenCleanupFails(t *testing.T) {
	st, _ := testenv.Store(t, "/test")
	hb, m := newHeartbeat(t, st, "node-a")
	m.prepare = func(context.Context) (int64, error) { return 0, errors.New("volume db still mounted") }
	err := hb.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "prepare to join: volume db still mounted") {
		t.Fatalf("err = %v", err)
	}
	if hb.Alive() {
		t.Fatal("alive without having joined")
	}
}

// The host registers only while no fencing mark names it, or clearing the
// one its Prepare cleaned up after; it joins the storage only once its host
// key is in etcd, so that no peer can mark it meanwhile.
func TestHeartbeatRegistersOnlyUnmarked(t *testing.T) {
	st, ctx := testenv.Store(t, "/test")
	hb, m := newHeartbeat(t, st, "node-a")
	rev, err := st.MarkFence(ctx, store.Fence{Host: "node-a", By: "node-b", Method: "none"})
	if err != nil {
		t.Fatal(err)
	}
	// A Prepare that did not see the mark (it came after its look).
	if err := hb.Start(ctx); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("start under a mark Prepare did not clean up after: err = %v, want ErrFenced", err)
	}
	if m.joins.Load() != 0 {
		t.Fatal("joined the storage while marked")
	}
	m.prepare = func(context.Context) (int64, error) { return rev, nil }
	m.join = func(ctx context.Context) error {
		if hs, err := st.HostState(ctx, "node-a"); err != nil || !hs.Alive {
			return errors.New("joined the storage before the host key was in etcd")
		}
		if _, rev, _ := st.GetFence(ctx, "node-a"); rev != 0 {
			return errors.New("joined the storage with the mark still there")
		}
		return nil
	}
	if err := hb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !hb.Alive() {
		t.Fatal("not alive after a clean registration")
	}
}

// A host whose storage check says it was cut off gives its lease up at
// once and rejoins through Prepare, which cleans up first.
func TestHeartbeatGivesUpWhenCutOff(t *testing.T) {
	st, ctx := testenv.Store(t, "/test")
	hb, m := newHeartbeat(t, st, "node-a")
	hb.checkEvery = 100 * time.Millisecond
	var cut atomic.Bool
	cut.Store(true)
	m.check = func(context.Context) error {
		if cut.Load() {
			return fmt.Errorf("key gone on /dev/sdb: %w", fencing.ErrCutOff)
		}
		return nil
	}
	// The first rejoin finds the host clean; checks pass from then on.
	m.prepare = func(context.Context) (int64, error) {
		if m.prepares.Load() > 1 {
			cut.Store(false)
		}
		return 0, nil
	}
	if err := hb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	first := hb.Lease()
	testenv.WaitFor(t, "the lease given up", 5*time.Second, func() bool {
		ttl, err := st.Client().TimeToLive(ctx, first)
		return err == nil && ttl.TTL == -1
	})
	testenv.WaitFor(t, "rejoined through Prepare", 10*time.Second, func() bool {
		return m.prepares.Load() >= 2 && hb.Alive() && hb.Lease() != first
	})
}

// Joining the storage may take longer than the lease (several PR commands
// and an LVM write on a slow SAN): the lease is renewed meanwhile, and the
// host is not alive before the join is done.
func TestHeartbeatRenewsWhileJoining(t *testing.T) {
	st, ctx := testenv.Store(t, "/test")
	hb, m := newHeartbeat(t, st, "node-a")
	m.join = func(context.Context) error {
		if hb.Alive() {
			return errors.New("alive before it joined the storage")
		}
		time.Sleep(4 * time.Second) // the TTL is 3s
		return nil
	}
	if err := hb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !hb.Alive() {
		t.Fatal("not alive after a slow join")
	}
	if hs, err := st.HostState(ctx, "node-a"); err != nil || !hs.Alive || hs.Info.Lease != int64(hb.Lease()) {
		t.Fatalf("host key after a join longer than the TTL: %+v %v", hs, err)
	}
}

// A clean stop (the plugin's context ends: docker plugin disable -f, an
// upgrade) leaves the lease to run out in etcd, so the host is still alive
// for its peers until then, and Alive must say so up to the cut-off: the
// stop announces maintenance only while it is (controller.MaintainOnStop),
// and a host that reported itself dead the moment its context ended would
// be failed over with its containers still running.
func TestHeartbeatAliveAfterCleanStopUntilCutoff(t *testing.T) {
	st, _ := testenv.Store(t, "/test")
	hb, _ := newHeartbeat(t, st, "node-a")
	ctx, cancel := context.WithCancel(context.Background())
	if err := hb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	stopped := time.Now()
	// The keep-alive ends within milliseconds of the cancel; well before
	// the cut-off (TTL 3s) the host must still count as alive.
	for time.Since(stopped) < 500*time.Millisecond {
		if !hb.Alive() {
			t.Fatalf("not alive %s after a clean stop, although its lease runs for %s", time.Since(stopped).Round(time.Millisecond), hb.TTL())
		}
		time.Sleep(10 * time.Millisecond)
	}
	hs, err := st.HostState(context.Background(), "node-a")
	if err != nil || !hs.Alive {
		t.Fatalf("host key after a clean stop: %+v %v", hs, err)
	}
	// And never past the cut-off: nothing renews the lease any more.
	testenv.WaitFor(t, "not alive at the cut-off", 5*time.Second, func() bool { return !hb.Alive() })
	if d, cut := time.Since(stopped), hb.Timings().Cutoff(); d > cut+500*time.Millisecond {
		t.Fatalf("alive %s after a clean stop, past its cut-off %s", d, cut)
	}
}

// releasingMember is a member that is also a Releaser, recording when it
// was asked to release and whether its lease was still current in etcd
// then.
type releasingMember struct {
	*member
	mu        sync.Mutex
	released  []time.Time
	onRelease func()
}

func (r *releasingMember) Release(context.Context) bool {
	r.mu.Lock()
	r.released = append(r.released, time.Now())
	f := r.onRelease
	r.mu.Unlock()
	if f != nil {
		f()
	}
	return true
}

func (r *releasingMember) first() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.released) == 0 {
		return time.Time{}
	}
	return r.released[0]
}

// A host cut off etcd releases what would let the storage register it
// again by itself (multipathd's key) at its cut-off, before etcd could even
// expire its lease, so before any peer may fence it (TTL plus the grace).
// Before, the release came with the rejoin's Prepare, once the heartbeat
// counted the lease lost and waited a second: at or after the earliest
// preempt (review of issue 25, session 3, finding 2).
func TestReleaseAtTheCutoff(t *testing.T) {
	srv, hb, _, r := releasingOnOwnEtcd(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := hb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if !r.first().IsZero() {
		t.Fatal("released while alive")
	}
	srv.Close()
	hb.mu.Lock()
	renewed := hb.renewed
	hb.mu.Unlock()
	testenv.WaitFor(t, "the release", 10*time.Second, func() bool { return !r.first().IsZero() })
	at, tm := r.first().Sub(renewed), hb.Timings()
	t.Logf("released %s after the last renewal; cut-off %s, TTL %s, earliest preempt %s", at.Round(time.Millisecond), tm.Cutoff(), tm.TTL, tm.TTL+tm.Grace)
	if at < tm.Cutoff() || at >= tm.TTL {
		t.Fatalf("released %s after the last renewal: want at the cut-off (%s), before the lease can expire (%s)", at.Round(time.Millisecond), tm.Cutoff(), tm.TTL)
	}
}

// A host that finds itself fenced releases before it gives its lease up:
// once the lease is revoked, peers may fence it after the grace alone.
func TestReleaseBeforeGivingTheLeaseUp(t *testing.T) {
	st, ctx := testenv.Store(t, "/test")
	hb, m := newHeartbeat(t, st, "node-a")
	hb.checkEvery = 100 * time.Millisecond
	r := &releasingMember{member: m}
	hb.Member = r
	var cut atomic.Bool
	m.check = func(context.Context) error {
		if cut.Load() {
			return fmt.Errorf("key gone on /dev/sdb: %w", fencing.ErrCutOff)
		}
		return nil
	}
	leaseLive := leaseAtRelease(st, hb, r)
	if err := hb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cut.Store(true)
	testenv.WaitFor(t, "the release", 10*time.Second, func() bool { return leaseLive.Load() != 0 })
	if leaseLive.Load() != 1 {
		t.Fatal("released only after the lease was given up")
	}
}

// leaseAtRelease records, at r's first release, whether hb's lease was
// still current in etcd (1) or already gone (2); 0 until then.
func leaseAtRelease(st *store.Store, hb *Heartbeat, r *releasingMember) *atomic.Int32 {
	var leaseLive atomic.Int32
	r.onRelease = func() {
		if leaseLive.Load() != 0 {
			return
		}
		ttl, err := st.Client().TimeToLive(context.Background(), hb.Lease())
		if err == nil && ttl.TTL > 0 {
			leaseLive.Store(1)
		} else {
			leaseLive.Store(2)
		}
	}
	return &leaseLive
}

// A join that fails (canceled at the cut-off, or any storage error after
// mpathpersist's REGISTER handed multipathd the key) is dropped: its lease
// is revoked at once, and from then on peers may fence this host after
// their grace alone. The release must come before (review of this change:
// it came only with the next Prepare, after the revoke and rejoin's 1 s).
func TestReleaseBeforeDroppingAFailedJoin(t *testing.T) {
	st, ctx := testenv.Store(t, "/test")
	hb, m := newHeartbeat(t, st, "node-a")
	r := &releasingMember{member: m}
	hb.Member = r
	leaseLive := leaseAtRelease(st, hb, r)
	m.join = func(context.Context) error { return errors.New("reserve on /dev/dm-1: exit 1") }
	if _, err := hb.join(ctx); err == nil {
		t.Fatal("join succeeded")
	}
	switch leaseLive.Load() {
	case 0:
		t.Fatal("a failed join gave its lease up without releasing multipathd's key")
	case 2:
		t.Fatal("released only after the lease was given up")
	}
}

// A lease gone before the cut-off (revoked, an etcd restored from a
// backup) is released at once: peers saw the host vanish and may fence it
// after their grace alone (review of session 4's revision, finding 2).
func TestReleaseWhenTheLeaseIsGoneBeforeTheCutoff(t *testing.T) {
	st, ctx := testenv.Store(t, "/test")
	hb, m := newHeartbeat(t, st, "node-a")
	r := &releasingMember{member: m}
	hb.Member = r
	if err := hb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	revoked := time.Now()
	if _, err := st.Client().Revoke(ctx, hb.Lease()); err != nil {
		t.Fatal(err)
	}
	grace := hb.Timings().Grace
	time.Sleep(grace)
	if at := r.first(); at.IsZero() || at.Sub(revoked) >= grace {
		t.Fatalf("released %v after the revoke (zero: not yet): peers may fence %s after it", at.Sub(revoked), grace)
	}
}

// A join stuck past its cut-off (a command held on a blocked path, which a
// kill does not end) releases when the watchdog cancels it, not when the
// join returns (review of session 4's revision, finding 1).
func TestReleaseWhileAJoinIsStuck(t *testing.T) {
	srv, hb, m, r := releasingOnOwnEtcd(t)
	unstick := make(chan struct{})
	defer close(unstick)
	var joining atomic.Bool
	m.join = func(context.Context) error {
		joining.Store(true)
		<-unstick // ctx ignored: the killed command's Wait has not returned
		return errors.New("mpathpersist: killed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = hb.Start(ctx) }()
	testenv.WaitFor(t, "the join", 5*time.Second, joining.Load)
	srv.Close()
	time.Sleep(hb.Timings().TTL)
	if r.first().IsZero() {
		t.Fatalf("a TTL (%s) after etcd went away, the join still stuck, nothing released multipathd's key", hb.Timings().TTL)
	}
}

// releasingOnOwnEtcd is node-a's heartbeat with a releasing member, on an
// etcd of its own that the test may close.
func releasingOnOwnEtcd(t *testing.T) (*etcdembed.Server, *Heartbeat, *member, *releasingMember) {
	t.Helper()
	srv, err := etcdembed.Start(t.TempDir(), "127.0.0.1:0", etcdembed.Options{NoFsync: true, LogLevel: "fatal"})
	if err != nil {
		t.Fatal(err)
	}
	cli := testenv.EtcdClient(t, srv.Endpoints())
	hb, m := newHeartbeat(t, store.New(cli, "/test"), "node-a")
	r := &releasingMember{member: m}
	hb.Member = r
	return srv, hb, m, r
}
