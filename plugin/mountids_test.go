package plugin_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/relocvol/relocvol/backends"
	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/fsutil"
	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/plugin"
)

// Docker mounts an ID that is already mounted again (docker cp into or out
// of a running container, and other engine paths) and unmounts it as
// often: each Mount of an ID counts, each Unmount takes one count, and the
// volume is unmounted only when no count is left.
func TestSameMountIDCountsTwice(t *testing.T) {
	c := newCluster(t)
	a := c.host("node-a", "", "")
	mustCreate(t, a, "db", nil)
	mp := mustMount(t, a, "db", "c1")
	writeFile(t, mp, "before", "cp")

	if got := mustMount(t, a, "db", "c1"); got != mp { // docker cp
		t.Fatalf("second mount of c1 at %s, want %s", got, mp)
	}
	cl := claimOf(t, a, "db")
	if len(cl.Mounts) != 1 || cl.Refs("c1") != 2 {
		t.Fatalf("claim after mounting c1 twice: %+v, want one ID counted twice", cl)
	}
	got, err := a.drv.Get(&volume.GetRequest{Name: "db"})
	if err != nil || got.Volume.Status["mounts"] != 1 {
		t.Fatalf("docker volume inspect shows mounts=%v (%v), want 1: one mount ID", got.Volume.Status["mounts"], err)
	}

	mustUnmount(t, a, "db", "c1") // the copy is done
	if _, ok, _ := fsutil.MountSource(filepath.Join(a.root, "db")); !ok {
		t.Fatal("unmounted under the running container after the copy's unmount")
	}
	if got := readFile(t, mp, "before"); got != "cp" {
		t.Fatalf("data after the copy: %q", got)
	}
	if cl := claimOf(t, a, "db"); cl.Host != "node-a" || cl.Refs("c1") != 1 {
		t.Fatalf("claim after the copy's unmount: %+v, want c1 held once", cl)
	}

	// The plugin restarts while the ID is counted twice: the count survives.
	mustMount(t, a, "db", "c1")
	a.stop()
	a2 := c.host("node-a", a.root, a.state)
	mustUnmount(t, a2, "db", "c1")
	if _, ok, _ := fsutil.MountSource(filepath.Join(a.root, "db")); !ok {
		t.Fatal("a restart lost the second count of c1: unmounted under the running container")
	}
	mustUnmount(t, a2, "db", "c1") // the container stops
	if _, ok, _ := fsutil.MountSource(filepath.Join(a.root, "db")); ok {
		t.Fatal("still mounted after the last count of c1")
	}
	if cl := claimOf(t, a2, "db"); cl.Held() {
		t.Fatalf("claim still held after the last unmount: %+v", cl)
	}
	if err := a2.drv.Remove(&volume.RemoveRequest{Name: "db"}); err != nil {
		t.Fatal(err)
	}
}

// Docker must never be left holding a mount ID it cannot release: an
// Unmount of an ID the plugin does not know succeeds and changes nothing.
func TestUnmountOfUnknownIDSucceeds(t *testing.T) {
	c := newCluster(t)
	a := c.host("node-a", "", "")
	mustCreate(t, a, "db", nil)
	mustUnmount(t, a, "db", "never-mounted")
	mustUnmount(t, a, "nosuch", "m1") // a volume removed meanwhile
	mustMount(t, a, "db", "c1")
	mustUnmount(t, a, "db", "other")
	if _, ok, _ := fsutil.MountSource(filepath.Join(a.root, "db")); !ok {
		t.Fatal("an unknown ID's unmount unmounted the volume")
	}
	if cl := claimOf(t, a, "db"); cl.Host != "node-a" || cl.Refs("c1") != 1 || len(cl.Mounts) != 1 {
		t.Fatalf("claim after an unknown ID's unmount: %+v", cl)
	}
	mustUnmount(t, a, "db", "c1")
	mustUnmount(t, a, "db", "c1") // once more: Docker retries
	if err := a.drv.Remove(&volume.RemoveRequest{Name: "db"}); err != nil {
		t.Fatal(err)
	}
}

// switchable is a host's liveness that a test turns off while its lease
// stays bound (the host passed its cut-off but etcd has not expired it).
type switchable struct {
	hb  plugin.Liveness
	off atomic.Bool
}

func (s *switchable) Alive() bool             { return !s.off.Load() && s.hb.Alive() }
func (s *switchable) Lease() clientv3.LeaseID { return s.hb.Lease() }

// slowActivation passes its host's cut-off while it activates, as a slow
// LVM activation may.
type slowActivation struct {
	backends.Backend
	live *switchable
}

func (s slowActivation) Activate(ctx context.Context, name string) (string, error) {
	dev, err := s.Backend.Activate(ctx, name)
	s.live.off.Store(true)
	return dev, err
}

// Mount re-checks the host's liveness after activating: a host that passed
// its cut-off meanwhile must not hand Docker a volume its self-fencing has
// already swept past; it undoes the mount and gives the claim back.
func TestMountRechecksLivenessAfterActivating(t *testing.T) {
	c := newCluster(t)
	a := c.host("node-a", "", "")
	mustCreate(t, a, "db", nil)
	live := &switchable{hb: a.hb}
	root := t.TempDir()
	drv := plugin.New(a.st, slowActivation{Backend: c.be, live: live}, c.fs, fencing.None{Log: logrus.New()}, live, plugin.Options{
		Host: "node-a", MountRoot: root, Defaults: spec.Defaults{Size: 64 << 20, FS: "ext4"},
	})
	_, err := drv.Mount(&volume.MountRequest{Name: "db", ID: "m1"})
	wantErr(t, err, plugin.ErrNotAlive, `host node-a has no current etcd lease, so it may not mount volume "db"`)
	if _, ok, _ := fsutil.MountSource(filepath.Join(root, "db")); ok {
		t.Fatal("the volume stayed mounted after a refused mount")
	}
	if drv.MountCount("db") != 0 {
		t.Fatal("a refused mount is counted")
	}
	waitClaim(t, a, "db", func(cl store.Claim) bool { return !cl.Held() })
	if err := a.drv.Remove(&volume.RemoveRequest{Name: "db"}); err != nil {
		t.Fatal(err)
	}
}

// waitClaim waits until the volume's claim satisfies ok (a release may be
// retried in the background).
func waitClaim(t *testing.T, h *host, name string, ok func(store.Claim) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cl := claimOf(t, h, name)
		if ok(cl) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("claim of %s: %+v", name, cl)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Drop is how the agent collects mount IDs Docker will never unmount: it
// unmounts, deactivates and releases, but never a volume mounted after the
// agent looked at the engine's containers.
func TestDropOrphanedMountIDs(t *testing.T) {
	c := newCluster(t)
	a := c.host("node-a", "", "")
	mustCreate(t, a, "db", nil)
	looked := time.Now()
	mustMount(t, a, "db", "c1")
	if last := a.drv.Mounts()["db"]; last.Before(looked) {
		t.Fatalf("Mounts()[db] = %v, want the time of the mount", last)
	}
	if dropped, err := a.drv.Drop(context.Background(), "db", "test", looked); dropped || err != nil {
		t.Fatalf("dropped a volume mounted after the engine was listed: %v %v", dropped, err)
	}
	// The plugin restarts: the ID is recovered, and Docker may not know it.
	a.stop()
	a2 := c.host("node-a", a.root, a.state)
	if last, ok := a2.drv.Mounts()["db"]; !ok || !last.IsZero() {
		t.Fatalf("after restart Mounts()[db] = %v %v, want recovered (zero time)", last, ok)
	}
	dropped, err := a2.drv.Drop(context.Background(), "db", "test", time.Now())
	if !dropped || err != nil {
		t.Fatalf("Drop = %v %v", dropped, err)
	}
	if _, ok, _ := fsutil.MountSource(filepath.Join(a.root, "db")); ok {
		t.Fatal("still mounted after Drop")
	}
	if cl := claimOf(t, a2, "db"); cl.Held() {
		t.Fatalf("claim after Drop: %+v", cl)
	}
	mustUnmount(t, a2, "db", "c1") // Docker's late unmount of the dropped ID
	if err := a2.drv.Remove(&volume.RemoveRequest{Name: "db"}); err != nil {
		t.Fatal(err)
	}
}
