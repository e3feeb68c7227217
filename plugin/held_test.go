package plugin_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"golang.org/x/sys/unix"
)

// holdOpen bind-mounts the volume's filesystem elsewhere, as a container's
// mount namespace keeps it after the plugin's own mount is gone: the
// device stays open, so it cannot be deactivated.
func holdOpen(t *testing.T, h *host, name string) (release func()) {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount(filepath.Join(h.root, name), dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			if err := unix.Unmount(dir, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(release)
	return release
}

// A volume leaves this host's counts only once its device is closed and
// deactivated: a Drop (self-fencing, orphan collection) or an Unmount
// whose deactivation fails because something still holds the filesystem
// keeps it in Mounts(), so self-fencing goes on (stopping whatever uses
// it, reporting it left) instead of reporting done while the device is
// open and the lease runs out.
func TestFailedDeactivationKeepsTheVolumeCounted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		leave func(t *testing.T, h *host) error
	}{
		{"drop", func(t *testing.T, h *host) error {
			_, err := h.drv.Drop(context.Background(), "db", "test", time.Now())
			return err
		}},
		{"unmount", func(t *testing.T, h *host) error {
			return h.drv.Unmount(&volume.UnmountRequest{Name: "db", ID: "c1"})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			a := c.host("node-a", "", "")
			mustCreate(t, a, "db", nil)
			mustMount(t, a, "db", "c1")
			release := holdOpen(t, a, "db")
			if err := tc.leave(t, a); err == nil {
				t.Fatal("the volume left with its device still open, and no error said so")
			}
			if _, ok := a.drv.Mounts()["db"]; !ok {
				t.Fatalf("Mounts() = %v: db is gone from the counts while its device is still open", a.drv.Mounts())
			}
			if cl := claimOf(t, a, "db"); cl.Host != "node-a" {
				t.Fatalf("claim %+v released while the device is open", cl)
			}
			release()
			dropped, err := a.drv.Drop(context.Background(), "db", "test", time.Now())
			if !dropped || err != nil {
				t.Fatalf("Drop once nothing holds it: %v %v", dropped, err)
			}
			if m := a.drv.Mounts(); len(m) != 0 {
				t.Fatalf("Mounts() = %v after the volume was deactivated", m)
			}
			if cl := claimOf(t, a, "db"); cl.Held() {
				t.Fatalf("claim %+v still held after the volume was deactivated", cl)
			}
		})
	}
}
