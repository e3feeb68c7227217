// Package loop is the development and default backend: one sparse image file
// per volume in a directory (shared between hosts when it is on shared
// storage), attached to this host with a loop device.
//
// Attached devices are found by the image's inode and device number, never by
// its path: inside the managed plugin the same file is seen under another path
// than on the host, and losetup reports the path as the host saw it.
package loop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/relocvol/relocvol/backends"
	"github.com/relocvol/relocvol/internal/execx"
	"github.com/relocvol/relocvol/internal/fsutil"
)

// Tools are the commands this package runs itself (its filesystems need
// fsutil.Tools too). Debian ships losetup in mount, not util-linux.
var Tools = []execx.Tool{{Name: "losetup", Package: "mount"}}

// Loop keeps each volume in <dir>/<name>.img: a symbolic link to the image
// file <name>.img.<create ID>, so that the storage carries the identity of
// the create that made it (backends.Volume.CreateID) from the moment it
// exists: the image is made and formatted under its own name, then linked
// into place in one step. A plain file <name>.img is storage made before
// creates carried an identity.
type Loop struct {
	dir string
	run execx.Runner
	fs  fsutil.FS
	log logrus.FieldLogger
}

var (
	_ backends.Backend = (*Loop)(nil)
	_ backends.Grower  = (*Loop)(nil)
)

// Option configures a Loop.
type Option func(*Loop)

// WithLogger sets the logger for state changes (default: logrus' standard
// logger).
func WithLogger(log logrus.FieldLogger) Option {
	return func(l *Loop) { l.log = log }
}

// New returns a Loop keeping images in dir, which it creates if needed.
func New(dir string, run execx.Runner, opts ...Option) (*Loop, error) {
	if dir == "" {
		return nil, errors.New("loop backend: no image directory given")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("loop backend: image directory %s: %w", dir, err)
	}
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("loop backend: image directory %s: %w", dir, err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("loop backend: image directory %s is not a directory", dir)
	}
	l := &Loop{dir: dir, run: run, fs: fsutil.FS{Run: run}, log: logrus.StandardLogger()}
	for _, opt := range opts {
		opt(l)
	}
	return l, nil
}

// Name implements backends.Backend.
func (l *Loop) Name() string { return "loop" }

// Create implements backends.Backend: a sparse file of v.Size bytes named
// after the create, formatted in place (mkfs works on regular files, no
// device needed), then linked as <name>.img: the link's creation is what
// makes the volume exist, and fails if another is there.
func (l *Loop) Create(ctx context.Context, v backends.Volume) (err error) {
	link, err := l.file(v.Name)
	if err != nil {
		return err
	}
	if err := backends.ValidCreateID(v.CreateID); err != nil {
		return fmt.Errorf("create %s: %w", link, err)
	}
	if v.Size <= 0 {
		return fmt.Errorf("create %s: invalid size %d", link, v.Size)
	}
	if _, err := os.Lstat(link); err == nil {
		return fmt.Errorf("create %s: %w", link, backends.ErrExists)
	}
	image := imageOf(link, v.CreateID)
	f, err := os.OpenFile(image, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", image, err)
	}
	// From here the image is this create's: any failure removes it, so
	// nothing half-made is left.
	defer func() {
		if err != nil {
			_ = f.Close()
			if rmErr := os.Remove(image); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
				err = fmt.Errorf("%w (and removing it failed: %v)", err, rmErr)
			}
		}
	}()
	if err := f.Truncate(v.Size); err != nil {
		return fmt.Errorf("create %s: size %d: %w", image, v.Size, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create %s: %w", image, err)
	}
	if err := l.fs.Mkfs(ctx, v.FS, image); err != nil {
		return fmt.Errorf("create %s: %w", image, err)
	}
	if err := os.Symlink(filepath.Base(image), link); err != nil {
		if errors.Is(err, fs.ErrExist) {
			err = backends.ErrExists
		}
		return fmt.Errorf("create %s: %w", link, err)
	}
	l.log.WithFields(logrus.Fields{"volume": v.Name, "size": v.Size, "fs": v.FS, "image": filepath.Base(image)}).Info("loop image created")
	return nil
}

// imageOf is the image file a create makes for the volume at link.
func imageOf(link, createID string) string { return link + "." + createID }

// identity tells which create made the storage at link: the ID its link
// names ("" for a plain file, made before creates carried one); exists is
// false when there is nothing at link.
func identity(link string) (id string, exists bool, err error) {
	fi, err := os.Lstat(link)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return "", true, nil
	}
	target, err := os.Readlink(link)
	if err != nil {
		return "", true, err
	}
	id, ok := strings.CutPrefix(target, filepath.Base(link)+".")
	if !ok || strings.Contains(target, "/") || backends.ValidCreateID(id) != nil {
		return "", true, fmt.Errorf("%s links to %s, not to an image relocvol made: remove it by hand if it holds nothing you need", link, target)
	}
	return id, true, nil
}

// Remove implements backends.Backend: the link first (the volume is gone
// at once), then its image. A create's image left without a link (the
// create died before linking it, or a remove before deleting it) goes too.
func (l *Loop) Remove(ctx context.Context, name, createID string) error {
	link, err := l.file(name)
	if err != nil {
		return err
	}
	id, exists, err := identity(link)
	switch {
	case err != nil:
		return fmt.Errorf("remove %s: %w", link, err)
	case !exists:
		return l.removeImage(link, createID)
	case id != createID:
		return fmt.Errorf("remove %s: it was made by create %q, not %q: %w", link, orNone(id), orNone(createID), backends.ErrForeign)
	}
	_, devs, _, err := l.devices(ctx, name)
	if err != nil {
		return err
	}
	if len(devs) > 0 {
		return fmt.Errorf("remove %s: attached to %s: %w", link, strings.Join(devs, ", "), backends.ErrInUse)
	}
	if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", link, err)
	}
	if err := l.removeImage(link, id); err != nil {
		return err
	}
	l.log.WithField("volume", name).Info("loop image removed")
	return nil
}

// removeImage removes the image of create id, if there is one apart from
// the link (none for a plain file).
func (l *Loop) removeImage(link, id string) error {
	if id == "" {
		return nil
	}
	if err := os.Remove(imageOf(link, id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", imageOf(link, id), err)
	}
	return nil
}

func orNone(id string) string {
	if id == "" {
		return "(none: made before creates carried one)"
	}
	return id
}

// Activate implements backends.Backend.
func (l *Loop) Activate(ctx context.Context, name string) (string, error) {
	file, devs, exists, err := l.devices(ctx, name)
	if err != nil {
		return "", err
	}
	if !exists {
		return "", fmt.Errorf("attach %s: %w", file, backends.ErrNotFound)
	}
	if len(devs) > 0 {
		return devs[0], nil
	}
	// Not atomic with the check above: the plugin serializes operations per
	// volume, which is what keeps two attaches of one file from racing.
	out, err := l.run.Run(ctx, "losetup", "--find", "--show", file)
	if err != nil {
		return "", fmt.Errorf("attach %s: %w", file, err)
	}
	dev := strings.TrimSpace(string(out))
	if dev == "" {
		return "", fmt.Errorf("attach %s: losetup printed no device", file)
	}
	l.log.WithFields(logrus.Fields{"volume": name, "dev": dev}).Info("loop device attached")
	return dev, nil
}

// Deactivate implements backends.Backend. It returns ErrInUse when a device
// is still open (mounted) after the detach: the kernel then only marks it to
// detach on last close and reports success, which must not pass for a
// deactivation.
func (l *Loop) Deactivate(ctx context.Context, name string) error {
	file, devs, exists, err := l.devices(ctx, name)
	if err != nil || !exists {
		return err
	}
	if len(devs) == 0 {
		return nil
	}
	var detachErr error
	for _, dev := range devs {
		if _, err := l.run.Run(ctx, "losetup", "--detach", dev); err != nil {
			// It may have gone by itself meanwhile (autoclear on last
			// close); only a device still attached below is a failure.
			detachErr = errors.Join(detachErr, fmt.Errorf("detach %s from %s: %w", dev, file, err))
		}
	}
	still, err := l.attached(ctx, file)
	if err != nil {
		return errors.Join(detachErr, fmt.Errorf("detach %s: %w", file, err))
	}
	if len(still) > 0 && detachErr != nil {
		return detachErr
	}
	if len(still) > 0 {
		return fmt.Errorf("detach %s: %s still open (mounted?), it will detach when closed: %w",
			file, strings.Join(still, ", "), backends.ErrInUse)
	}
	l.log.WithFields(logrus.Fields{"volume": name, "dev": strings.Join(devs, ",")}).Info("loop device detached")
	return nil
}

// Grow implements backends.Grower: the image file is made longer (sparse,
// like at Create); a device attached to it, here or on another host, keeps
// its size until Refresh.
func (l *Loop) Grow(ctx context.Context, name string, size int64) error {
	file, err := l.file(name)
	if err != nil {
		return err
	}
	st, err := os.Stat(file)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("grow %s: %w", file, backends.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("grow %s: %w", file, err)
	}
	if st.Size() >= size {
		return nil
	}
	if err := os.Truncate(file, size); err != nil {
		return fmt.Errorf("grow %s to %d bytes: %w", file, size, err)
	}
	l.log.WithFields(logrus.Fields{"volume": name, "from": st.Size(), "size": size}).Info("loop image grown")
	return nil
}

// Refresh implements backends.Grower: each loop device of the image reads
// the file's size again (losetup --set-capacity).
func (l *Loop) Refresh(ctx context.Context, name string) error {
	file, devs, _, err := l.devices(ctx, name)
	if err != nil {
		return err
	}
	for _, dev := range devs {
		if _, err := l.run.Run(ctx, "losetup", "--set-capacity", dev); err != nil {
			return fmt.Errorf("refresh the size of %s (%s): %w", dev, file, err)
		}
	}
	return nil
}

// Device implements backends.Backend.
func (l *Loop) Device(ctx context.Context, name string) (string, error) {
	_, devs, _, err := l.devices(ctx, name)
	if err != nil || len(devs) == 0 {
		return "", err
	}
	return devs[0], nil
}

// file is the image path of volume name. Names become file names, so one that
// could escape dir is refused.
func (l *Loop) file(name string) (string, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return "", fmt.Errorf("loop backend: invalid volume name %q", name)
	}
	return filepath.Join(l.dir, name+".img"), nil
}

// devices resolves volume name to its image file and the loop devices
// backed by it. A missing image is exists=false, not an error.
func (l *Loop) devices(ctx context.Context, name string) (file string, devs []string, exists bool, err error) {
	if file, err = l.file(name); err != nil {
		return "", nil, false, err
	}
	devs, err = l.attached(ctx, file)
	if errors.Is(err, fs.ErrNotExist) {
		return file, nil, false, nil
	}
	if err != nil {
		return file, nil, false, fmt.Errorf("loop devices of %s: %w", file, err)
	}
	return file, devs, true, nil
}

// attached returns the loop devices backed by file, sorted, or an error
// wrapping fs.ErrNotExist when file does not exist.
func (l *Loop) attached(ctx context.Context, file string) ([]string, error) {
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: file, Err: err}
	}
	out, err := l.run.Run(ctx, "losetup", "--list", "--json", "--output", "NAME,BACK-INO,BACK-MAJ:MIN")
	if err != nil {
		return nil, fmt.Errorf("list loop devices: %w", err)
	}
	list, err := parseList(out)
	if err != nil {
		return nil, err
	}
	return devicesOf(list, st.Ino, unix.Major(st.Dev), unix.Minor(st.Dev)), nil
}

// loopDev is one attached loop device and the file behind it.
type loopDev struct {
	Name         string
	Ino          uint64
	Major, Minor uint32
}

// parseList parses `losetup --list --json --output NAME,BACK-INO,BACK-MAJ:MIN`.
// Older losetup prints nothing at all when no device is attached, newer an
// empty list. BACK-INO is a number (a string in some versions) and
// BACK-MAJ:MIN a padded decimal "254:0"; devices without a backing file have
// them null and are left out.
func parseList(out []byte) ([]loopDev, error) {
	if len(strings.TrimSpace(string(out))) == 0 {
		return nil, nil
	}
	var doc struct {
		Devices []struct {
			Name   string          `json:"name"`
			Ino    json.RawMessage `json:"back-ino"`
			MajMin *string         `json:"back-maj:min"`
		} `json:"loopdevices"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("parse losetup --list output: %w", err)
	}
	var devs []loopDev
	for _, d := range doc.Devices {
		ino := strings.Trim(strings.TrimSpace(string(d.Ino)), `"`)
		if ino == "" || ino == "null" || d.MajMin == nil {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(ino), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parse losetup --list output: %s back-ino %s: %w", d.Name, ino, err)
		}
		majS, minS, ok := strings.Cut(strings.TrimSpace(*d.MajMin), ":")
		if !ok {
			return nil, fmt.Errorf("parse losetup --list output: %s back-maj:min %q", d.Name, *d.MajMin)
		}
		major, err1 := strconv.ParseUint(strings.TrimSpace(majS), 10, 32)
		minor, err2 := strconv.ParseUint(strings.TrimSpace(minS), 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("parse losetup --list output: %s back-maj:min %q: %w", d.Name, *d.MajMin, err)
		}
		if d.Name == "" {
			// A device relocvol could not detach by name: the output is not
			// losetup's.
			return nil, fmt.Errorf("parse losetup --list output: a device backed by inode %d on %d:%d has no name", n, major, minor)
		}
		devs = append(devs, loopDev{Name: d.Name, Ino: n, Major: uint32(major), Minor: uint32(minor)})
	}
	return devs, nil
}

// devicesOf returns the sorted names of the devices backed by the file with
// inode ino on device major:minor.
func devicesOf(list []loopDev, ino uint64, major, minor uint32) []string {
	var names []string
	for _, d := range list {
		if d.Ino == ino && d.Major == major && d.Minor == minor {
			names = append(names, d.Name)
		}
	}
	slices.Sort(names)
	return names
}
