package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

// TestAwait: a wait wakes on a change of its families only, misses no
// change made between its read and its watch, re-checks after recheck for
// what is not in etcd, and ends with its context.
func TestAwait(t *testing.T) {
	st, cli := newStore(t)
	ctx := context.Background()
	put := func(key string) {
		t.Helper()
		if _, err := cli.Put(ctx, "/test/"+key, "x"); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("done at once", func(t *testing.T) {
		var runs atomic.Int32
		err := st.Await(ctx, []store.Family{store.Claims}, 0, func(context.Context) (bool, error) { return runs.Add(1) == 1, nil })
		if err != nil || runs.Load() != 1 {
			t.Fatalf("Await = %v after %d checks, want nil after 1", err, runs.Load())
		}
	})

	t.Run("a change of another family does not wake it; one of its own does", func(t *testing.T) {
		var runs atomic.Int32
		done := make(chan error, 1)
		go func() {
			done <- st.Await(ctx, []store.Family{store.Claims, store.Hosts}, 0, func(context.Context) (bool, error) { return runs.Add(1) == 2, nil })
		}()
		time.Sleep(300 * time.Millisecond)
		put("events/e1")
		put("apps/a1")
		time.Sleep(300 * time.Millisecond)
		if n := runs.Load(); n != 1 {
			t.Fatalf("%d checks after changes of other families, want 1", n)
		}
		put("hosts/h1")
		select {
		case err := <-done:
			if err != nil || runs.Load() != 2 {
				t.Fatalf("Await = %v after %d checks, want nil after 2", err, runs.Load())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a change of hosts did not wake the wait")
		}
	})

	t.Run("a change between the read and the watch is not missed", func(t *testing.T) {
		var runs atomic.Int32
		err := st.Await(ctx, []store.Family{store.Claims}, 0, func(context.Context) (bool, error) {
			if runs.Add(1) == 1 {
				put("claims/c1") // after Await read the revision, before it watches
				return false, nil
			}
			return true, nil
		})
		if err != nil || runs.Load() != 2 {
			t.Fatalf("Await = %v after %d checks, want nil after 2", err, runs.Load())
		}
	})

	t.Run("recheck runs the check again without a change", func(t *testing.T) {
		var runs atomic.Int32
		err := st.Await(ctx, []store.Family{store.Volumes}, 50*time.Millisecond, func(context.Context) (bool, error) { return runs.Add(1) == 3, nil })
		if err != nil || runs.Load() != 3 {
			t.Fatalf("Await = %v after %d checks, want nil after 3", err, runs.Load())
		}
	})

	t.Run("the context ends it", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		err := st.Await(cctx, []store.Family{store.Volumes}, 0, func(context.Context) (bool, error) { return false, nil })
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Await = %v, want the context's deadline", err)
		}
	})

	t.Run("the check's error ends it", func(t *testing.T) {
		boom := errors.New("boom")
		if err := st.Await(ctx, []store.Family{store.Volumes}, 0, func(context.Context) (bool, error) { return false, boom }); !errors.Is(err, boom) {
			t.Fatalf("Await = %v, want boom", err)
		}
	})
}

// TestAwaitWhenItCannotTell: a check that cannot tell runs again soon, with
// no change in etcd, and a check still runs (and may end the wait) while
// etcd does not answer.
func TestAwaitWhenItCannotTell(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	var runs atomic.Int32
	err := st.Await(ctx, []store.Family{store.Claims}, 0, func(context.Context) (bool, error) {
		if runs.Add(1) == 1 {
			return false, fmt.Errorf("%w: a read failed", store.ErrTryAgain)
		}
		return true, nil
	})
	if err != nil || runs.Load() != 2 {
		t.Fatalf("Await = %v after %d checks, want nil after 2", err, runs.Load())
	}

	closed := testenv.EtcdClient(t, testenv.Etcd(t))
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	down := store.New(closed, "/test")
	notAlive := errors.New("this host is not alive")
	runs.Store(0)
	err = down.Await(ctx, []store.Family{store.Claims}, 50*time.Millisecond, func(context.Context) (bool, error) {
		if runs.Add(1) == 2 {
			return false, notAlive
		}
		return false, nil
	})
	if !errors.Is(err, notAlive) || runs.Load() != 2 {
		t.Fatalf("Await with etcd gone = %v after %d checks, want the check's own error after 2", err, runs.Load())
	}
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := down.Await(cctx, []store.Family{store.Claims}, 0, func(context.Context) (bool, error) { return false, nil }); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "read etcd's revision") {
		t.Fatalf("Await with etcd gone until the deadline = %v, want the deadline and the last failure", err)
	}
}
