// Package backendtest is the conformance suite every backend runs (loop now,
// lvm later) on real devices and filesystems, so that the plugin can rely on
// the same behaviour whatever stores the volumes: idempotent operations, the
// sentinel errors, data that survives deactivation, and no partial work left
// behind by a failure.
package backendtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/relocvol/relocvol/backends"
	"github.com/relocvol/relocvol/internal/fsutil"
)

// opTimeout bounds every subtest; mkfs.xfs on a slow disk is the longest step.
const opTimeout = 5 * time.Minute

// sizes per filesystem: mkfs.xfs refuses filesystems under 300 MiB.
var filesystems = []struct {
	fs   string
	size int64
}{
	{fs: "ext4", size: 64 << 20},
	{fs: "xfs", size: 320 << 20},
}

// Run runs the suite. newBackend must return a backend over fresh, empty
// storage each time it is called (one call per subtest); fs is used to mount
// the volumes the way the plugin does. After every subtest Run checks that
// nothing is left mounted under its mount directory and no volume it created
// is still active, then removes what it created.
func Run(t *testing.T, newBackend func(t *testing.T) backends.Backend, fs fsutil.FS) {
	for _, c := range filesystems {
		t.Run(c.fs, func(t *testing.T) {
			t.Run("lifecycle", func(t *testing.T) {
				testLifecycle(t, setup(t, newBackend, fs), backends.Volume{Name: "rvt-life-" + c.fs, Size: c.size, FS: c.fs})
			})
			t.Run("grow online", func(t *testing.T) {
				testGrow(t, setup(t, newBackend, fs), backends.Volume{Name: "rvt-grow-" + c.fs, Size: c.size, FS: c.fs})
			})
		})
	}
	t.Run("independent volumes", func(t *testing.T) { testIndependent(t, setup(t, newBackend, fs)) })
	t.Run("missing volume", func(t *testing.T) { testMissing(t, setup(t, newBackend, fs)) })
	t.Run("create rolls back", func(t *testing.T) { testCreateRollback(t, setup(t, newBackend, fs)) })
	t.Run("foreign storage is never removed", func(t *testing.T) { testForeign(t, setup(t, newBackend, fs)) })
}

// env is one subtest's backend, mount directory and the volumes it made.
type env struct {
	t     *testing.T
	ctx   context.Context
	b     backends.Backend
	fs    fsutil.FS
	mnt   string   // mount points are created directly under it
	names []string // volumes to check and remove at the end
	// ids are the create IDs of the volumes it made (create).
	ids map[string]string
}

func setup(t *testing.T, newBackend func(t *testing.T) backends.Backend, fs fsutil.FS) *env {
	t.Helper()
	// Made before the check is registered, so their own cleanup (removing
	// the directories) runs after the check has unmounted everything.
	mnt := t.TempDir()
	b := newBackend(t)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	e := &env{t: t, ctx: ctx, b: b, fs: fs, mnt: mnt, ids: map[string]string{}}
	t.Cleanup(func() {
		e.checkAndClean()
		cancel()
	})
	return e
}

// use records name so the end-of-test check covers it.
func (e *env) use(name string) string {
	e.names = append(e.names, name)
	return name
}

// create runs Create of v under a fresh identity, which remove uses.
func (e *env) create(v backends.Volume) error {
	v.CreateID = backends.NewCreateID()
	err := e.b.Create(e.ctx, v)
	if err == nil {
		e.ids[v.Name] = v.CreateID
	}
	return err
}

// remove runs Remove of name as the create that made it.
func (e *env) remove(ctx context.Context, name string) error {
	return e.b.Remove(ctx, name, e.ids[name])
}

func (e *env) mountPoint(name string) string { return filepath.Join(e.mnt, name) }

// checkAndClean fails the test on a leaked mount or active volume (unless it
// already failed, when leftovers are expected), and cleans up either way so
// the machine is left as it was found.
func (e *env) checkAndClean() {
	t := e.t
	// The subtest's own context is done by now; cleanup gets a fresh one.
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	leak := func(format string, args ...any) {
		if t.Failed() {
			t.Logf("cleaning up after failure: "+format, args...)
		} else {
			t.Errorf("leaked: "+format, args...)
		}
	}

	mounts, err := fsutil.Mounts(e.mnt)
	if err != nil {
		t.Errorf("list mounts under %s: %v", e.mnt, err)
	}
	for mp, src := range mounts {
		leak("mount of %s on %s", src, mp)
		if err := e.fs.Unmount(ctx, mp); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	for _, name := range e.names {
		dev, err := e.b.Device(ctx, name)
		if err != nil {
			t.Errorf("cleanup: device of %s: %v", name, err)
		}
		if dev != "" {
			leak("volume %s still active on %s", name, dev)
			if err := e.b.Deactivate(ctx, name); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		if err := e.remove(ctx, name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
}

func (e *env) must(err error, step string) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v", step, err)
	}
}

func (e *env) mustBe(err, want error, step string) {
	e.t.Helper()
	if !errors.Is(err, want) {
		e.t.Fatalf("%s: err = %v, want %v", step, err, want)
	}
}

func (e *env) wantDevice(name, want, step string) {
	e.t.Helper()
	got, err := e.b.Device(e.ctx, name)
	e.must(err, step+": Device")
	if got != want {
		e.t.Fatalf("%s: Device(%s) = %q, want %q", step, name, got, want)
	}
}

func (e *env) activate(name, step string) string {
	e.t.Helper()
	dev, err := e.b.Activate(e.ctx, name)
	e.must(err, step+": Activate")
	if dev == "" {
		e.t.Fatalf("%s: Activate(%s) returned no device", step, name)
	}
	return dev
}

func (e *env) writeFile(path string, data []byte) {
	e.t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	e.must(err, "create test file")
	_, err = f.Write(data)
	e.must(errors.Join(err, f.Sync(), f.Close()), "write and fsync test file")
}

func testLifecycle(t *testing.T, e *env, v backends.Volume) {
	name := e.use(v.Name)
	mp := e.mountPoint(name)
	data := []byte(fmt.Sprintf("relocvol %s conformance data for %s\n", e.b.Name(), name))
	file := filepath.Join(mp, "data")

	e.must(e.create(v), "Create")
	id := e.ids[name]
	e.mustBe(e.create(v), backends.ErrExists, "Create again")
	e.ids[name] = id
	e.wantDevice(name, "", "after Create")

	dev := e.activate(name, "first activation")
	if again := e.activate(name, "activate again"); again != dev {
		t.Fatalf("Activate again = %q, want the same device %q", again, dev)
	}
	e.wantDevice(name, dev, "while active")

	e.must(e.fs.Mount(e.ctx, dev, v.FS, mp), "Mount")
	e.must(e.fs.Mount(e.ctx, dev, v.FS, mp), "Mount again (idempotent)")
	e.writeFile(file, data)

	// Deactivating a mounted volume must not pass silently: the plugin would
	// believe the host has let go of storage it is still writing to.
	e.mustBe(e.b.Deactivate(e.ctx, name), backends.ErrInUse, "Deactivate while mounted")
	e.mustBe(e.remove(e.ctx, name), backends.ErrInUse, "Remove while mounted")

	e.must(e.fs.Unmount(e.ctx, mp), "Unmount")
	e.must(e.fs.Unmount(e.ctx, mp), "Unmount again (idempotent)")
	if _, err := os.Lstat(mp); !os.IsNotExist(err) {
		t.Fatalf("mount point %s still there after Unmount: %v", mp, err)
	}
	e.must(e.b.Deactivate(e.ctx, name), "Deactivate")
	e.wantDevice(name, "", "after Deactivate")
	e.must(e.b.Deactivate(e.ctx, name), "Deactivate again")

	// The data must survive a full deactivation, as it must survive a move
	// to another host.
	dev = e.activate(name, "reactivation")
	e.wantDevice(name, dev, "after reactivation")
	e.must(e.fs.Mount(e.ctx, dev, v.FS, mp), "Mount after reactivation")
	got, err := os.ReadFile(file)
	e.must(err, "read back test file")
	if string(got) != string(data) {
		t.Fatalf("data after reactivation = %q, want %q", got, data)
	}
	e.must(e.fs.Unmount(e.ctx, mp), "Unmount after reactivation")

	e.mustBe(e.remove(e.ctx, name), backends.ErrInUse, "Remove while active")
	e.must(e.b.Deactivate(e.ctx, name), "Deactivate before Remove")
	e.must(e.b.Deactivate(e.ctx, name), "Deactivate twice")
	e.wantDevice(name, "", "before Remove")
	e.must(e.remove(e.ctx, name), "Remove")
	e.must(e.remove(e.ctx, name), "Remove again")
	_, err = e.b.Activate(e.ctx, name)
	e.mustBe(err, backends.ErrNotFound, "Activate after Remove")
	e.wantDevice(name, "", "after Remove")
}

// Two volumes of one backend must never be confused: each has its own device
// and deactivating one leaves the other alone.
func testIndependent(t *testing.T, e *env) {
	a, b := e.use("rvt-ind-a"), e.use("rvt-ind-b")
	for _, name := range []string{a, b} {
		e.must(e.create(backends.Volume{Name: name, Size: 64 << 20, FS: "ext4"}), "Create "+name)
	}
	devA := e.activate(a, "activate a")
	e.wantDevice(b, "", "b before its activation")
	devB := e.activate(b, "activate b")
	if devA == devB {
		t.Fatalf("both volumes on %s", devA)
	}
	e.must(e.b.Deactivate(e.ctx, a), "Deactivate a")
	e.wantDevice(a, "", "a after Deactivate")
	e.wantDevice(b, devB, "b after a's Deactivate")
	e.mustBe(e.remove(e.ctx, b), backends.ErrInUse, "Remove active b")
	e.must(e.remove(e.ctx, a), "Remove inactive a")
	e.wantDevice(b, devB, "b after a's Remove")
	e.must(e.b.Deactivate(e.ctx, b), "Deactivate b")
}

func testMissing(t *testing.T, e *env) {
	name := e.use("rvt-never-created")
	_, err := e.b.Activate(e.ctx, name)
	e.mustBe(err, backends.ErrNotFound, "Activate")
	e.wantDevice(name, "", "Device")
	e.must(e.b.Deactivate(e.ctx, name), "Deactivate")
	e.must(e.b.Remove(e.ctx, name, backends.NewCreateID()), "Remove")
}

// Only what a create made is removed in its name: storage another create
// made (etcd restored from a backup, a VG taken over from a lost cluster,
// a create taken over meanwhile) is left as it is, whatever asks.
func testForeign(t *testing.T, e *env) {
	name := e.use("rvt-foreign")
	v := backends.Volume{Name: name, Size: 64 << 20, FS: "ext4"}
	e.must(e.create(v), "Create")
	mine := e.ids[name]
	for _, other := range []string{backends.NewCreateID(), ""} {
		e.mustBe(e.b.Remove(e.ctx, name, other), backends.ErrForeign, fmt.Sprintf("Remove as create %q", other))
	}
	dev := e.activate(name, "activate after the refused removals")
	e.must(e.fs.Mount(e.ctx, dev, v.FS, e.mountPoint(name)), "Mount after the refused removals")
	e.must(e.fs.Unmount(e.ctx, e.mountPoint(name)), "Unmount")
	e.must(e.b.Deactivate(e.ctx, name), "Deactivate")
	e.must(e.b.Remove(e.ctx, name, mine), "Remove as the create that made it")
	_, err := e.b.Activate(e.ctx, name)
	e.mustBe(err, backends.ErrNotFound, "Activate after Remove")
}

// A Create that fails must leave nothing behind, or the retry the operator
// makes after fixing the request would fail with ErrExists.
func testCreateRollback(t *testing.T, e *env) {
	tests := []struct {
		name string
		v    backends.Volume
	}{
		// mkfs.xfs itself refuses this size, so the failure comes from the
		// real command after the storage was provisioned.
		{name: "mkfs fails", v: backends.Volume{Name: "rvt-rollback-mkfs", Size: 16 << 20, FS: "xfs"}},
		{name: "unsupported fs", v: backends.Volume{Name: "rvt-rollback-fs", Size: 64 << 20, FS: "relocvol-nofs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &env{t: t, ctx: e.ctx, b: e.b, fs: e.fs, mnt: e.mnt, ids: map[string]string{}}
			t.Cleanup(e.checkAndClean)
			name := e.use(tt.v.Name)
			err := e.create(tt.v)
			if err == nil {
				t.Fatalf("Create(%+v) succeeded, want an error", tt.v)
			}
			if errors.Is(err, backends.ErrExists) {
				t.Fatalf("Create(%+v): %v, want a failure other than ErrExists", tt.v, err)
			}
			_, err = e.b.Activate(e.ctx, name)
			e.mustBe(err, backends.ErrNotFound, "Activate after failed Create")
			e.wantDevice(name, "", "after failed Create")
			e.must(e.create(backends.Volume{Name: name, Size: 64 << 20, FS: "ext4"}), "Create after failed Create")
			e.must(e.remove(e.ctx, name), "Remove")
		})
	}
}
