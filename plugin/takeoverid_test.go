package plugin_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/backends"
	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/plugin"
)

// lostAnswer lands the create takeover's record write but loses etcd's
// answer (a timeout after the commit), once.
type lostAnswer struct {
	plugin.Store
	once atomic.Bool
}

func (s *lostAnswer) UpdateVolume(ctx context.Context, v store.Volume, rev, claimRev int64, guards ...store.Guard) (int64, error) {
	n, err := s.Store.UpdateVolume(ctx, v, rev, claimRev, guards...)
	if err == nil && v.State == store.StateCreating && s.once.CompareAndSwap(false, true) {
		return 0, errors.New("etcdserver: request timed out")
	}
	return n, err
}

// A create takeover keeps the dead create's identity in the record until
// that create's storage is gone: stopped in between (here the record write
// lands but its answer is lost), the next try still knows what to remove,
// and the volume gets made. (Written with its own new identity first, the
// record lost the dead one's: every later create found storage of an
// unknown create, deleted the record, and the name stayed blocked.)
func TestCreateTakeoverKeepsTheDeadCreatesIdentity(t *testing.T) {
	c := newCluster(t)
	a := c.host("node-a", "", "")
	ctx := context.Background()
	const dead = "deadbeefdeadbeef"
	rec := store.Volume{Name: "db", Backend: "loop", Size: 64 << 20, FS: "ext4", State: store.StateCreating, CreatedBy: "node-gone", CreateID: dead}
	if _, _, _, err := a.st.CreateVolume(ctx, rec); err != nil {
		t.Fatal(err)
	}
	// the dead creator got as far as its storage
	if err := c.be.Create(ctx, backends.Volume{Name: "db", Size: 64 << 20, FS: "ext4", CreateID: dead}); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	drv := plugin.New(&lostAnswer{Store: a.st}, c.be, c.fs, fencing.None{Log: log}, a.hb, plugin.Options{
		Host: "node-a", MountRoot: t.TempDir(), Defaults: spec.Defaults{Size: 64 << 20, FS: "ext4"}, Log: log,
	})
	if err := drv.Create(&volume.CreateRequest{Name: "db"}); err != nil {
		t.Logf("first create: %v", err) // the answer lost
		// Docker (or the user) tries again, as the error says.
		if err := drv.Create(&volume.CreateRequest{Name: "db"}); err != nil {
			t.Fatalf("create again: %v", err)
		}
	}
	v, _, err := a.st.GetVolume(ctx, "db")
	target, _ := os.Readlink(filepath.Join(c.san, "db.img"))
	t.Cleanup(func() { _ = c.be.Remove(ctx, "db", dead); _ = c.be.Remove(ctx, "db", v.CreateID) })
	if err != nil || v.State != store.StateReady {
		t.Fatalf("volume db: record %+v (%v), storage db.img -> %q: the dead create's storage survives with no record naming its identity, and the name cannot be created any more", v, err, target)
	}
	if v.CreateID == dead || target != "db.img."+v.CreateID {
		t.Fatalf("record's create %q, storage db.img -> %q: want the taking create's own storage", v.CreateID, target)
	}
}
