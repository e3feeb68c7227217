package plugin_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/etcdembed"
	"github.com/relocvol/relocvol/internal/fsutil"
	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
	"github.com/relocvol/relocvol/plugin"
)

func TestCreateSeenByEveryHost(t *testing.T) {
	c := newCluster(t)
	a, b := c.host("node-a", "", ""), c.host("node-b", "", "")
	mustCreate(t, a, "db", map[string]string{"size": "64M", "fs": "ext4"})
	mustCreate(t, b, "logs", map[string]string{"size": "320M", "fs": "xfs"})

	got, err := b.drv.Get(&volume.GetRequest{Name: "db"})
	if err != nil {
		t.Fatal(err)
	}
	st := got.Volume.Status
	for k, want := range map[string]any{"backend": "loop", "size": "64M", "fs": "ext4", "owner": "", "epoch": int64(0), "state": "ready", "createdBy": "node-a"} {
		if fmt.Sprint(st[k]) != fmt.Sprint(want) {
			t.Errorf("Status[%s] = %v, want %v", k, st[k], want)
		}
	}
	list, err := a.drv.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range list.Volumes {
		names = append(names, v.Name)
	}
	if strings.Join(names, ",") != "db,logs" {
		t.Fatalf("List on a = %v, want db,logs", names)
	}
	if caps := a.drv.Capabilities(); caps.Capabilities.Scope != "global" {
		t.Fatalf("scope %q", caps.Capabilities.Scope)
	}
	for _, h := range []*host{a, b} {
		for _, v := range []string{"db", "logs"} {
			if err := h.drv.Remove(&volume.RemoveRequest{Name: v}); err != nil && h == a {
				t.Fatalf("remove %s: %v", v, err)
			}
		}
	}
}

func TestCreateIsIdempotent(t *testing.T) {
	c := newCluster(t)
	a, b := c.host("node-a", "", ""), c.host("node-b", "", "")
	mustCreate(t, a, "db", map[string]string{"size": "64M"})
	// Swarm repeats Create on every node, with or without the options.
	mustCreate(t, b, "db", map[string]string{"size": "64M"})
	mustCreate(t, b, "db", nil)
	err := b.drv.Create(&volume.CreateRequest{Name: "db", Options: map[string]string{"size": "512M", "fs": "xfs"}})
	wantErr(t, err, plugin.ErrConflict, `volume "db" already exists with size=64M fs=ext4`, "size=512M", "fs=xfs")
	if err := a.drv.Remove(&volume.RemoveRequest{Name: "db"}); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentCreateOnTwoHosts(t *testing.T) {
	c := newCluster(t)
	a, b := c.host("node-a", "", ""), c.host("node-b", "", "")
	errs := make(chan error, 2)
	for _, h := range []*host{a, b} {
		go func(h *host) {
			errs <- h.drv.Create(&volume.CreateRequest{Name: "shared", Options: map[string]string{"size": "64M"}})
		}(h)
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent create: %v", err)
		}
	}
	mp := mustMount(t, b, "shared", "m1")
	writeFile(t, mp, "x", "ok")
	mustUnmount(t, b, "shared", "m1")
	if err := a.drv.Remove(&volume.RemoveRequest{Name: "shared"}); err != nil {
		t.Fatal(err)
	}
}

func TestClaimsAndCounting(t *testing.T) {
	c := newCluster(t)
	a, b := c.host("node-a", "", ""), c.host("node-b", "", "")
	mustCreate(t, a, "db", nil)

	mp := mustMount(t, a, "db", "c1")
	if want := filepath.Join(a.root, "db", "data"); mp != want {
		t.Fatalf("mountpoint %s, want %s", mp, want)
	}
	writeFile(t, mp, "hello", "from a")
	// docker volume inspect shows the device the volume is mounted from.
	dev, err := c.be.Device(context.Background(), "db")
	if err != nil || dev == "" {
		t.Fatalf("device of db: %q %v", dev, err)
	}
	if got, err := a.drv.Get(&volume.GetRequest{Name: "db"}); err != nil || got.Volume.Status["device"] != dev || got.Volume.Mountpoint != mp {
		t.Fatalf("Get db while mounted: %+v %v; want device %s, mountpoint %s", got, err, dev, mp)
	}
	mustMount(t, a, "db", "c2")
	if n := a.drv.MountCount("db"); n != 2 {
		t.Fatalf("count %d, want 2", n)
	}
	cl := claimOf(t, a, "db")
	if cl.Host != "node-a" || cl.Epoch != 1 || len(cl.Mounts) != 2 {
		t.Fatalf("claim %+v, want node-a epoch 1 with 2 mounts", cl)
	}

	// A live owner: b is refused, and so is removal anywhere.
	_, err = b.drv.Mount(&volume.MountRequest{Name: "db", ID: "b1"})
	wantErr(t, err, plugin.ErrInUse, `volume "db" is in use on host node-a (alive, last renewed`)
	// When the holder is down, Swarm's next attempt should know when it
	// can succeed.
	wantErr(t, err, plugin.ErrInUse, `takeover possible in about`)
	wantErr(t, b.drv.Remove(&volume.RemoveRequest{Name: "db"}), plugin.ErrInUse, `volume "db" is in use on host node-a`)
	wantErr(t, a.drv.Remove(&volume.RemoveRequest{Name: "db"}), plugin.ErrInUse, "node-a (this host, 2 mounts)")
	got, err := b.drv.Get(&volume.GetRequest{Name: "db"})
	if err != nil || got.Volume.Status["owner"] != "node-a" || got.Volume.Status["ownerAlive"] != true {
		t.Fatalf("Get on b: %+v %v", got, err)
	}

	mustUnmount(t, a, "db", "c1")
	if _, ok, _ := fsutil.MountSource(filepath.Join(a.root, "db")); !ok {
		t.Fatalf("unmounted while c2 still uses it")
	}
	if cl := claimOf(t, a, "db"); cl.Host != "node-a" || len(cl.Mounts) != 1 {
		t.Fatalf("claim after one unmount: %+v", cl)
	}
	mustUnmount(t, a, "db", "c2")
	if _, ok, _ := fsutil.MountSource(filepath.Join(a.root, "db")); ok {
		t.Fatalf("still mounted after the last unmount")
	}
	if dev, _ := c.be.Device(context.Background(), "db"); dev != "" {
		t.Fatalf("loop device %s left after the last unmount", dev)
	}
	if cl := claimOf(t, a, "db"); cl.Held() || cl.Epoch != 1 {
		t.Fatalf("claim after the last unmount: %+v, want released at epoch 1", cl)
	}

	// Now b may take it, with the next epoch, and sees a's data.
	mp = mustMount(t, b, "db", "b1")
	if got := readFile(t, mp, "hello"); got != "from a" {
		t.Fatalf("b reads %q", got)
	}
	if cl := claimOf(t, b, "db"); cl.Host != "node-b" || cl.Epoch != 2 || cl.TakenFrom != "" {
		t.Fatalf("claim on b: %+v", cl)
	}
	path, err := b.drv.Path(&volume.PathRequest{Name: "db"})
	if err != nil || path.Mountpoint != mp {
		t.Fatalf("Path on b = %+v %v", path, err)
	}
	if path, _ := a.drv.Path(&volume.PathRequest{Name: "db"}); path.Mountpoint != "" {
		t.Fatalf("Path on a = %q, want empty: not mounted there", path.Mountpoint)
	}
	mustUnmount(t, b, "db", "b1")
	if err := b.drv.Remove(&volume.RemoveRequest{Name: "db"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(c.san, "db.img")); !os.IsNotExist(err) {
		t.Fatalf("image file left after remove: %v", err)
	}
}

func TestTakeoverFromDeadHost(t *testing.T) {
	c := newCluster(t)
	a, b := c.host("node-a", "", ""), c.host("node-b", "", "")
	mustCreate(t, a, "db", nil)
	mp := mustMount(t, a, "db", "c1")
	writeFile(t, mp, "journal", "committed")
	aRoot, aState := a.root, a.state

	a.kill(t)
	mp = mustMount(t, b, "db", "b1")
	if got := readFile(t, mp, "journal"); got != "committed" {
		t.Fatalf("b reads %q after takeover", got)
	}
	cl := claimOf(t, b, "db")
	if cl.Host != "node-b" || cl.Epoch != 2 || cl.TakenFrom != "node-a" {
		t.Fatalf("claim after takeover: %+v", cl)
	}
	f, rev, err := b.st.GetFence(context.Background(), "node-a")
	if err != nil || rev == 0 || f.By != "node-b" || f.Method != "none" || f.Volume != "db" {
		t.Fatalf("fence mark: %+v rev %d err %v", f, rev, err)
	}

	// a comes back (same folders): it must drop its stale mount and clear
	// its mark before it counts as alive again, and never take db back.
	a2 := c.host("node-a", aRoot, aState)
	if _, ok, _ := fsutil.MountSource(filepath.Join(aRoot, "db")); ok {
		t.Fatalf("returning host kept its mount of a volume taken over by node-b")
	}
	if _, rev, _ := b.st.GetFence(context.Background(), "node-a"); rev != 0 {
		t.Fatalf("fence mark not cleared after the host cleaned up")
	}
	if a2.drv.MountCount("db") != 0 {
		t.Fatalf("returning host counts mounts of db")
	}
	_, err = a2.drv.Mount(&volume.MountRequest{Name: "db", ID: "c9"})
	wantErr(t, err, plugin.ErrInUse, "in use on host node-b")

	mustUnmount(t, b, "db", "b1")
	if err := a2.drv.Remove(&volume.RemoveRequest{Name: "db"}); err != nil {
		t.Fatal(err)
	}
}

func TestRestartKeepsMountsAndCounts(t *testing.T) {
	c := newCluster(t)
	a := c.host("node-a", "", "")
	mustCreate(t, a, "db", nil)
	mp := mustMount(t, a, "db", "c1")
	mustMount(t, a, "db", "c2")
	writeFile(t, mp, "before", "restart")

	// The plugin process restarts: a new driver on the same folders, while
	// the old lease has not expired yet.
	a.stop()
	a2 := c.host("node-a", a.root, a.state)
	if n := a2.drv.MountCount("db"); n != 2 {
		t.Fatalf("after restart count = %d, want 2", n)
	}
	if got := readFile(t, mp, "before"); got != "restart" {
		t.Fatalf("data after restart: %q", got)
	}
	// Mounting a third time must not mount twice.
	mustMount(t, a2, "db", "c3")
	mounts, _ := fsutil.Mounts(a.root)
	if len(mounts) != 1 {
		t.Fatalf("mounts under the root after restart: %v, want exactly one", mounts)
	}
	for _, id := range []string{"c1", "c2", "c3"} {
		mustUnmount(t, a2, "db", id)
	}
	if cl := claimOf(t, a2, "db"); cl.Held() {
		t.Fatalf("claim still held after every unmount: %+v", cl)
	}
	if err := a2.drv.Remove(&volume.RemoveRequest{Name: "db"}); err != nil {
		t.Fatal(err)
	}
}

func TestRestartReleasesStaleClaim(t *testing.T) {
	c := newCluster(t)
	a := c.host("node-a", "", "")
	mustCreate(t, a, "db", nil)
	mustMount(t, a, "db", "c1")
	// The host reboots: its mounts and loop devices are gone, the claim in
	// etcd still names it.
	a.stop()
	if err := c.fs.Unmount(context.Background(), filepath.Join(a.root, "db")); err != nil {
		t.Fatal(err)
	}
	if err := c.be.Deactivate(context.Background(), "db"); err != nil {
		t.Fatal(err)
	}
	a2 := c.host("node-a", a.root, a.state)
	if cl := claimOf(t, a2, "db"); cl.Held() || len(cl.Mounts) != 0 {
		t.Fatalf("stale claim kept after reboot: %+v", cl)
	}
	if err := a2.drv.Remove(&volume.RemoveRequest{Name: "db"}); err != nil {
		t.Fatal(err)
	}
}

func TestDuplicateHostNameRefused(t *testing.T) {
	c := newCluster(t)
	c.host("node-a", "", "")
	cli := c.host("node-b", "", "") // any second host with its own name works
	_ = cli
	// A second process calling itself node-a, with another state folder, is refused.
	hb2 := newHeartbeatOnly(t, c, "node-a")
	if err := hb2.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "give this host another name") {
		t.Fatalf("second node-a: err = %v", err)
	}
}

// notAlive is a host whose lease is not current (it has not rejoined).
type notAlive struct{}

func (notAlive) Alive() bool             { return false }
func (notAlive) Lease() clientv3.LeaseID { return 0 }

func TestMountRefusedWhileNotAlive(t *testing.T) {
	c := newCluster(t)
	b := c.host("node-b", "", "")
	mustCreate(t, b, "db", nil)
	drv := plugin.New(b.st, c.be, c.fs, fencing.None{Log: logrus.New()}, notAlive{}, plugin.Options{
		Host: "node-c", MountRoot: t.TempDir(), Defaults: spec.Defaults{Size: 64 << 20, FS: "ext4"},
	})
	_, err := drv.Mount(&volume.MountRequest{Name: "db", ID: "m1"})
	wantErr(t, err, plugin.ErrNotAlive, `host node-c has no current etcd lease, so it may not mount volume "db"`)

	if _, err := b.st.MarkFence(context.Background(), store.Fence{Host: "node-c", By: "node-b", Volume: "logs", Method: "none"}); err != nil {
		t.Fatal(err)
	}
	_, err = drv.Mount(&volume.MountRequest{Name: "db", ID: "m1"})
	wantErr(t, err, plugin.ErrNotAlive, `host node-c was fenced by host node-b`, `(it took over volume "logs")`, "until it has cleaned up and rejoined")
	if cl := claimOf(t, b, "db"); cl.Held() {
		t.Fatalf("a refused mount changed the claim: %+v", cl)
	}
	if err := b.drv.Remove(&volume.RemoveRequest{Name: "db"}); err != nil {
		t.Fatal(err)
	}
}

// TestFencedHostKeepsNothing: a reservation covers the whole LUN, so a
// fenced host could write to none of its volumes. When it comes back it
// must unmount and deactivate all of them, its own included, release its
// claims and clear its mark before it may mount again.
func TestFencedHostKeepsNothing(t *testing.T) {
	c := newCluster(t)
	a, b := c.host("node-a", "", ""), c.host("node-b", "", "")
	mustCreate(t, a, "db", nil)
	mustCreate(t, a, "logs", nil)
	mustMount(t, a, "db", "c1")
	mustMount(t, a, "logs", "c2")
	a.kill(t)
	mustMount(t, b, "logs", "b1") // fences node-a, takes logs over

	a2 := c.host("node-a", a.root, a.state)
	if mounts, _ := fsutil.Mounts(a.root); len(mounts) != 0 {
		t.Fatalf("fenced host still has mounts: %v", mounts)
	}
	if n := a2.drv.MountCount("db") + a2.drv.MountCount("logs"); n != 0 {
		t.Fatalf("fenced host still counts %d mounts", n)
	}
	if cl := claimOf(t, a2, "db"); cl.Held() || cl.Epoch != 1 {
		t.Fatalf("fenced host kept its own claim: %+v, want released at epoch 1", cl)
	}
	if cl := claimOf(t, a2, "logs"); cl.Host != "node-b" {
		t.Fatalf("logs claim: %+v", cl)
	}
	if _, rev, _ := a2.st.GetFence(context.Background(), "node-a"); rev != 0 {
		t.Fatal("mark not cleared")
	}
	// Back in the cluster, it may mount what is free again.
	mustMount(t, a2, "db", "c3")
	mustUnmount(t, a2, "db", "c3")
	mustUnmount(t, b, "logs", "b1")
	for _, v := range []string{"db", "logs"} {
		if err := a2.drv.Remove(&volume.RemoveRequest{Name: v}); err != nil {
			t.Fatal(err)
		}
	}
}

// alwaysAlive is a host that believes its lease is current.
type alwaysAlive struct{}

func (alwaysAlive) Alive() bool             { return true }
func (alwaysAlive) Lease() clientv3.LeaseID { return 1 }

// When etcd does not answer, Docker hears which etcd, for which volume and
// host, and what to check, not "context deadline exceeded".
func TestEtcdDownSaysWhatToDo(t *testing.T) {
	c := newCluster(t)
	srv, err := etcdembed.Start(t.TempDir(), "127.0.0.1:0", etcdembed.Options{NoFsync: true, LogLevel: "fatal"})
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(testenv.EtcdClient(t, srv.Endpoints()), "/relocvol")
	drv := plugin.New(st, c.be, c.fs, fencing.None{Log: logrus.New()}, alwaysAlive{}, plugin.Options{
		Host: "node-e", MountRoot: t.TempDir(), Defaults: spec.Defaults{Size: 64 << 20, FS: "ext4"},
	})
	srv.Close()
	_, err = drv.Mount(&volume.MountRequest{Name: "db", ID: "m1"})
	wantErr(t, err, nil, `relocvol: cannot mount volume "db" on host node-e: etcd at `+srv.Endpoints()[0]+` did not answer within 5s`,
		"check that etcd runs and that this host reaches it")
	if strings.Contains(err.Error(), "context deadline exceeded") {
		t.Fatalf("Docker would see Go's words: %v", err)
	}
}
