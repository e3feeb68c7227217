package backendtest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/relocvol/relocvol/backends"
	"github.com/relocvol/relocvol/internal/fsutil"
	"github.com/relocvol/relocvol/internal/testenv"
)

// testGrow grows a mounted volume with data on it, as `relocvol volume
// grow` does under a running container: the storage (Grow), this host's
// device (Refresh), then the filesystem online. The filesystem must
// offer the new space at once, keep the data, and keep its size across a
// deactivation. Where this process cannot grow the filesystem online (ext4
// without CAP_SYS_RESOURCE: this machine's sandbox) it grows it as the
// plugin then does, offline before the next mount. A backend without the
// ability is skipped: the plugin refuses to grow its volumes.
func testGrow(t *testing.T, e *env, v backends.Volume) {
	g, ok := e.b.(backends.Grower)
	if !ok {
		t.Skipf("backend %s cannot grow volumes", e.b.Name())
	}
	name := e.use(v.Name)
	mp := e.mountPoint(name)
	data := bytes.Repeat([]byte("relocvol grow "), 1000)
	file := filepath.Join(mp, "data")

	e.must(e.create(v), "Create")
	dev := e.activate(name, "activation")
	e.must(e.fs.Mount(e.ctx, dev, v.FS, mp), "Mount")
	e.writeFile(file, data)
	before := testenv.FSSize(t, mp)

	e.must(g.Grow(e.ctx, name, 2*v.Size), "Grow to twice the size")
	e.must(g.Grow(e.ctx, name, v.Size), "Grow to a smaller size (nothing to do)")
	e.must(g.Refresh(e.ctx, name), "Refresh")
	if online, why := fsutil.GrowsOnline(v.FS); online {
		e.must(e.fs.Grow(e.ctx, v.FS, dev, mp), "grow the filesystem")
		e.must(e.fs.Grow(e.ctx, v.FS, dev, mp), "grow the filesystem again (nothing to do)")
	} else {
		t.Logf("%s cannot grow online here (%s): offline, as the plugin does at the next mount", v.FS, why)
		e.must(e.fs.Unmount(e.ctx, mp), "Unmount to grow offline")
		e.must(e.fs.GrowOffline(e.ctx, v.FS, dev), "grow the filesystem offline")
		e.must(e.fs.Mount(e.ctx, dev, v.FS, mp), "Mount after growing offline")
	}
	after := testenv.FSSize(t, mp)
	// Twice the device, minus what the filesystem keeps for itself.
	if after < before+v.Size*9/10 {
		t.Fatalf("filesystem %d bytes after growing a %d-byte volume to %d (it was %d): want about %d more", after, v.Size, 2*v.Size, before, v.Size)
	}
	if got, err := os.ReadFile(file); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("data after the grow: %d bytes, %v; want the %d bytes written before", len(got), err, len(data))
	}

	// The new size is the storage's, not the device's: it stays.
	e.must(e.fs.Unmount(e.ctx, mp), "Unmount")
	e.must(e.b.Deactivate(e.ctx, name), "Deactivate")
	dev = e.activate(name, "reactivation")
	e.must(e.fs.Mount(e.ctx, dev, v.FS, mp), "Mount after reactivation")
	if again := testenv.FSSize(t, mp); again != after {
		t.Fatalf("filesystem %d bytes after reactivation, want %d as grown", again, after)
	}
	e.must(e.fs.Unmount(e.ctx, mp), "Unmount after reactivation")
	e.must(e.b.Deactivate(e.ctx, name), "Deactivate after reactivation")

	e.mustBe(g.Grow(e.ctx, "rvt-grow-nosuch", v.Size), backends.ErrNotFound, "Grow of a missing volume")
}
