package plugin_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/fsutil"
	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/plugin"
)

// unreachable is the store of a host cut off etcd: once down, every call
// waits out its context, as a request to an etcd nobody answers does, and
// is counted.
type unreachable struct {
	plugin.Store
	down  atomic.Bool
	calls atomic.Int64
}

func (u *unreachable) wait(ctx context.Context) error {
	u.calls.Add(1)
	<-ctx.Done()
	return &store.EtcdError{Endpoints: []string{"http://etcd:2379"}, What: "test", Timeout: time.Second, Err: ctx.Err()}
}

func (u *unreachable) GetVolume(ctx context.Context, name string) (store.Volume, int64, error) {
	if u.down.Load() {
		return store.Volume{}, 0, u.wait(ctx)
	}
	return u.Store.GetVolume(ctx, name)
}

func (u *unreachable) GetClaim(ctx context.Context, name string) (store.Claim, int64, error) {
	if u.down.Load() {
		return store.Claim{}, 0, u.wait(ctx)
	}
	return u.Store.GetClaim(ctx, name)
}

func (u *unreachable) PutClaim(ctx context.Context, c store.Claim, crev, vrev int64, g ...store.Guard) (int64, error) {
	if u.down.Load() {
		return 0, u.wait(ctx)
	}
	return u.Store.PutClaim(ctx, c, crev, vrev, g...)
}

// Past its cut-off a host must be rid of its volumes before its lease can
// expire: self-fencing stops the containers, and Docker, to clean a
// stopped container up, calls Get and then Unmount. Cut off etcd, each of
// those waited out the etcd timeout first (Get before it answered, Unmount
// before it replied, after the unmount): a partitioned host with the
// default 5 s TTL unmounted its volume 5 s past its cut-off, 1.5 s after
// the new owner had mounted it (TestFailover, partition cycles). Past the
// cut-off, Get answers from the volumes the host knows and Unmount replies
// once the volume is unmounted, without a call to etcd; the claim is
// written in the background (a release needs no lease).
func TestPastCutoffNothingWaitsForEtcd(t *testing.T) {
	c := newCluster(t)
	a := c.host("node-a", "", "")
	mustCreate(t, a, "db", nil)
	st := &unreachable{Store: a.st}
	live := &switchable{hb: a.hb}
	root := t.TempDir()
	drv := plugin.New(st, c.be, c.fs, fencing.None{Log: logrus.New()}, live, plugin.Options{
		Host: "node-a", MountRoot: root, Defaults: spec.Defaults{Size: 64 << 20, FS: "ext4"}, Timeout: 3 * time.Second,
	})
	if _, err := drv.Mount(&volume.MountRequest{Name: "db", ID: "m1"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st.down.Store(false)
		_ = c.fs.Unmount(context.Background(), filepath.Join(root, "db"))
		_ = c.be.Deactivate(context.Background(), "db")
	})
	st.down.Store(true)
	live.off.Store(true) // past the cut-off: no renewal for a while

	got, err := drv.Get(&volume.GetRequest{Name: "db"})
	if err != nil || got.Volume.Status["state"] != "unknown" {
		t.Fatalf("Get past the cut-off: %+v, %v; want the volume, state unknown", got, err)
	}
	if n := st.calls.Load(); n != 0 {
		t.Fatalf("Get past the cut-off waited on etcd (%d calls): Docker's cleanup of a stopped container waits with it", n)
	}
	if err := drv.Unmount(&volume.UnmountRequest{Name: "db", ID: "m1"}); err != nil {
		t.Fatalf("Unmount past the cut-off: %v", err)
	}
	if n := st.calls.Load(); n != 0 {
		t.Fatalf("Unmount past the cut-off waited on etcd (%d calls) before it replied", n)
	}
	if _, ok, _ := fsutil.MountSource(filepath.Join(root, "db")); ok {
		t.Fatal("the volume is still mounted after Unmount")
	}
	// etcd back: the claim written in the background is released.
	st.down.Store(false)
	waitClaim(t, a, "db", func(cl store.Claim) bool { return !cl.Held() })
	if err := a.drv.Remove(&volume.RemoveRequest{Name: "db"}); err != nil {
		t.Fatal(err)
	}
}
