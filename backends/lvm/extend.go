package lvm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/internal/sysblock"
)

// deviceError is a device refused for an extend: the request, not the
// system, is wrong (plugin maps it to an invalid request).
type deviceError struct{ msg string }

func (e *deviceError) Error() string        { return e.msg }
func (*deviceError) DeviceRefused() bool    { return true }
func refused(format string, a ...any) error { return &deviceError{fmt.Sprintf(format, a...)} }

// ValidDevice checks a device named to join the VG: an absolute path
// under /dev, written plainly.
func ValidDevice(dev string) error {
	if !strings.HasPrefix(dev, "/dev/") || filepath.Clean(dev) != dev || strings.ContainsAny(dev, " \t\n\x00") {
		return refused("device %q: give the absolute path of the LUN or multipath map under /dev (e.g. /dev/mapper/mpathb)", dev)
	}
	return nil
}

// extendAction is what Extend does with one device.
type extendAction int

const (
	// pvCreate: not a PV yet: pvcreate it (refused by LVM, and so here,
	// where it holds a filesystem or partition table: nothing is wiped).
	pvCreate extendAction = iota
	// pvReuse: a PV in no VG (an earlier extend that stopped half way, or
	// the operator's pvcreate): add it as it is.
	pvReuse
)

// planExtend decides, for each device (resolved: its real path under
// /dev) asked to join vg, from the PVs LVM reports (each with its real
// path), what to do; a device already in a VG is refused, naming it.
func planExtend(vg string, devs, real []string, pvs []pvRow, pvReal []string) ([]extendAction, error) {
	if len(devs) == 0 {
		return nil, refused("no device given: name the LUNs or multipath maps to add (e.g. /dev/mapper/mpathb)")
	}
	acts := make([]extendAction, len(devs))
	for i, dev := range devs {
		if j := slices.Index(real, real[i]); j < i {
			return nil, refused("device %s is the same device as %s: name each once", dev, devs[j])
		}
		acts[i] = pvCreate
		for k, p := range pvs {
			if pvReal[k] != real[i] {
				continue
			}
			switch p.VG {
			case "":
				acts[i] = pvReuse
			case vg:
				return nil, refused("device %s is a PV of volume group %s already (%s): nothing to add", dev, vg, p.Name)
			default:
				return nil, refused("device %s is a PV of another volume group, %s: relocvol adds only unused devices to %s", dev, p.VG, vg)
			}
		}
	}
	return acts, nil
}

// cmdTimeout bounds each LVM command of an extend, which runs detached from
// its caller: a command killed half way (a client that gave up) could leave
// the VG's metadata written on some PVs and not others.
const cmdTimeout = 2 * time.Minute

// Extend adds devs to the VG as `relocvol vg extend` asks: under the
// cluster-wide lock of VG changes (one extend at a time), it pvcreates the
// devices that are no PV yet, hands their UUIDs to join (every live host
// finds them and registers its key there), and only then runs vgextend
// under the VG's metadata lock, which lvcreate on every host takes too: no
// LV can land on a PV that a host cannot write or fence, and no host's
// metadata change races the vgextend. Each device must be a whole SCSI
// disk or a multipath map that nothing holds (checkLUN), named under
// /dev/mapper, /dev/disk or directly; the commands get its real node, so a
// link changed meanwhile changes nothing. A failure before the vgextend
// removes the PV labels it wrote, while the lock is still proven held
// (nothing else: a device that was a PV already stays one); once vgextend
// has started, labels stay whatever happens (the VG may name them), and a
// retry reuses them. Afterwards this host's own LVM hints are refreshed
// (pvscan --cache); the other hosts refreshed theirs when they joined.
//
// join is the cluster's part: every live host registers on the new PVs
// (named by UUID for the others, by their real device nodes, in the same
// order, for this host) before they join the VG; it returns only once the
// PVs may join (no key left on them but those of hosts alive now).
func (l *LVM) Extend(ctx context.Context, devs []string, join func(ctx context.Context, uuids, real []string) error) error {
	real := make([]string, len(devs))
	for i, dev := range devs {
		if err := ValidDevice(dev); err != nil {
			return err
		}
		r, err := l.blockDevice(dev)
		if err != nil {
			return err
		}
		if err := checkLUN(l.sysfs, dev, r); err != nil {
			return err
		}
		real[i] = r
	}
	return l.lock.WithLockSteps(ctx, "vgchange/"+l.vg, func(ctx context.Context, held func(context.Context) error) error {
		pvs, pvReal, err := l.allPVs(ctx)
		if err != nil {
			return err
		}
		acts, err := planExtend(l.vg, devs, real, pvs, pvReal)
		if err != nil {
			return err
		}
		// Each command detached from the caller, bounded by its own
		// timeout.
		cmd := func(name string, args ...string) error {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cmdTimeout)
			defer cancel()
			_, err := l.lvm(cctx, name, args...)
			return err
		}
		var created []string
		keep := false // vgextend started, or done: no label is removed
		defer func() {
			if keep || len(created) == 0 {
				return
			}
			if err := held(context.WithoutCancel(ctx)); err != nil {
				l.log.WithError(err).WithField("devices", strings.Join(created, ",")).Error("the extend failed and the lock of VG changes is no longer held: the PV labels it wrote stay (another extend may be adding them); pvremove them by hand once no extend runs")
				return
			}
			for _, dev := range created {
				if err := cmd("pvremove", dev); err != nil {
					l.log.WithError(err).WithField("device", dev).Error("cannot remove the PV label written for an extend that failed: pvremove it by hand")
				}
			}
		}()
		for i, r := range real {
			if acts[i] != pvCreate {
				continue
			}
			if err := held(ctx); err != nil {
				return err
			}
			if err := cmd("pvcreate", r); err != nil {
				return fmt.Errorf("pvcreate %s (a device holding a filesystem, partitions or another signature is refused: if its data is not needed, wipefs -a it first): %w", devs[i], err)
			}
			created = append(created, r)
		}
		uuids, err := l.uuidsOf(ctx, real)
		if err != nil {
			return err
		}
		if err := held(ctx); err != nil {
			return err
		}
		if err := join(ctx, uuids, real); err != nil {
			return err
		}
		if err := held(ctx); err != nil {
			return err
		}
		keep = true
		err = l.lock.WithLock(context.WithoutCancel(ctx), "vg/"+l.vg, func(context.Context) error {
			return cmd("vgextend", append([]string{l.vg}, real...)...)
		})
		if err != nil {
			return fmt.Errorf("vgextend %s %s: %w (the PV labels stay: once the cause is fixed, run relocvol vg extend again)", l.vg, strings.Join(devs, " "), l.classify(err))
		}
		if err := l.Rescan(ctx); err != nil {
			l.log.WithError(err).Warn("cannot refresh this host's LVM device hints after vgextend: run pvscan --cache")
		}
		l.log.WithFields(logrus.Fields{"vg": l.vg, "devices": strings.Join(devs, ",")}).Info("devices added to the volume group")
		return nil
	})
}

// checkLUN refuses, before anything is written, a device that is not a
// shared LUN relocvol can fence: dev (as named) must be a node under /dev
// or a link under /dev/mapper or /dev/disk (not, say, /dev/shm, which any
// user can write), and its real node a whole SCSI disk that no multipath
// map holds, or a multipath map, with nothing else holding it (a mounted
// filesystem, a device-mapper device, md).
func checkLUN(sys sysblock.Sysfs, dev, real string) error {
	if dev != real && !strings.HasPrefix(dev, "/dev/mapper/") && !strings.HasPrefix(dev, "/dev/disk/") {
		return refused("device %s is a link outside /dev/mapper and /dev/disk: name the LUN by its node or its /dev/mapper or /dev/disk/by-id name", dev)
	}
	name := filepath.Base(real)
	if filepath.Dir(real) != "/dev" {
		return refused("device %s is %s, not a disk node under /dev", dev, real)
	}
	if strings.HasPrefix(name, "dm-") {
		if !sys.IsMultipathMap(name) {
			return refused("device %s is device-mapper device %s, not a multipath map: relocvol adds SAN LUNs (a multipath map or a SCSI disk) that it can fence", dev, name)
		}
	} else {
		if _, err := os.Stat(filepath.Join(sys.Block(name), "device", "scsi_disk")); err != nil {
			return refused("device %s (%s) is not a SCSI disk: relocvol adds SAN LUNs (a multipath map or a SCSI disk) that it can fence with SCSI-3 reservations", dev, name)
		}
		if m := sys.MapOf(name); m != "" {
			return refused("device %s is a path of multipath map %s: add the map (/dev/mapper/…), not one of its paths", dev, m)
		}
	}
	if holders, _ := os.ReadDir(filepath.Join(sys.Block(name), "holders")); len(holders) > 0 {
		return refused("device %s is in use (held by %s): relocvol adds only unused LUNs", dev, holders[0].Name())
	}
	return nil
}

// blockDevice resolves dev to its real path and checks it is a block
// device.
func blockDevice(dev string) (string, error) {
	r, err := filepath.EvalSymlinks(dev)
	if errors.Is(err, fs.ErrNotExist) {
		return "", refused("device %s does not exist on this host: attach the LUN (iscsiadm -m session --rescan; multipath -ll) and name it as this host sees it", dev)
	}
	if err != nil {
		return "", fmt.Errorf("device %s: %w", dev, err)
	}
	st, err := os.Stat(r)
	if err != nil {
		return "", fmt.Errorf("device %s: %w", dev, err)
	}
	if st.Mode()&fs.ModeDevice == 0 || st.Mode()&fs.ModeCharDevice != 0 {
		return "", refused("%s is not a block device: name the LUN or multipath map (e.g. /dev/mapper/mpathb)", dev)
	}
	return r, nil
}

// allPVs lists every PV LVM sees, with each one's real path.
func (l *LVM) allPVs(ctx context.Context) ([]pvRow, []string, error) {
	out, err := l.lvm(ctx, "pvs", "--reportformat", "json", "-o", "pv_name,pv_uuid,vg_name")
	if err != nil {
		return nil, nil, fmt.Errorf("list PVs: %w", err)
	}
	rows, err := parseReport[pvRow](out, "pv")
	if err != nil {
		return nil, nil, fmt.Errorf("parse pvs output: %w", err)
	}
	real := make([]string, len(rows))
	for i, p := range rows {
		if real[i], err = filepath.EvalSymlinks(p.Name); err != nil {
			real[i] = p.Name // "[unknown]": matches no device
		}
	}
	return rows, real, nil
}

// uuidsOf returns the PV UUIDs of the devices (real paths).
func (l *LVM) uuidsOf(ctx context.Context, real []string) ([]string, error) {
	pvs, pvReal, err := l.allPVs(ctx)
	if err != nil {
		return nil, err
	}
	uuids := make([]string, len(real))
	for i, r := range real {
		j := slices.Index(pvReal, r)
		if j < 0 {
			return nil, fmt.Errorf("device %s: LVM does not report it as a PV after pvcreate: check the host's LVM filter or devices file (lvmdevices --adddev)", r)
		}
		uuids[i] = pvs[j].UUID
	}
	return uuids, nil
}

// Rescan refreshes this host's LVM device hints (pvscan --cache), which
// the host's own LVM commands use (the plugin's do not): after another
// host wrote a PV label, they would otherwise miss the new PV.
func (l *LVM) Rescan(ctx context.Context) error {
	if _, err := l.run.Run(ctx, "pvscan", "--cache"); err != nil {
		return fmt.Errorf("pvscan --cache: %w", err)
	}
	return nil
}

// DevicesOf finds, as this host sees them, the PVs with the given UUIDs:
// an error names those it does not see (the LUN not attached here, or
// refused by this host's LVM filter or devices file).
func (l *LVM) DevicesOf(ctx context.Context, uuids []string) ([]string, error) {
	pvs, _, err := l.allPVs(ctx)
	if err != nil {
		return nil, err
	}
	return devicesOf(pvs, uuids)
}

// devicesOf picks the devices of uuids from pvs.
func devicesOf(pvs []pvRow, uuids []string) ([]string, error) {
	devs := make([]string, len(uuids))
	var missing []string
	for i, u := range uuids {
		j := slices.IndexFunc(pvs, func(p pvRow) bool { return p.UUID == u && p.Name != "[unknown]" })
		if j < 0 {
			missing = append(missing, u)
			continue
		}
		devs[i] = pvs[j].Name
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("this host does not see the PV(s) %s: attach the LUN here too (iscsiadm -m session --rescan; multipath -ll) and check that the LVM filter or devices file accepts it (lvmdevices --adddev)", strings.Join(missing, ", "))
	}
	return devs, nil
}
