// Package lvm is relocvol's production backend: one logical volume per
// Docker volume in a volume group on a SAN LUN that every host sees.
//
// Without lvmlockd nothing stops two hosts from rewriting the VG metadata at
// the same time, which silently loses LVs; so every metadata change
// (lvcreate, lvremove, lvextend) runs under a cluster-wide lock per VG (in
// etcd), proven held just before the command and held for that command only. Activation changes no metadata: it re-reads it from disk, so a host
// sees what others created. An LV is active on at most one host, which the
// plugin's claims guarantee; this package only activates what it is told.
package lvm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/backends"
	"github.com/relocvol/relocvol/internal/execx"
	"github.com/relocvol/relocvol/internal/fsutil"
	"github.com/relocvol/relocvol/internal/sysblock"
)

// Prefix starts every LV name relocvol makes, so that its LVs stand apart
// from others in a VG and LVM's reserved names can never be hit.
const Prefix = "rv-"

// Tag marks relocvol's LVs.
const Tag = "relocvol"

// createTag prefixes the LV tag that carries the identity of the create
// that made the LV (backends.Volume.CreateID): lvcreate adds it in the same
// command that makes the LV, so no LV of relocvol's is ever without it.
const createTag = "relocvol-create-"

// createID is the identity an LV's tags carry ("": made before creates
// carried one).
func createID(tags string) string {
	for _, t := range strings.Split(tags, ",") {
		if id, ok := strings.CutPrefix(strings.TrimSpace(t), createTag); ok {
			return id
		}
	}
	return ""
}

// Tools are the commands this package runs itself (its filesystems need
// fsutil.Tools too): every one is a link to lvm2's lvm binary.
var Tools = []execx.Tool{
	{Name: "lvs", Package: "lvm2"},
	{Name: "lvcreate", Package: "lvm2"},
	{Name: "lvchange", Package: "lvm2"},
	{Name: "lvextend", Package: "lvm2"},
	{Name: "lvremove", Package: "lvm2"},
	{Name: "vgs", Package: "lvm2"},
	{Name: "vgchange", Package: "lvm2"},
	{Name: "pvs", Package: "lvm2"},
	{Name: "lvmconfig", Package: "lvm2"},
	// relocvol vg extend (extend.go).
	{Name: "pvcreate", Package: "lvm2"},
	{Name: "pvremove", Package: "lvm2"},
	{Name: "pvscan", Package: "lvm2"},
	{Name: "vgextend", Package: "lvm2"},
	// The device-mapper's own view (dm.go); lvm2 depends on it.
	{Name: "dmsetup", Package: "dmsetup"},
}

// Locker runs fn under a cluster-wide lock, having proven just before fn
// that the lock is still held (store.Store); WithLockSteps runs a series
// of steps under one, fn proving it held (held) before each.
type Locker interface {
	WithLock(ctx context.Context, key string, fn func(ctx context.Context) error) error
	WithLockSteps(ctx context.Context, key string, fn func(ctx context.Context, held func(context.Context) error) error) error
}

// ConfigFile is LVM's configuration. Inside the managed plugin /etc/lvm is
// the host's (a bind mount), so that the plugin and the host's own LVM
// commands share one filter, devices file and metadata backups.
const ConfigFile = "/etc/lvm/lvm.conf"

// LVM is the backend for one volume group.
type LVM struct {
	vg   string
	run  execx.Runner
	fs   fsutil.FS
	lock Locker
	log  logrus.FieldLogger
	conf string // ConfigFile; tests point it elsewhere
	// blockDevice resolves a device named for an extend (blockDevice;
	// tests use files), sysfs tells what it is.
	blockDevice func(dev string) (string, error)
	sysfs       sysblock.Sysfs
}

var (
	_ backends.Backend = (*LVM)(nil)
	_ backends.Grower  = (*LVM)(nil)
)

// Option configures an LVM backend.
type Option func(*LVM)

// WithLogger sets the logger.
func WithLogger(log logrus.FieldLogger) Option { return func(l *LVM) { l.log = log } }

// New returns the backend of volume group vg. It does not touch the VG;
// Check verifies that it is usable.
func New(vg string, run execx.Runner, lock Locker, opts ...Option) (*LVM, error) {
	if err := validVGName(vg); err != nil {
		return nil, err
	}
	l := &LVM{vg: vg, run: run, fs: fsutil.FS{Run: run}, lock: lock, log: logrus.StandardLogger(), conf: ConfigFile, blockDevice: blockDevice, sysfs: "/sys"}
	for _, o := range opts {
		o(l)
	}
	return l, nil
}

func validVGName(vg string) error {
	if vg == "" || vg == "." || vg == ".." || strings.HasPrefix(vg, "-") || strings.ContainsAny(vg, "/ \x00") {
		return fmt.Errorf("invalid volume group name %q: set the name of an existing VG, e.g. san-vg", vg)
	}
	return nil
}

// Name implements backends.Backend.
func (*LVM) Name() string { return "lvm" }

// VG returns the volume group's name.
func (l *LVM) VG() string { return l.vg }

// noHints is given to every LVM command the plugin runs. LVM's hints
// (/run/lvm/hints, shared with the host) are a per-host cache of which
// devices hold PVs: another host's pvcreate or vgextend on the shared VG
// never updates this host's, so a PV added there stays "[unknown]" here
// (seen in the VM lab: fencing could not resolve the new LUN) until
// someone runs pvscan --cache. The plugin scans the devices instead.
var noHints = []string{"--config", "devices/hints=none"}

// lvm runs the LVM command cmd with args, without LVM's device hints.
func (l *LVM) lvm(ctx context.Context, cmd string, args ...string) ([]byte, error) {
	return l.run.Run(ctx, cmd, append(append([]string{}, noHints...), args...)...)
}

// lvName maps a volume name to its LV name.
func lvName(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "/ \x00") {
		return "", fmt.Errorf("lvm backend: invalid volume name %q", name)
	}
	return Prefix + name, nil
}

func (l *LVM) ref(lv string) string { return l.vg + "/" + lv }

// parseReport reads the rows of one kind ("lv", "pv", "vg") from LVM's
// `--reportformat json` output: {"report": [{"<kind>": [rows…]}, …]}.
func parseReport[T any](out []byte, kind string) ([]T, error) {
	var rep struct {
		Report []map[string]json.RawMessage `json:"report"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return nil, err
	}
	var rows []T
	for _, r := range rep.Report {
		raw, ok := r[kind]
		if !ok {
			continue
		}
		var part []T
		if err := json.Unmarshal(raw, &part); err != nil {
			return nil, err
		}
		rows = append(rows, part...)
	}
	return rows, nil
}

// lv is one row of `lvs --reportformat json`.
type lv struct {
	Name   string `json:"lv_name"`
	VG     string `json:"vg_name"`
	Attr   string `json:"lv_attr"`
	Size   string `json:"lv_size"`
	Path   string `json:"lv_path"`
	Tags   string `json:"lv_tags"`
	UUID   string `json:"lv_uuid"`
	VGUUID string `json:"vg_uuid"`
	active bool
	bytes  int64
}

// lvsArgs lists every LV of the VG with the fields parseLVs reads, hidden
// ones too (their names in brackets: LVM's sub-LVs of a raid or cache LV),
// so that their devices are not taken for stale ones (staleMappings).
func (l *LVM) lvsArgs() []string {
	return []string{"lvs", "-a", "--reportformat", "json", "--units", "b", "--nosuffix",
		"-o", "lv_name,vg_name,lv_attr,lv_size,lv_path,lv_tags,lv_uuid,vg_uuid", l.vg}
}

// parseLVs reads `lvs --reportformat json` output.
func parseLVs(out []byte) ([]lv, error) {
	rows, err := parseReport[lv](out, "lv")
	if err != nil {
		return nil, fmt.Errorf("parse lvs output: %w", err)
	}
	for i := range rows {
		v := &rows[i]
		// lv_attr: the fifth character is the state: '-' inactive, 'a'
		// active, and others for an LV with a device-mapper device in
		// some other state; 'X' (unknown) where another host changed its
		// metadata (grew it) while it is active here. Anything but '-'
		// has a device here: Deactivate must take it down, Refresh reload
		// it.
		v.active = len(v.Attr) >= 5 && v.Attr[4] != '-'
		if v.Size != "" {
			n, err := strconv.ParseInt(v.Size, 10, 64)
			if err == nil && n < 0 {
				err = errors.New("a size is never negative")
			}
			if err != nil {
				return nil, fmt.Errorf("parse lvs output: size %q of %s: %w", v.Size, v.Name, err)
			}
			v.bytes = n
		}
	}
	return rows, nil
}

// list returns every LV of the VG.
func (l *LVM) list(ctx context.Context) ([]lv, error) {
	argv := l.lvsArgs()
	out, err := l.lvm(ctx, argv[0], argv[1:]...)
	if err != nil {
		return nil, l.classify(fmt.Errorf("list LVs of %s: %w", l.vg, err))
	}
	return parseLVs(out)
}

// lookup maps a volume name to its LV name and finds that LV (ok=false when
// there is none).
func (l *LVM) lookup(ctx context.Context, volName string) (name string, v lv, ok bool, err error) {
	if name, err = lvName(volName); err != nil {
		return "", lv{}, false, err
	}
	v, ok, err = l.find(ctx, name)
	return name, v, ok, err
}

// lookupAll is lookup that also returns every LV of the VG as read.
func (l *LVM) lookupAll(ctx context.Context, volName string) (name string, lvs []lv, v lv, ok bool, err error) {
	if name, err = lvName(volName); err != nil {
		return "", nil, lv{}, false, err
	}
	if lvs, err = l.list(ctx); err != nil {
		return "", nil, lv{}, false, err
	}
	v, ok = findLV(lvs, name)
	return name, lvs, v, ok, nil
}

// find returns the LV named lvName, or ok=false.
func (l *LVM) find(ctx context.Context, lvName string) (lv, bool, error) {
	lvs, err := l.list(ctx)
	if err != nil {
		return lv{}, false, err
	}
	v, ok := findLV(lvs, lvName)
	return v, ok, nil
}

// findLV returns the LV named lvName among lvs, or ok=false.
func findLV(lvs []lv, lvName string) (lv, bool) {
	for _, v := range lvs {
		if v.Name == lvName {
			return v, true
		}
	}
	return lv{}, false
}

// classify maps LVM's failures to the backend sentinels (failureKind);
// the command, its exit code and stderr are kept.
func (l *LVM) classify(err error) error {
	var ee *execx.ExecError
	if !errors.As(err, &ee) {
		return err
	}
	if kind := failureKind(ee.ExitCode, ee.Stderr); kind != nil {
		return fmt.Errorf("%w: %w", kind, err)
	}
	return err
}

// exitFailed is LVM's exit code for a command that ran and failed
// (ECMD_FAILED); 3 is a command line relocvol built wrong, 4 LVM failing to
// initialise, -1 a command that did not start or was killed.
const exitFailed = 5

// failures are the messages that make a failed LVM command one of the
// backend's sentinels, in the order they are tried: an LV that is open is
// "in use" even where the message also says "not found" of something else.
var failures = []struct {
	kind     error
	messages []string
}{
	{backends.ErrExists, []string{"already exists"}},
	{backends.ErrInUse, []string{"in use", "is open", "Can't remove open logical volume"}},
	{backends.ErrNotFound, []string{"Failed to find logical volume", "not found"}},
}

// failureKind is the sentinel of an LVM failure (nil: none): only a command
// that ran and failed (exit 5) says in its message what was wrong; another
// exit code with the same words (a bad option "not found") is no such case.
func failureKind(exitCode int, stderr string) error {
	if exitCode != exitFailed {
		return nil
	}
	for _, f := range failures {
		for _, m := range f.messages {
			if strings.Contains(stderr, m) {
				return f.kind
			}
		}
	}
	return nil
}

// Check verifies, at start-up, that the VG exists and is visible from this
// host; if not, the error names the VG, quotes LVM and says what to check.
// It first warns when there is no lvm.conf: inside the plugin that means
// the host's /etc/lvm, shared with it, is empty, so lvm2 is probably not
// installed on the host, and the host then lacks what the plugin cannot
// bring: the udev rules that acknowledge device-mapper changes and make the
// /dev/VG/LV links, and the tmpfiles that make /run/lvm at boot.
func (l *LVM) Check(ctx context.Context) error {
	if _, err := os.Stat(l.conf); errors.Is(err, fs.ErrNotExist) {
		l.log.WithField("file", l.conf).Warn("no LVM configuration: the host's /etc/lvm (shared with the plugin) seems empty. " +
			"Install lvm2 on the host: its udev rules make the /dev/VG/LV links and acknowledge device-mapper changes " +
			"(without them LVM commands wait for udev), and its tmpfiles make /run/lvm at boot")
	}
	if _, err := l.list(ctx); err != nil {
		return &notVisibleError{vg: l.vg, err: err}
	}
	return nil
}

// notVisibleError is Check's failure: what LVM said about the VG, and what
// to check on the host.
type notVisibleError struct {
	vg  string
	err error
}

func (e *notVisibleError) Error() string {
	said := e.err.Error()
	var ee *execx.ExecError
	if errors.As(e.err, &ee) && strings.TrimSpace(ee.Stderr) != "" {
		var lines []string
		for _, line := range strings.Split(ee.Stderr, "\n") {
			if line = strings.TrimSpace(line); line != "" {
				lines = append(lines, line)
			}
		}
		said = fmt.Sprintf("%s (lvs exit %d)", strings.Join(lines, "; "), ee.ExitCode)
	}
	return fmt.Sprintf("volume group %s is not visible on this host: LVM says: %s. Check that the SAN LUN(s) of %s are attached "+
		"and visible here (lsblk; with several paths, multipath -ll shows their maps); that the host's LVM filter or devices "+
		"file accepts them (global_filter in /etc/lvm/lvm.conf, or lvmdevices --adddev DEVICE for /etc/lvm/devices/system.devices: "+
		"the plugin uses the host's /etc/lvm); and that `vgs %s` on the host lists it. No such VG yet: create it once, on one "+
		"host, with pvcreate DEVICE && vgcreate --setautoactivation n %s DEVICE",
		e.vg, said, e.vg, e.vg, e.vg)
}

func (e *notVisibleError) Unwrap() error { return e.err }

// metadata runs one command that changes the VG's metadata under the
// cluster-wide VG lock, proven held just before the command: only the
// command itself is under the lock, so that a host cut off etcd cannot run
// a series of them after its lock expired.
func (l *LVM) metadata(ctx context.Context, argv ...string) error {
	err := l.lock.WithLock(ctx, "vg/"+l.vg, func(ctx context.Context) error {
		_, err := l.lvm(ctx, argv[0], argv[1:]...)
		return err
	})
	var ee *execx.ExecError
	if err != nil && !errors.As(err, &ee) {
		return fmt.Errorf("lock the metadata of VG %s: %w", l.vg, err)
	}
	return l.classify(err)
}

// Create implements backends.Backend: lvcreate (tagged with the create's
// identity) under the VG lock, then mkfs and deactivation (which change no
// metadata) outside it; the creating host does not own the volume.
func (l *LVM) Create(ctx context.Context, v backends.Volume) (err error) {
	name, err := lvName(v.Name)
	if err != nil {
		return err
	}
	if err := backends.ValidCreateID(v.CreateID); err != nil {
		return fmt.Errorf("create LV %s: %w", l.ref(name), err)
	}
	if _, ok, err := l.find(ctx, name); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("LV %s: %w", l.ref(name), backends.ErrExists)
	}
	err = l.metadata(ctx, "lvcreate", "--yes", "--wipesignatures", "y", "--zero", "y",
		"--addtag", Tag, "--addtag", createTag+v.CreateID, "--activate", "y", "--name", name, "--size", strconv.FormatInt(v.Size, 10)+"b", l.vg)
	if err != nil {
		return fmt.Errorf("create LV %s: %w", l.ref(name), err)
	}
	defer func() {
		if err == nil {
			return
		}
		uctx := context.WithoutCancel(ctx)
		if rerr := l.metadata(uctx, "lvremove", "--yes", l.ref(name)); rerr != nil {
			l.log.WithError(rerr).WithField("lv", l.ref(name)).Error("cannot remove the LV of a failed create")
		}
	}()
	dev := "/dev/" + l.ref(name)
	if err := l.fs.Mkfs(ctx, v.FS, dev); err != nil {
		_, _ = l.lvm(context.WithoutCancel(ctx), "lvchange", "--activate", "n", l.ref(name))
		return fmt.Errorf("format %s: %w", dev, err)
	}
	if _, err := l.lvm(ctx, "lvchange", "--activate", "n", l.ref(name)); err != nil {
		return fmt.Errorf("deactivate new LV %s: %w", l.ref(name), l.classify(err))
	}
	l.log.WithFields(logrus.Fields{"volume": v.Name, "lv": l.ref(name), "size": v.Size, "fs": v.FS}).Info("LV created")
	return nil
}

// Remove implements backends.Backend: only an LV whose tags name the create
// id. Another relocvol host removes or re-creates an LV of that name only
// under the record this host holds, so the LV read here is the one
// lvremove removes.
func (l *LVM) Remove(ctx context.Context, volName, id string) error {
	name, err := lvName(volName)
	if err != nil {
		return err
	}
	v, ok, err := l.find(ctx, name)
	if err != nil || !ok {
		return err
	}
	if made := createID(v.Tags); made != id {
		return fmt.Errorf("remove LV %s: it was made by create %q, not %q (its tags: %s): %w", l.ref(name), made, id, v.Tags, backends.ErrForeign)
	}
	if v.active {
		return fmt.Errorf("remove LV %s: active on this host: %w", l.ref(name), backends.ErrInUse)
	}
	err = l.metadata(ctx, "lvremove", "--yes", l.ref(name))
	if errors.Is(err, backends.ErrNotFound) {
		return nil // removed meanwhile
	}
	if err != nil {
		return fmt.Errorf("remove LV %s: %w", l.ref(name), err)
	}
	l.log.WithFields(logrus.Fields{"volume": volName, "lv": l.ref(name)}).Info("LV removed")
	return nil
}

// Activate implements backends.Backend. A stale device-mapper device of
// the volume's name (an LV removed and created again elsewhere while it
// was mapped here) is removed first, unless it is open.
func (l *LVM) Activate(ctx context.Context, volName string) (string, error) {
	name, lvs, v, ok, err := l.lookupAll(ctx, volName)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("LV %s: %w", l.ref(name), backends.ErrNotFound)
	}
	if v.active {
		return v.Path, nil
	}
	if d, stale, err := l.staleMapping(ctx, volName, lvs); err != nil {
		return "", err
	} else if stale {
		if err := l.clearStale(ctx, volName, d); err != nil {
			return "", err
		}
	}
	if _, err := l.lvm(ctx, "lvchange", "--activate", "y", l.ref(name)); err != nil {
		return "", fmt.Errorf("activate LV %s: %w", l.ref(name), l.classify(err))
	}
	l.log.WithFields(logrus.Fields{"volume": volName, "dev": v.Path}).Info("LV activated")
	return v.Path, nil
}

// Deactivate implements backends.Backend. Where LVM sees the LV inactive
// (or gone) but the device-mapper still maps the volume's name here (an LV
// another host removed, or removed and created again), that stale device
// is removed, or ErrInUse while something holds it open.
func (l *LVM) Deactivate(ctx context.Context, volName string) error {
	name, lvs, v, ok, err := l.lookupAll(ctx, volName)
	if err != nil {
		return err
	}
	if !ok || !v.active {
		d, stale, err := l.staleMapping(ctx, volName, lvs)
		if err != nil || !stale {
			return err
		}
		return l.clearStale(ctx, volName, d)
	}
	if _, err := l.lvm(ctx, "lvchange", "--activate", "n", l.ref(name)); err != nil {
		return fmt.Errorf("deactivate LV %s: %w", l.ref(name), l.classify(err))
	}
	l.log.WithFields(logrus.Fields{"volume": volName, "dev": v.Path}).Info("LV deactivated")
	return nil
}

// Grow implements backends.Grower: lvextend under the VG lock. Where the LV
// is active on this host, LVM resizes its device too; where it is active on
// another, only the metadata changes, and that host's Refresh loads it.
func (l *LVM) Grow(ctx context.Context, volName string, size int64) error {
	name, v, ok, err := l.lookup(ctx, volName)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("LV %s: %w", l.ref(name), backends.ErrNotFound)
	}
	if v.bytes >= size {
		return nil
	}
	if err := l.metadata(ctx, "lvextend", "--size", strconv.FormatInt(size, 10)+"b", l.ref(name)); err != nil {
		return fmt.Errorf("grow LV %s to %d bytes: %w (vgs %s shows the space left)", l.ref(name), size, err, l.vg)
	}
	l.log.WithFields(logrus.Fields{"volume": volName, "lv": l.ref(name), "from": v.bytes, "size": size}).Info("LV grown")
	return nil
}

// Refresh implements backends.Grower: lvchange --refresh reloads the
// device of an LV active here from the metadata another host changed.
func (l *LVM) Refresh(ctx context.Context, volName string) error {
	name, v, ok, err := l.lookup(ctx, volName)
	if err != nil || !ok || !v.active {
		return err
	}
	if _, err := l.lvm(ctx, "lvchange", "--refresh", l.ref(name)); err != nil {
		return fmt.Errorf("refresh LV %s: %w", l.ref(name), l.classify(err))
	}
	return nil
}

// Device implements backends.Backend: the LV's device, or the stale
// device-mapper device still mapping the volume's name here (it is active
// here, whatever LVM's metadata says).
func (l *LVM) Device(ctx context.Context, volName string) (string, error) {
	_, lvs, v, ok, err := l.lookupAll(ctx, volName)
	if err != nil {
		return "", err
	}
	if ok && v.active {
		return v.Path, nil
	}
	d, stale, err := l.staleMapping(ctx, volName, lvs)
	if err != nil || !stale {
		return "", err
	}
	return "/dev/mapper/" + d.name, nil
}

// Active lists the volumes whose LVs are active on this host, and those
// whose stale device-mapper devices are (staleMappings), sorted, so that a
// host coming back after being fenced can deactivate all of them.
func (l *LVM) Active(ctx context.Context) ([]string, error) {
	lvs, err := l.list(ctx)
	if err != nil {
		return nil, err
	}
	devs, err := l.mappings(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, v := range lvs {
		if v.active && strings.HasPrefix(v.Name, Prefix) {
			names = append(names, strings.TrimPrefix(v.Name, Prefix))
		}
	}
	for name := range staleMappings(l.vg, lvs, devs) {
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

// PVs returns the physical volumes of the VG: the LUNs (or multipath maps)
// that fencing must cover.
func (l *LVM) PVs(ctx context.Context) ([]string, error) {
	out, err := l.lvm(ctx, "pvs", "--reportformat", "json", "-o", "pv_name,vg_name")
	if err != nil {
		return nil, fmt.Errorf("list PVs: %w", err)
	}
	return parsePVs(out, l.vg)
}

func parsePVs(out []byte, vg string) ([]string, error) {
	rows, err := parseReport[struct {
		Name string `json:"pv_name"`
		VG   string `json:"vg_name"`
	}](out, "pv")
	if err != nil {
		return nil, fmt.Errorf("parse pvs output: %w", err)
	}
	var pvs []string
	for _, p := range rows {
		if p.VG != vg {
			continue
		}
		// LVM names a PV of the VG's metadata that it finds on no device
		// "[unknown]": a LUN this host does not see cannot be fenced.
		if p.Name == "[unknown]" {
			return nil, fmt.Errorf("volume group %s has a physical volume this host does not see (LVM reports it [unknown]): "+
				"attach the LUN here too (iscsiadm -m session --rescan, multipath -ll) and check that the host's LVM filter or devices file accepts it", vg)
		}
		pvs = append(pvs, p.Name)
	}
	if len(pvs) == 0 {
		return nil, fmt.Errorf("volume group %s has no physical volume visible on this host: check the LUN, multipath and the LVM filter", vg)
	}
	return pvs, nil
}
