package plugin_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/plugin"
)

// comebackFencer is fencing none, but during its first fence of victim the
// victim comes back: it cleaned up and registers (clearing the mark), with
// a short lease nobody renews, so it dies again a moment later.
type comebackFencer struct {
	fencing.None
	t      *testing.T
	st     *store.Store
	victim string
	done   atomic.Bool
}

func (f *comebackFencer) Join(context.Context) error { return nil }

func (f *comebackFencer) Fence(ctx context.Context, host string) error {
	if host == f.victim && f.done.CompareAndSwap(false, true) {
		_, markRev, err := f.st.GetFence(ctx, host)
		if err != nil {
			f.t.Error(err)
		}
		grant, err := f.st.Client().Grant(ctx, 2)
		if err != nil {
			f.t.Error(err)
		}
		if err := f.st.RegisterHost(ctx, store.Host{Name: host, Lease: int64(grant.ID)}, 0, markRev); err != nil {
			f.t.Error(err)
		}
	}
	return nil
}

// aliveAtTakeover flags a create takeover's record write that lands while
// the creator it takes over from is alive.
type aliveAtTakeover struct {
	plugin.Store
	st      *store.Store
	creator string
	landed  atomic.Bool
}

func (s *aliveAtTakeover) UpdateVolume(ctx context.Context, v store.Volume, rev, claimRev int64, guards ...store.Guard) (int64, error) {
	prev, _, _ := s.st.GetVolume(ctx, v.Name)
	n, err := s.Store.UpdateVolume(ctx, v, rev, claimRev, guards...)
	if err == nil && prev.CreatedBy == s.creator && v.CreatedBy != s.creator && v.State == store.StateCreating {
		if hs, herr := s.st.HostState(ctx, s.creator); herr == nil && hs.Alive {
			s.landed.Store(true)
		}
	}
	return n, err
}

// Taking over an unfinished create requires its creator still gone when
// the record write lands, not only when the taker looked: a creator that
// came back meanwhile keeps its create.
func TestCreateTakeoverRequiresTheCreatorGone(t *testing.T) {
	c := newCluster(t)
	a := c.host("node-a", "", "")
	ctx := context.Background()
	rec := store.Volume{Name: "db", Backend: "loop", Size: 64 << 20, FS: "ext4", State: store.StateCreating, CreatedBy: "node-gone", CreateID: "deadbeefdeadbeef"}
	if _, _, _, err := a.st.CreateVolume(ctx, rec); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	b := c.host("node-b", "", "")
	guarded := &aliveAtTakeover{Store: b.st, st: b.st, creator: "node-gone"}
	drv := plugin.New(guarded, c.be, c.fs, &comebackFencer{None: fencing.None{Log: log}, t: t, st: a.st, victim: "node-gone"}, b.hb, plugin.Options{
		Host: "node-b", MountRoot: t.TempDir(), Log: log,
	})
	if err := drv.Create(&volume.CreateRequest{Name: "db"}); err != nil {
		t.Fatalf("create once the creator died again: %v", err)
	}
	if guarded.landed.Load() {
		t.Fatal("the create takeover's record write landed while the creator was alive again")
	}
	if err := drv.Remove(&volume.RemoveRequest{Name: "db"}); err != nil {
		t.Fatal(err)
	}
}
