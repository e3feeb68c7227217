// Package fsutil holds the filesystem work every backend shares: making a
// filesystem, mounting and unmounting it, and reading which mounts exist.
// Commands go through an execx.Runner so the plugin can prefix them (nsenter)
// and tests can assert their argv; mount state is read from mountinfo rather
// than remembered, so it stays right across plugin restarts.
package fsutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/relocvol/relocvol/internal/execx"
)

// Tools are the commands this package runs, with their Debian packages:
// both mkfs commands, as any volume may ask for either filesystem.
var Tools = []execx.Tool{
	{Name: "mkfs.ext4", Package: "e2fsprogs"},
	{Name: "mkfs.xfs", Package: "xfsprogs"},
	{Name: "resize2fs", Package: "e2fsprogs"},
	{Name: "e2fsck", Package: "e2fsprogs"},
	{Name: "xfs_growfs", Package: "xfsprogs"},
	{Name: "mount", Package: "mount"},
	{Name: "umount", Package: "mount"},
}

// ErrUnsupportedFS is returned for a filesystem type relocvol cannot make.
var ErrUnsupportedFS = errors.New("unsupported filesystem")

// mkfsArgs is the exact command for each supported filesystem. -F / -f make
// mkfs work on a regular file (loop images) and over an old signature, which
// is safe because callers only format storage they have just created.
var mkfsArgs = map[string][]string{
	"ext4": {"mkfs.ext4", "-q", "-F"},
	"xfs":  {"mkfs.xfs", "-q", "-f"},
}

// FS runs filesystem commands through Run.
type FS struct {
	Run execx.Runner
}

// Mkfs formats dev (a block device or a regular file) with fstype.
func (f FS) Mkfs(ctx context.Context, fstype, dev string) error {
	argv, ok := mkfsArgs[fstype]
	if !ok {
		return fmt.Errorf("mkfs %s: %w %q: use ext4 or xfs", dev, ErrUnsupportedFS, fstype)
	}
	args := append(append([]string{}, argv[1:]...), dev)
	if _, err := f.Run.Run(ctx, argv[0], args...); err != nil {
		return fmt.Errorf("mkfs.%s %s: %w", fstype, dev, err)
	}
	return nil
}

// Mount mounts dev (of type fstype) on target, creating target if needed.
// It is a no-op when dev is already mounted there, and refuses to stack a
// mount over something else. A directory it created is removed on failure.
func (f FS) Mount(ctx context.Context, dev, fstype, target string) (err error) {
	info, err := mountAt(target)
	if err != nil {
		return fmt.Errorf("mount %s on %s: %w", dev, target, err)
	}
	if info != nil {
		if sameDevice(dev, info) {
			return nil
		}
		return fmt.Errorf("mount %s on %s: %s is already mounted there", dev, target, info.Source)
	}

	created, err := mkdirAll(target)
	if err != nil {
		return fmt.Errorf("mount %s on %s: %w", dev, target, err)
	}
	defer func() {
		if err != nil {
			removeCreated(created)
		}
	}()
	if _, err := f.Run.Run(ctx, "mount", "-t", fstype, dev, target); err != nil {
		return fmt.Errorf("mount %s on %s: %w", dev, target, err)
	}
	return nil
}

// Grow grows the filesystem fstype on dev, mounted on target, online to the
// size of dev: resize2fs takes the device, xfs_growfs the mount point (an
// XFS filesystem grows only while mounted). Growing a filesystem that fills
// its device already is a no-op for both.
func (f FS) Grow(ctx context.Context, fstype, dev, target string) error {
	var argv []string
	switch fstype {
	case "ext4":
		argv = []string{"resize2fs", dev}
	case "xfs":
		argv = []string{"xfs_growfs", target}
	default:
		return fmt.Errorf("grow %s: %w %q: relocvol grows ext4 and xfs", dev, ErrUnsupportedFS, fstype)
	}
	if _, mounted, err := MountSource(target); err != nil {
		return fmt.Errorf("grow the filesystem of %s: %w", dev, err)
	} else if !mounted {
		return fmt.Errorf("grow the filesystem of %s: nothing is mounted on %s (relocvol grows filesystems online only)", dev, target)
	}
	if _, err := f.Run.Run(ctx, argv[0], argv[1:]...); err != nil {
		return fmt.Errorf("grow the %s filesystem of %s: %w", fstype, dev, err)
	}
	return nil
}

// Unmount unmounts target and removes it if it is an empty directory. A
// target that is not mounted (or does not exist) is not an error, so a retry
// after a partial failure finishes the job.
func (f FS) Unmount(ctx context.Context, target string) error {
	_, mounted, err := MountSource(target)
	if err != nil {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	if mounted {
		if _, runErr := f.Run.Run(ctx, "umount", target); runErr != nil {
			// Someone else may have unmounted it meanwhile; only a mount
			// that is still there is a failure.
			if _, still, err := MountSource(target); err != nil || still {
				return fmt.Errorf("unmount %s: %w", target, runErr)
			}
		}
	}
	if err := os.Remove(target); err != nil && !ignorableRemoveErr(err) {
		return fmt.Errorf("unmount %s: remove mount point: %w", target, err)
	}
	return nil
}

// MountSource reports what is mounted on target (the topmost mount when
// several are stacked).
func MountSource(target string) (source string, mounted bool, err error) {
	info, err := mountAt(target)
	if err != nil || info == nil {
		return "", false, err
	}
	return info.Source, true, nil
}

// Mounts returns mount point → source for every mount point directly under
// root (not root itself, not deeper).
func Mounts(root string) (map[string]string, error) {
	infos, err := mountinfo.GetMounts(nil)
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return mountsUnder(infos, resolve(root)), nil
}

// readMounts parses a mountinfo table; tests feed it fixtures.
func readMounts(r io.Reader) ([]*mountinfo.Info, error) {
	return mountinfo.GetMountsFromReader(r, nil)
}

func mountAt(target string) (*mountinfo.Info, error) {
	infos, err := mountinfo.GetMounts(nil)
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return topMountAt(infos, resolve(target)), nil
}

// topMountAt returns the last (topmost) mount on target, or nil. Mountinfo
// lists mounts in the order they were made, so the last one is what a path
// lookup sees.
func topMountAt(infos []*mountinfo.Info, target string) *mountinfo.Info {
	var top *mountinfo.Info
	for _, m := range infos {
		if m.Mountpoint == target {
			top = m
		}
	}
	return top
}

func mountsUnder(infos []*mountinfo.Info, root string) map[string]string {
	out := map[string]string{}
	for _, m := range infos {
		if m.Mountpoint != root && filepath.Dir(m.Mountpoint) == root {
			out[m.Mountpoint] = m.Source
		}
	}
	return out
}

// resolve turns p into the form mountinfo uses: absolute, clean and with
// symlinks resolved (e.g. /var/run → /run). A path that does not exist yet is
// only cleaned; it cannot be a mount point anyway.
func resolve(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}

// sameDevice reports whether the mount info is dev. Paths can differ for the
// same device (/dev/vg/lv is a symlink to /dev/dm-3, shown as
// /dev/mapper/vg-lv), so fall back to comparing device numbers.
func sameDevice(dev string, info *mountinfo.Info) bool {
	if info.Source == dev {
		return true
	}
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return false
	}
	return int(unix.Major(st.Rdev)) == info.Major && int(unix.Minor(st.Rdev)) == info.Minor
}

// mkdirAll creates dir with its missing parents (0755) and returns the
// directories it created, deepest first, so a failure can remove exactly those.
func mkdirAll(dir string) ([]string, error) {
	dir = filepath.Clean(dir)
	var missing []string
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append(missing, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		removeCreated(missing)
		return nil, err
	}
	return missing, nil
}

// removeCreated removes the directories mkdirAll created, deepest first, and
// only while they are empty, so it can never delete data.
func removeCreated(created []string) {
	for _, d := range created {
		if err := os.Remove(d); err != nil {
			return
		}
	}
}

func ignorableRemoveErr(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)
}

// MountSource is the method form of the function, so that FS alone serves
// callers that take one mount-table interface.
func (FS) MountSource(target string) (string, bool, error) { return MountSource(target) }

// Mounts is the method form of the function (see MountSource).
func (FS) Mounts(root string) (map[string]string, error) { return Mounts(root) }

// DeviceBusy reports whether a block device is mounted (or otherwise held
// exclusively) anywhere on this machine, in any mount namespace: the kernel
// refuses an exclusive open then. The plugin needs this because Docker
// lazily unmounts a disabled plugin's propagated mounts while containers
// keep the filesystem alive through their own mounts.
func DeviceBusy(dev string) (bool, error) {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_EXCL, 0)
	if errors.Is(err, unix.EBUSY) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("open %s exclusively: %w", dev, err)
	}
	return false, f.Close()
}

// DeviceBusy is the method form of the function (see MountSource).
func (FS) DeviceBusy(dev string) (bool, error) { return DeviceBusy(dev) }
