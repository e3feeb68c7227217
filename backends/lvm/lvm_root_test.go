package lvm

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/backends"
	"github.com/relocvol/relocvol/backends/backendtest"
	"github.com/relocvol/relocvol/internal/execx"
	"github.com/relocvol/relocvol/internal/fsutil"
	"github.com/relocvol/relocvol/internal/testenv"
)

// processLock serializes metadata changes within this test process; the
// cluster-wide etcd lock is tested in internal/store and on the VM lab.
type processLock struct{ mu sync.Mutex }

func (l *processLock) WithLock(ctx context.Context, _ string, fn func(context.Context) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fn(ctx)
}

func (l *processLock) WithLockSteps(ctx context.Context, _ string, fn func(context.Context, func(context.Context) error) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fn(ctx, func(context.Context) error { return nil })
}

// TestConformance runs the shared backend suite on real LVM, in the scratch
// volume group named by RELOCVOL_TEST_VG. It needs device-mapper, which this
// machine's own kernel lacks: e2e/sanlab compiles this test and runs it
// inside a VM of the lab, on the lab's shared VG.
func TestConformance(t *testing.T) {
	vg := os.Getenv("RELOCVOL_TEST_VG")
	if _, err := os.Stat("/dev/mapper/control"); err != nil {
		t.Skip("needs device-mapper, which this kernel lacks; e2e/sanlab runs this test inside the VM lab")
	}
	if vg == "" {
		t.Skip("set RELOCVOL_TEST_VG to a scratch volume group (its LVs rv-rvt-* are created and removed); e2e/sanlab does so in the VM lab")
	}
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "lvcreate", "lvchange", "lvremove", "lvs", "mkfs.ext4", "mkfs.xfs", "mount")
	log := logrus.New()
	log.SetOutput(testenv.LogWriter{T: t})
	log.SetLevel(logrus.DebugLevel)
	run := &execx.OS{Log: log}
	lock := &processLock{}
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		l, err := New(vg, run, lock, WithLogger(log))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
		return l
	}, fsutil.FS{Run: run})
}
