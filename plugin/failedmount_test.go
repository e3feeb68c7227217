package plugin_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/fsutil"
	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/plugin"
)

// lateMount is a mount whose command failed (timed out, killed at the
// request's deadline) after the kernel had mounted the filesystem.
type lateMount struct{ fsutil.FS }

func (m lateMount) Mount(ctx context.Context, dev, fstype, target string) error {
	if err := m.FS.Mount(ctx, dev, fstype, target); err != nil {
		return err
	}
	return errors.New("mount: signal: killed (the request's deadline)")
}

// A Mount that fails after the filesystem was mounted (the mount command
// killed at the request's deadline after the kernel mounted) undoes it:
// unmounted and deactivated, and the claim released; what it cannot undo
// stays in Mounts(). (The old clean-up only tried a deactivation, which
// the mount itself blocked: the volume stayed mounted, its claim held
// with no mount ID, and neither self-fencing nor the orphan collection
// saw it.)
func TestFailedMountLeavesNothingUncounted(t *testing.T) {
	c := newCluster(t)
	a := c.host("node-a", "", "")
	mustCreate(t, a, "db", nil)
	log := logrus.New()
	root := t.TempDir()
	drv := plugin.New(a.st, c.be, lateMount{c.fs}, fencing.None{Log: log}, a.hb, plugin.Options{
		Host: "node-a", MountRoot: root, Defaults: spec.Defaults{Size: 64 << 20, FS: "ext4"}, Log: log,
	})
	_, err := drv.Mount(&volume.MountRequest{Name: "db", ID: "c1"})
	if err == nil {
		t.Fatal("mount succeeded")
	}
	_, mounted, _ := fsutil.MountSource(filepath.Join(root, "db"))
	dev, _ := c.be.Device(context.Background(), "db")
	held := claimOf(t, a, "db")
	t.Cleanup(func() {
		_ = c.fs.Unmount(context.Background(), filepath.Join(root, "db"))
		_ = c.be.Deactivate(context.Background(), "db")
	})
	if _, counted := drv.Mounts()["db"]; (mounted || dev != "") && !counted {
		t.Fatalf("after a failed Mount: filesystem mounted=%v, device %q, claim %+v, yet Mounts() = %v: self-fencing would report done over it",
			mounted, dev, held, drv.Mounts())
	}
	if mounted || dev != "" || held.Held() {
		t.Fatalf("after a failed Mount: filesystem mounted=%v, device %q, claim %+v: want all undone", mounted, dev, held)
	}
}
