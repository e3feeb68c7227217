package controller

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/relocvol/relocvol/internal/etcdembed"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testStore is a store on a real etcd of t's own, and a context that ends
// with t.
func testStore(t *testing.T) (*store.Store, context.Context) {
	cli := testenv.EtcdClient(t, testenv.Etcd(t))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return store.New(cli, "/test"), ctx
}

func newHeartbeat(t *testing.T, st *store.Store, host string) (*Heartbeat, *atomic.Int32) {
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	hb := NewHeartbeat(st, host, 3*time.Second, t.TempDir(), "test", log)
	var joins atomic.Int32
	hb.BeforeJoin = func(context.Context) error { joins.Add(1); return nil }
	return hb, &joins
}

func TestHeartbeatRejoinsAfterLosingItsLease(t *testing.T) {
	st, ctx := testStore(t)
	hb, joins := newHeartbeat(t, st, "node-a")
	if err := hb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !hb.Alive() || joins.Load() != 1 {
		t.Fatalf("after start: alive %v, joins %d", hb.Alive(), joins.Load())
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
	waitFor(t, "rejoin with a new lease", 15*time.Second, func() bool {
		hs2, err := st.HostState(ctx, "node-a")
		return err == nil && hs2.Alive && hs2.Info.Lease != hs.Info.Lease && hb.Alive()
	})
	if joins.Load() != 2 {
		t.Fatalf("cleanup hook ran %d times, want 2 (start and rejoin)", joins.Load())
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
	waitFor(t, "not alive once etcd is gone", 10*time.Second, func() bool { return !hb.Alive() })
	// It must give up before etcd could expire the lease (TTL 3s).
	if d := time.Since(lost); d >= 3*time.Second {
		t.Fatalf("still alive %s after etcd went away, past the 3s TTL", d)
	}
}

func TestHeartbeatStartFailsWhenCleanupFails(t *testing.T) {
	st, _ := testStore(t)
	hb, _ := newHeartbeat(t, st, "node-a")
	hb.BeforeJoin = func(context.Context) error { return errors.New("volume db still mounted") }
	err := hb.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "prepare to join: volume db still mounted") {
		t.Fatalf("err = %v", err)
	}
	if hb.Alive() {
		t.Fatal("alive without having joined")
	}
}
