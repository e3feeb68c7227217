package lvm

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/relocvol/relocvol/internal/doctor"
	"github.com/relocvol/relocvol/internal/sysblock"
)

// vgRow is one row of the doctor's `vgs` report.
type vgRow struct {
	Name           string `json:"vg_name"`
	SystemID       string `json:"vg_systemid"`
	AutoActivation string `json:"vg_autoactivation"`
	Free           string `json:"vg_free"`
	PVCount        string `json:"pv_count"`
	LockType       string `json:"vg_lock_type"`
}

// pvRow is one row of the doctor's `pvs -a` report: every device LVM
// scans, the unchosen duplicates of a PV included (no UUID: no PV).
type pvRow struct {
	Name      string `json:"pv_name"`
	UUID      string `json:"pv_uuid"`
	VG        string `json:"vg_name"`
	Duplicate string `json:"pv_duplicate"`
	Missing   string `json:"pv_missing"`
}

// devKind is how a PV's device reaches the LUN, from sysfs.
type devKind struct {
	multipathMap string // the device is a multipath map (its name)
	pathOf       string // the device is a path of this multipath map
}

// vgFacts is what the doctor found of the VG on this host.
type vgFacts struct {
	vg      string
	vgs     []vgRow
	vgsErr  error
	pvs     []pvRow
	pvsErr  error
	kinds   map[string]devKind // by PV device
	devices string             // LVM's device selection: "devices file", "global_filter …" or ""
	// unmanaged are the SCSI disks by LUN (WWID) that no multipath map
	// holds: two for one LUN are two paths without multipath.
	unmanaged map[string][]string
}

// vgVerdicts judges the VG: visible here, no system ID, auto-activation
// off, each PV seen exactly once and through a multipath map rather than
// one of its paths.
func vgVerdicts(f vgFacts) []doctor.Check {
	var row *vgRow
	for i := range f.vgs {
		if f.vgs[i].Name == f.vg {
			row = &f.vgs[i]
		}
	}
	var out []doctor.Check
	if f.vgsErr != nil || row == nil {
		err := f.vgsErr
		if err == nil {
			err = fmt.Errorf("vgs does not list it")
		}
		// The PV checks below may say why: LVM gives up a VG whose PV it
		// sees twice.
		out = append(out, doctor.Failed("vg", (&notVisibleError{vg: f.vg, err: err}).Error(), "volume group %s is not visible on this host", f.vg))
	} else {
		out = append(out, f.vgChecks(*row)...)
	}
	if f.pvsErr != nil {
		return append(out, doctor.Failed("pv", "run pvs on the host to see what LVM says", "cannot list the PVs: %v", f.pvsErr))
	}
	out = append(out, f.pvChecks()...)
	out = append(out, f.pathChecks()...)
	sel := f.devices
	if sel == "" {
		sel = "every device (no filter, no devices file)"
	}
	return append(out, doctor.Passed("lvm devices", "LVM scans %s", sel))
}

// vgChecks judges a VG LVM lists: no system ID, auto-activation off.
func (f vgFacts) vgChecks(row vgRow) []doctor.Check {
	out := []doctor.Check{doctor.Passed("vg", "volume group %s: %s PV(s), %s bytes free", f.vg, row.PVCount, row.Free)}
	if row.SystemID != "" {
		out = append(out, doctor.Failed("vg system_id", "vgchange --systemid '' "+f.vg+" (and system_id_source = \"none\" in lvm.conf): relocvol decides which host uses each LV",
			"%s has system ID %q: only that host may use it", f.vg, row.SystemID))
	}
	if row.AutoActivation == "enabled" {
		out = append(out, doctor.Failed("vg auto-activation", "vgchange --setautoactivation n "+f.vg,
			"%s has auto-activation on: every host activates every LV of it at boot, before relocvol says which host may", f.vg))
	} else {
		out = append(out, doctor.Passed("vg auto-activation", "off: LVs are active only where relocvol activates them"))
	}
	if row.LockType != "" && row.LockType != "none" {
		out = append(out, doctor.Passed("vg locking", "lvmlockd (%s) guards the VG's metadata", row.LockType))
	}
	return out
}

// pvChecks judges each PV of the VG, and each PV of no VG that LVM sees
// twice (it gives up a VG over such a PV): seen once, not missing, on a
// multipath map rather than one of its paths.
func (f vgFacts) pvChecks() []doctor.Check {
	// By UUID, every device each PV is seen on (pvs -a lists the unchosen
	// duplicates too).
	byUUID := map[string][]pvRow{}
	for _, p := range f.pvs {
		if p.UUID != "" && (p.VG == f.vg || p.VG == "") {
			byUUID[p.UUID] = append(byUUID[p.UUID], p)
		}
	}
	uuids := make([]string, 0, len(byUUID))
	for u := range byUUID {
		uuids = append(uuids, u)
	}
	sort.Strings(uuids)
	filter := "filter the extra paths out (global_filter in /etc/lvm/lvm.conf, or lvmdevices --deldev for /etc/lvm/devices/system.devices)"
	var out []doctor.Check
	for _, u := range uuids {
		rows := byUUID[u]
		if len(rows) == 1 && rows[0].VG == "" {
			continue // a PV of no VG, seen once
		}
		var devs, used []string
		for _, r := range rows {
			devs = append(devs, r.Name)
			if r.Duplicate == "" {
				used = append(used, r.Name)
			}
		}
		sort.Strings(devs)
		if len(used) == 0 {
			used = devs[:1]
		}
		name := "pv " + strings.Join(used, ",")
		switch {
		case rows[0].Missing != "" || (len(used) == 1 && used[0] == "[unknown]"):
			out = append(out, doctor.Failed(name, "attach the LUN here too (iscsiadm -m session --rescan, multipath -ll) and check that the host's LVM filter or devices file accepts it",
				"PV %s of %s is not seen on this host: it cannot be fenced or used here", u, f.vg))
		case len(devs) > 1:
			out = append(out, doctor.Failed(name, "use dm-multipath, so that LVM uses the map and each path is registered through it; or "+filter,
				"PV %s is seen on %d devices (%s): one LUN through several paths without multipath; LVM uses %s, or gives up the VG, and a path it may switch to can be unregistered",
				u, len(devs), strings.Join(devs, ", "), strings.Join(used, ",")))
		default:
			k := f.kinds[devs[0]]
			switch {
			case k.pathOf != "":
				out = append(out, doctor.Failed(name, "make LVM use the map, not its paths: "+filter+" (multipath_component_detection = 1 in lvm.conf does it too)",
					"PV %s is on %s, a path of multipath map %s: fencing through that one path leaves the others", u, devs[0], k.pathOf))
			case k.multipathMap != "":
				out = append(out, doctor.Passed(name, "PV %s seen once, on multipath map %s", u, k.multipathMap))
			default:
				out = append(out, doctor.Passed(name, "PV %s seen once, on %s", u, devs[0]))
			}
		}
	}
	return out
}

// pathChecks finds the LUNs this host reaches through several disks that
// no multipath map holds, and whose disks pvChecks did not judge: LVM
// takes such disks for paths of a multipath map and ignores them all, so
// that a VG on them is gone here.
func (f vgFacts) pathChecks() []doctor.Check {
	judged := map[string]bool{}
	for _, p := range f.pvs {
		if p.UUID != "" {
			judged[p.Name] = true
		}
	}
	wwids := make([]string, 0, len(f.unmanaged))
	for w := range f.unmanaged {
		wwids = append(wwids, w)
	}
	sort.Strings(wwids)
	var out []doctor.Check
	for _, w := range wwids {
		devs := append([]string(nil), f.unmanaged[w]...)
		sort.Strings(devs)
		if len(devs) < 2 || slices.ContainsFunc(devs, func(d string) bool { return judged[d] }) {
			continue
		}
		out = append(out, doctor.Failed("pv "+strings.Join(devs, ","), "use dm-multipath (LVM then uses its map, and each path is registered through it), or log out of the extra paths",
			"LUN %s is seen on %d devices (%s) without multipath: LVM takes them for paths of a multipath map and ignores them, so that a VG on it is gone here", w, len(devs), strings.Join(devs, ", ")))
	}
	return out
}

// Diagnose implements the doctor's storage checks for an lvm host
// (vgVerdicts), from LVM's reports and sysfs.
func (l *LVM) Diagnose(ctx context.Context) []doctor.Check {
	f := vgFacts{vg: l.vg, kinds: map[string]devKind{}}
	out, err := l.lvm(ctx, "vgs", "--reportformat", "json", "--units", "b", "--nosuffix",
		"-o", "vg_name,vg_systemid,vg_autoactivation,vg_free,pv_count,vg_lock_type", l.vg)
	if err == nil {
		f.vgs, err = parseReport[vgRow](out, "vg")
	}
	f.vgsErr = err
	out, err = l.lvm(ctx, "pvs", "-a", "--reportformat", "json", "-o", "pv_name,pv_uuid,vg_name,pv_duplicate,pv_missing")
	if err == nil {
		f.pvs, err = parseReport[pvRow](out, "pv")
	}
	f.pvsErr = err
	for _, p := range f.pvs {
		f.kinds[p.Name] = kindOf(sysblock.Sysfs("/sys"), p.Name)
	}
	f.unmanaged = unmanagedDisks(sysblock.Sysfs("/sys"))
	if out, err := l.lvm(ctx, "lvmconfig", "--typeconfig", "full", "devices/use_devicesfile", "devices/global_filter"); err == nil {
		f.devices = deviceSelection(string(out))
	}
	return vgVerdicts(f)
}

// kindOf tells from sysfs whether dev is a multipath map or a path of one.
func kindOf(sys sysblock.Sysfs, dev string) devKind {
	real, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return devKind{}
	}
	name := filepath.Base(real)
	if sys.IsMultipathMap(name) {
		return devKind{multipathMap: dev}
	}
	if m := sys.MapOf(name); m != "" {
		return devKind{pathOf: "/dev/" + m}
	}
	return devKind{}
}

// unmanagedDisks lists, by WWID, the SCSI disks no multipath map holds.
func unmanagedDisks(sys sysblock.Sysfs) map[string][]string {
	out := map[string][]string{}
	for w, names := range sys.Disks() {
		for _, n := range names {
			if sys.MapOf(n) == "" {
				out[w] = append(out[w], "/dev/"+n)
			}
		}
	}
	return out
}

// deviceSelection says how LVM picks the devices it scans, from
// `lvmconfig --typeconfig full devices/use_devicesfile devices/global_filter`.
func deviceSelection(out string) string {
	var file, filter string
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "use_devicesfile":
			file = strings.TrimSpace(v)
		case "global_filter":
			filter = strings.TrimSpace(v)
		}
	}
	switch {
	case file == "1":
		return "the devices in its devices file (/etc/lvm/devices/system.devices)"
	case filter != "" && filter != `[ "a|.*|" ]` && filter != "[]" && filter != `["a|.*|"]`:
		return "the devices its global_filter accepts: " + filter
	}
	return ""
}
