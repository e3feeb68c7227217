package fsutil

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"

	"github.com/relocvol/relocvol/internal/execx"
)

func fixtureMounts(t *testing.T) []*mountinfo.Info {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "mountinfo.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	infos, err := readMounts(f)
	if err != nil {
		t.Fatalf("parse fixture: %v", err)
	}
	return infos
}

func TestTopMountAt(t *testing.T) {
	infos := fixtureMounts(t)
	tests := []struct {
		name       string
		target     string
		wantSource string
		wantNil    bool
	}{
		{name: "loop device", target: "/var/lib/relocvol/mounts/db", wantSource: "/dev/loop0"},
		{name: "device-mapper", target: "/var/lib/relocvol/mounts/web", wantSource: "/dev/mapper/vg0-web"},
		{name: "escaped space", target: "/var/lib/relocvol/mounts/with space", wantSource: "/dev/loop4"},
		{name: "stacked mounts: topmost wins", target: "/var/lib/relocvol/mounts/stacked", wantSource: "/dev/loop2"},
		{name: "root fs", target: "/", wantSource: "/dev/vda"},
		{name: "not a mount point", target: "/var/lib/relocvol/mounts/none", wantNil: true},
		{name: "prefix of a mount point is not one", target: "/var/lib/relocvol/mount", wantNil: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := topMountAt(infos, tt.target)
			if tt.wantNil {
				if got != nil {
					t.Fatalf("topMountAt(%q) = %q, want not mounted", tt.target, got.Source)
				}
				return
			}
			if got == nil {
				t.Fatalf("topMountAt(%q) = not mounted, want %q", tt.target, tt.wantSource)
			}
			if got.Source != tt.wantSource {
				t.Errorf("topMountAt(%q) = %q, want %q", tt.target, got.Source, tt.wantSource)
			}
		})
	}
}

func TestMountsUnder(t *testing.T) {
	infos := fixtureMounts(t)
	tests := []struct {
		name string
		root string
		want map[string]string
	}{
		{
			name: "direct children only, not root, not nested, not siblings",
			root: "/var/lib/relocvol/mounts",
			want: map[string]string{
				"/var/lib/relocvol/mounts/db":         "/dev/loop0",
				"/var/lib/relocvol/mounts/web":        "/dev/mapper/vg0-web",
				"/var/lib/relocvol/mounts/with space": "/dev/loop4",
				"/var/lib/relocvol/mounts/stacked":    "/dev/loop2",
			},
		},
		{
			name: "nested",
			root: "/var/lib/relocvol/mounts/db",
			want: map[string]string{"/var/lib/relocvol/mounts/db/sub": "tmpfs"},
		},
		{
			name: "nothing under",
			root: "/var/lib/relocvol/mounts/web",
			want: map[string]string{},
		},
		{
			name: "slash",
			root: "/",
			want: map[string]string{"/proc": "proc", "/sys": "sysfs", "/dev": "devtmpfs"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mountsUnder(infos, tt.root)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("mountsUnder(%q) = %v, want %v", tt.root, got, tt.want)
			}
		})
	}
}

func TestMkfs(t *testing.T) {
	tests := []struct {
		fstype string
		want   []string
	}{
		{fstype: "ext4", want: []string{"mkfs.ext4", "-q", "-F", "/dev/loop3"}},
		{fstype: "xfs", want: []string{"mkfs.xfs", "-q", "-f", "/dev/loop3"}},
	}
	for _, tt := range tests {
		t.Run(tt.fstype, func(t *testing.T) {
			fake := &execx.Fake{Script: []execx.Call{{Argv: tt.want}}}
			if err := (FS{Run: fake}).Mkfs(context.Background(), tt.fstype, "/dev/loop3"); err != nil {
				t.Fatal(err)
			}
			if left := fake.Left(); len(left) != 0 {
				t.Errorf("commands not run: %v", left)
			}
		})
	}
	t.Run("unsupported", func(t *testing.T) {
		fake := &execx.Fake{}
		err := (FS{Run: fake}).Mkfs(context.Background(), "btrfs", "/dev/loop3")
		if !errors.Is(err, ErrUnsupportedFS) || !strings.Contains(err.Error(), "btrfs") {
			t.Errorf("err = %v, want ErrUnsupportedFS naming btrfs", err)
		}
		if len(fake.Ran) != 0 {
			t.Errorf("ran %v, want nothing", fake.Ran)
		}
	})
	t.Run("command fails", func(t *testing.T) {
		failure := &execx.ExecError{Cmd: []string{"mkfs.xfs"}, ExitCode: 1, Stderr: "Filesystem must be larger than 300MB."}
		fake := &execx.Fake{Script: []execx.Call{{Argv: []string{"mkfs.xfs", "-q", "-f", "/dev/loop3"}, Err: failure}}}
		err := (FS{Run: fake}).Mkfs(context.Background(), "xfs", "/dev/loop3")
		var ee *execx.ExecError
		if !errors.As(err, &ee) || !strings.Contains(err.Error(), "300MB") {
			t.Errorf("err = %v, want the wrapped ExecError with stderr", err)
		}
	})
}

func TestMountRunsMountAndCreatesTarget(t *testing.T) {
	target := filepath.Join(t.TempDir(), "a", "b")
	fake := &execx.Fake{Script: []execx.Call{{Argv: []string{"mount", "-t", "xfs", "/dev/loop7", target}}}}
	if err := (FS{Run: fake}).Mount(context.Background(), "/dev/loop7", "xfs", target); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(target); err != nil || !st.IsDir() || st.Mode().Perm() != 0o755 {
		t.Errorf("target: %v, %v; want a 0755 directory", st, err)
	}
}

func TestMountFailureRemovesCreatedDirs(t *testing.T) {
	base := t.TempDir()
	target := filepath.Join(base, "a", "b")
	failure := &execx.ExecError{Cmd: []string{"mount"}, ExitCode: 32, Stderr: "mount: wrong fs type"}
	fake := &execx.Fake{Script: []execx.Call{{Argv: []string{"mount", "-t", "ext4", "/dev/loop7", target}, Err: failure}}}
	err := (FS{Run: fake}).Mount(context.Background(), "/dev/loop7", "ext4", target)
	if err == nil || !strings.Contains(err.Error(), "wrong fs type") {
		t.Fatalf("err = %v, want the mount failure", err)
	}
	if _, err := os.Lstat(filepath.Join(base, "a")); !os.IsNotExist(err) {
		t.Errorf("created directories left behind: %v", err)
	}
	if _, err := os.Lstat(base); err != nil {
		t.Errorf("pre-existing directory removed: %v", err)
	}
}

func TestMountFailureKeepsExistingTarget(t *testing.T) {
	target := t.TempDir()
	failure := &execx.ExecError{Cmd: []string{"mount"}, ExitCode: 32}
	fake := &execx.Fake{Script: []execx.Call{{Argv: []string{"mount", "-t", "ext4", "/dev/loop7", target}, Err: failure}}}
	if err := (FS{Run: fake}).Mount(context.Background(), "/dev/loop7", "ext4", target); err == nil {
		t.Fatal("want an error")
	}
	if _, err := os.Lstat(target); err != nil {
		t.Errorf("existing target removed: %v", err)
	}
}

// /proc is a mount point on every Linux machine, of something that is not
// our device, so Mount must refuse without running anything.
func TestMountRefusesOtherMount(t *testing.T) {
	src, mounted, err := MountSource("/proc")
	if err != nil || !mounted {
		t.Skipf("/proc is not a mount point here: %v", err)
	}
	fake := &execx.Fake{}
	err = (FS{Run: fake}).Mount(context.Background(), "/dev/loop7", "ext4", "/proc")
	if err == nil || !strings.Contains(err.Error(), "/dev/loop7") || !strings.Contains(err.Error(), src) {
		t.Errorf("err = %v, want one naming /dev/loop7 and %s", err, src)
	}
	if len(fake.Ran) != 0 {
		t.Errorf("ran %v, want nothing", fake.Ran)
	}
}

func TestUnmountNotMounted(t *testing.T) {
	base := t.TempDir()
	fake := &execx.Fake{} // no command may run
	f := FS{Run: fake}

	empty := filepath.Join(base, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.Unmount(context.Background(), empty); err != nil {
		t.Fatalf("unmount of an unmounted empty dir: %v", err)
	}
	if _, err := os.Lstat(empty); !os.IsNotExist(err) {
		t.Errorf("empty mount point not removed: %v", err)
	}

	full := filepath.Join(base, "full")
	if err := os.MkdirAll(filepath.Join(full, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.Unmount(context.Background(), full); err != nil {
		t.Fatalf("unmount of an unmounted non-empty dir: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(full, "data")); err != nil {
		t.Errorf("non-empty dir touched: %v", err)
	}

	if err := f.Unmount(context.Background(), filepath.Join(base, "absent")); err != nil {
		t.Fatalf("unmount of an absent path: %v", err)
	}
	if len(fake.Ran) != 0 {
		t.Errorf("ran %v, want nothing", fake.Ran)
	}
}

func TestMountsNoneUnderTempDir(t *testing.T) {
	got, err := Mounts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("Mounts(fresh dir) = %v, want none", got)
	}
}

// TestMain fails the run if a test had FS run a command Tools does not
// declare.
func TestMain(m *testing.M) {
	os.Exit(execx.FakesDeclared(m.Run(), "fsutil.Tools", Tools))
}
