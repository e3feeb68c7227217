package store_test

import (
	"context"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/relocvol/relocvol/internal/store"
)

// etcd's TimeToLive rounds the time left down to whole seconds: TTL 0 means
// up to a second is left, and the lease still holds its keys. Only a lease
// that is not found (TTL -1) has expired.
func TestHostStateTTLZeroIsAlive(t *testing.T) {
	st, cli := newStore(t)
	ctx := context.Background()
	for attempt := 0; attempt < 5; attempt++ {
		l := grant(t, cli, 2)
		if err := st.RegisterHost(ctx, store.Host{Name: "a", Lease: l}, 0, 0); err != nil {
			t.Fatal(err)
		}
		// Wait for the last second of the lease.
		for {
			ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(l))
			if err != nil {
				t.Fatal(err)
			}
			if ttl.TTL <= 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		hs, err := st.HostState(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		// Conclusive only if the lease still existed after HostState read it.
		after, err := cli.TimeToLive(ctx, clientv3.LeaseID(l))
		if err != nil {
			t.Fatal(err)
		}
		if after.TTL < 0 {
			t.Logf("attempt %d: the lease expired during the check; again", attempt)
			waitHostGone(t, cli, "a")
			continue
		}
		if !hs.Alive {
			t.Fatalf("HostState says dead while the lease still exists (TTL %d, rounded down): only a lease that is not found has expired", after.TTL)
		}
		return
	}
	t.Fatal("the lease expired during every check")
}

func waitHostGone(t *testing.T, cli *clientv3.Client, host string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := cli.Get(context.Background(), "/test/hosts/"+host)
		if err == nil && len(resp.Kvs) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("host key of %s still there", host)
}

// A restarted plugin replaces its own previous lease: its host key must
// never be absent meanwhile, or a peer could see the host dead and take its
// volumes over while it still has them mounted.
func TestReRegisterNeverDeletesHostKey(t *testing.T) {
	st, cli := newStore(t)
	ctx := context.Background()
	l1 := grant(t, cli, 30)
	if err := st.RegisterHost(ctx, store.Host{Name: "a", Lease: l1, PID: 1}, 0, 0); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, "/test/hosts/a")
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := cli.Watch(wctx, "/test/hosts/a", clientv3.WithRev(resp.Header.Revision+1))

	l2 := grant(t, cli, 30)
	if err := st.RegisterHost(ctx, store.Host{Name: "a", Lease: l2, PID: 2}, l1, 0); err != nil {
		t.Fatal(err)
	}
	hs, err := st.HostState(ctx, "a")
	if err != nil || !hs.Alive || hs.Info.Lease != l2 {
		t.Fatalf("after re-registering: %+v %v", hs, err)
	}
	// The old lease is gone (its other keys with it), the host key is not.
	if ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(l1)); err != nil || ttl.TTL != -1 {
		t.Fatalf("previous lease still there: %+v %v", ttl, err)
	}
	timeout := time.After(500 * time.Millisecond)
	for {
		select {
		case wr := <-wch:
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE {
					t.Fatalf("host key deleted at revision %d while re-registering: peers saw the host dead", ev.Kv.ModRevision)
				}
			}
		case <-timeout:
			return
		}
	}
}
