package plugin_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/plugin"
)

// releasingFencer is fencing none that counts ReleaseKeys.
type releasingFencer struct {
	fencing.None
	released int
}

func (f *releasingFencer) Join(context.Context) error       { return nil }
func (f *releasingFencer) ReleaseKeys(context.Context) bool { f.released++; return true }

var _ plugin.KeyReleaser = (*releasingFencer)(nil)

// etcdDown is the store of a host cut off etcd: GetFence fails.
type etcdDown struct{ plugin.Store }

func (etcdDown) GetFence(context.Context, string) (store.Fence, int64, error) {
	return store.Fence{}, 0, errors.New("etcd does not answer")
}

// A host that lost its lease takes its key back from multipathd first,
// even while etcd does not answer (a partition): peers may fence it any
// moment, and multipathd would register a path it adds with that key
// (review of issue 25, finding 1).
func TestPrepareReleasesTheKeysFirst(t *testing.T) {
	c := newCluster(t)
	a := c.host("node-a", "", "")
	f := &releasingFencer{None: fencing.None{Log: logrus.New()}}
	drv := plugin.New(etcdDown{a.st}, c.be, c.fs, f, a.hb, plugin.Options{
		Host: "node-a", MountRoot: t.TempDir(), Defaults: spec.Defaults{Size: 64 << 20, FS: "ext4"}, Timeout: 3 * time.Second,
	})
	if _, err := drv.Prepare(context.Background()); err == nil {
		t.Fatal("Prepare succeeded without etcd")
	}
	if f.released != 1 {
		t.Fatalf("Prepare released multipathd's keys %d times before it asked etcd; want once", f.released)
	}
}
