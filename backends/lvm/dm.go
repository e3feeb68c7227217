package lvm

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/backends"
)

// LVM's metadata says which LVs exist; the device-mapper says which are
// mapped on this host. They part when another host removes an LV (or
// removes it and creates one of that name again) while it is mapped here:
// this host was fenced while something held the volume open, and the
// volume moved on. LVM then no longer counts that mapping as the LV's, yet
// it maps extents that may be another volume's by now, and its name blocks
// the activation of a re-created LV. So this package asks the
// device-mapper too: a device of the VG whose LV UUID no LV of the VG has
// any more (hidden ones included: a raid or cache LV's sub-LVs) is stale.

// dmInfoArgs lists this host's device-mapper devices with their UUIDs and
// open counts.
var dmInfoArgs = []string{"info", "-c", "--noheadings", "--separator", "|", "-o", "name,uuid,open"}

// dmDevice is one device-mapper device of this host.
type dmDevice struct {
	name string
	// uuid is the device-mapper UUID; LVM's are "LVM-" + the VG's UUID +
	// the LV's (both without dashes), and a suffix for a layer device.
	uuid string
	open int // how many holders have it open (a mount, a process)
}

// parseDMInfo reads `dmsetup info -c --noheadings --separator | -o
// name,uuid,open`, which prints "No devices found" when there is none.
func parseDMInfo(out []byte) ([]dmDevice, error) {
	var devs []dmDevice
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) != 3 {
			if line = strings.TrimSpace(line); line != "" && line != "No devices found" {
				return nil, fmt.Errorf("parse dmsetup info output: %q is not NAME|UUID|OPEN", line)
			}
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(f[2]))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("parse dmsetup info output: open count %q of %s", f[2], f[0])
		}
		devs = append(devs, dmDevice{name: f[0], uuid: f[1], open: n})
	}
	return devs, nil
}

// lvmUUID is an LVM UUID as the device-mapper writes it: without dashes.
func lvmUUID(u string) string { return strings.ReplaceAll(u, "-", "") }

// dmName is the device-mapper name LVM gives LV lv of VG vg: both with
// each dash doubled, joined by a dash.
func dmName(vg, lv string) string {
	return strings.ReplaceAll(vg, "-", "--") + "-" + strings.ReplaceAll(lv, "-", "--")
}

// staleMappings maps each volume to its device-mapper device here that no
// LV of vg accounts for (lvs: every LV of the VG as LVM sees it now,
// hidden ones included): a device named as relocvol's LV of the volume
// whose LV UUID is no LV's any more (removed elsewhere, or removed and
// created again: the new LV has another UUID). A VG without LVs leaves no
// UUID to tell its devices by: every LVM device named as one of its
// relocvol LVs is stale then.
func staleMappings(vg string, lvs []lv, devs []dmDevice) map[string]dmDevice {
	known := map[string]bool{}
	vgUUID := ""
	for _, v := range lvs {
		known[lvmUUID(v.UUID)] = true
		if v.VGUUID != "" {
			vgUUID = lvmUUID(v.VGUUID)
		}
	}
	prefix := dmName(vg, Prefix)
	out := map[string]dmDevice{}
	for _, d := range devs {
		rest, ok := strings.CutPrefix(d.name, prefix)
		if !ok {
			continue
		}
		name := strings.ReplaceAll(rest, "--", "-")
		if dmName(vg, Prefix+name) != d.name {
			continue
		}
		lvPart, ok := strings.CutPrefix(d.uuid, "LVM-"+vgUUID)
		if !ok {
			continue // not an LVM device, or another VG's of that name
		}
		if lvPart, _, _ = strings.Cut(lvPart, "-"); vgUUID == "" || !known[lvPart] {
			out[name] = d
		}
	}
	return out
}

// mappings lists this host's device-mapper devices.
func (l *LVM) mappings(ctx context.Context) ([]dmDevice, error) {
	out, err := l.run.Run(ctx, "dmsetup", dmInfoArgs...)
	if err != nil {
		return nil, fmt.Errorf("list the device-mapper devices: %w", err)
	}
	return parseDMInfo(out)
}

// staleMapping returns the stale device-mapper device of volume volName
// here, if any (lvs: the VG as read just before).
func (l *LVM) staleMapping(ctx context.Context, volName string, lvs []lv) (dmDevice, bool, error) {
	devs, err := l.mappings(ctx)
	if err != nil {
		return dmDevice{}, false, err
	}
	d, ok := staleMappings(l.vg, lvs, devs)[volName]
	return d, ok, nil
}

// clearStale removes the stale mapping d of volume volName, unless
// something holds it open (ErrInUse: whatever holds it may still write to
// extents that are not this host's any more; stop it first).
func (l *LVM) clearStale(ctx context.Context, volName string, d dmDevice) error {
	if d.open > 0 {
		return fmt.Errorf("volume %s: device-mapper device %s maps an LV of VG %s that another host removed (or removed and created again), and is held open %d time(s) here: stop what uses it (fuser -vm /dev/mapper/%s), then relocvol removes it: %w",
			volName, d.name, l.vg, d.open, d.name, backends.ErrInUse)
	}
	if _, err := l.run.Run(ctx, "dmsetup", "remove", d.name); err != nil {
		return fmt.Errorf("remove the stale device-mapper device %s of volume %s: %w", d.name, volName, err)
	}
	l.log.WithFields(logrus.Fields{"volume": volName, "dev": "/dev/mapper/" + d.name}).Warn("removed the stale device-mapper device of an LV another host removed")
	return nil
}
