package loop_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/backends"
	"github.com/relocvol/relocvol/backends/backendtest"
	"github.com/relocvol/relocvol/backends/loop"
	"github.com/relocvol/relocvol/internal/execx"
	"github.com/relocvol/relocvol/internal/fsutil"
	"github.com/relocvol/relocvol/internal/testenv"
)

func requireLoopEnv(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "losetup", "mkfs.ext4", "mkfs.xfs", "mount", "umount")
}

// testLogger sends logs (commands at debug) to t.Log, so they show with the
// test that caused them.
func testLogger(t testing.TB) *logrus.Logger {
	log := logrus.New()
	log.Out = testenv.LogWriter{T: t}
	log.Level = logrus.DebugLevel
	return log
}

// TestConformance runs the shared backend suite on real loop devices, real
// mkfs and real mounts.
func TestConformance(t *testing.T) {
	requireLoopEnv(t)
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		log := testLogger(t)
		l, err := loop.New(t.TempDir(), &execx.OS{Log: log}, loop.WithLogger(log))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}, fsutil.FS{Run: &execx.OS{Log: testLogger(t)}})
}

// The managed plugin sees the image directory under another path than the
// host (and than losetup reports); an image attached through one path must be
// recognised through the other.
func TestAttachedSeenThroughOtherPath(t *testing.T) {
	requireLoopEnv(t)
	ctx := context.Background()
	log := testLogger(t)
	run := &execx.OS{Log: log}
	hostDir, pluginDir := t.TempDir(), t.TempDir()

	host, err := loop.New(hostDir, run, loop.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Create(ctx, backends.Volume{Name: "v", Size: 64 << 20, FS: "ext4", CreateID: "0123456789abcdef"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Remove(context.Background(), "v", "0123456789abcdef") })

	if _, err := run.Run(ctx, "mount", "--bind", hostDir, pluginDir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := run.Run(context.Background(), "umount", pluginDir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	plugin, err := loop.New(pluginDir, run, loop.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(pluginDir, "v.img")); err != nil {
		t.Fatalf("bind mount does not show the image: %v", err)
	}

	dev, err := host.Activate(ctx, "v")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Deactivate(context.Background(), "v") })

	if got, err := plugin.Device(ctx, "v"); err != nil || got != dev {
		t.Fatalf("Device through the other path = %q, %v; want %q", got, err, dev)
	}
	if got, err := plugin.Activate(ctx, "v"); err != nil || got != dev {
		t.Fatalf("Activate through the other path = %q, %v; want the same device %q", got, err, dev)
	}
	if err := plugin.Deactivate(ctx, "v"); err != nil {
		t.Fatal(err)
	}
	if got, err := host.Device(ctx, "v"); err != nil || got != "" {
		t.Fatalf("Device after Deactivate through the other path = %q, %v; want none", got, err)
	}
}
