package lvm

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relocvol/relocvol/internal/doctor"
	"github.com/relocvol/relocvol/internal/sysblock"
	"github.com/relocvol/relocvol/internal/testenv"
)

func TestVGVerdicts(t *testing.T) {
	vg := func(f func(*vgRow)) []vgRow {
		r := vgRow{Name: "san", PVCount: "1", Free: "1073741824", AutoActivation: ""}
		if f != nil {
			f(&r)
		}
		return []vgRow{r}
	}
	one := []pvRow{{Name: "/dev/sdb", UUID: "u1", VG: "san"}, {Name: "/dev/sda2", UUID: "root", VG: "sys"}}
	for _, tc := range []struct {
		name  string
		f     vgFacts
		want  []string // "status name: detail fragment"
		worst doctor.Status
	}{
		{name: "healthy", f: vgFacts{vgs: vg(nil), pvs: one}, worst: doctor.Pass,
			want: []string{"pass vg: volume group san: 1 PV(s)", "pass vg auto-activation: off", "pass pv /dev/sdb: PV u1 seen once, on /dev/sdb", "pass lvm devices: LVM scans every device"}},
		{name: "not visible", f: vgFacts{vgsErr: errors.New(`Volume group "san" not found`)}, worst: doctor.Fail,
			want: []string{"fail vg: volume group san is not visible on this host"}},
		{name: "given up over a PV seen twice", worst: doctor.Fail, f: vgFacts{vgsErr: errors.New(`Volume group "san" not found`),
			pvs: []pvRow{{Name: "/dev/sda"}, {Name: "/dev/sdb", UUID: "u1", VG: "san"}, {Name: "/dev/sdc", UUID: "u1", VG: "san", Duplicate: "duplicate"}}},
			want: []string{"fail vg: volume group san is not visible", "fail pv /dev/sdb: PV u1 is seen on 2 devices (/dev/sdb, /dev/sdc)", "pass lvm devices"}},
		{name: "given up, the duplicates without their VG", worst: doctor.Fail, f: vgFacts{vgsErr: errors.New(`Volume group "san" not found`),
			pvs: []pvRow{{Name: "/dev/sdb", UUID: "u1", Duplicate: "duplicate"}, {Name: "/dev/sdc", UUID: "u1", Duplicate: "duplicate"}}},
			want: []string{"fail vg: volume group san is not visible", "fail pv /dev/sdb: PV u1 is seen on 2 devices (/dev/sdb, /dev/sdc)"}},
		{name: "given up over a LUN seen through two paths", worst: doctor.Fail, f: vgFacts{vgsErr: errors.New(`Volume group "san" not found`),
			pvs: []pvRow{{Name: "/dev/sda"}, {Name: "/dev/sdb"}}, unmanaged: map[string][]string{"naa.6001": {"/dev/sdb", "/dev/sda"}, "naa.7002": {"/dev/sdc"}}},
			want: []string{"fail vg: volume group san is not visible", "fail pv /dev/sda,/dev/sdb: LUN naa.6001 is seen on 2 devices (/dev/sda, /dev/sdb) without multipath", "pass lvm devices"}},
		{name: "a LUN seen twice that LVM judged already", worst: doctor.Fail, f: vgFacts{vgs: vg(nil),
			pvs:       []pvRow{{Name: "/dev/sdb", UUID: "u1", VG: "san"}, {Name: "/dev/sdc", UUID: "u1", VG: "san", Duplicate: "duplicate"}},
			unmanaged: map[string][]string{"naa.6001": {"/dev/sdb", "/dev/sdc"}}},
			want: []string{"pass vg: volume group", "pass vg auto-activation", "fail pv /dev/sdb: PV u1 is seen on 2 devices", "pass lvm devices"}},
		{name: "not listed", f: vgFacts{vgs: []vgRow{{Name: "other"}}}, worst: doctor.Fail, want: []string{"fail vg: volume group san is not visible"}},
		{name: "system ID", f: vgFacts{vgs: vg(func(r *vgRow) { r.SystemID = "node-a" }), pvs: one}, worst: doctor.Fail,
			want: []string{"pass vg: volume group", `fail vg system_id: san has system ID "node-a"`}},
		{name: "auto-activation on", f: vgFacts{vgs: vg(func(r *vgRow) { r.AutoActivation = "enabled" }), pvs: one}, worst: doctor.Fail,
			want: []string{"pass vg: volume group", "fail vg auto-activation: san has auto-activation on"}},
		{name: "seen twice", f: vgFacts{vgs: vg(nil), pvs: []pvRow{{Name: "/dev/sdb", UUID: "u1", VG: "san"}, {Name: "/dev/sdc", UUID: "u1", VG: "san", Duplicate: "duplicate"}}}, worst: doctor.Fail,
			want: []string{"pass vg: volume group", "pass vg auto-activation", "fail pv /dev/sdb: PV u1 is seen on 2 devices (/dev/sdb, /dev/sdc)"}},
		{name: "seen twice, the duplicate without its VG", f: vgFacts{vgs: vg(nil), pvs: []pvRow{{Name: "/dev/sdc", UUID: "u1", Duplicate: "duplicate"}, {Name: "/dev/sdb", UUID: "u1", VG: "san"}}}, worst: doctor.Fail,
			want: []string{"pass vg: volume group", "pass vg auto-activation", "fail pv /dev/sdb: PV u1 is seen on 2 devices"}},
		{name: "on a path of a map", f: vgFacts{vgs: vg(nil), pvs: one, kinds: map[string]devKind{"/dev/sdb": {pathOf: "/dev/dm-0"}}}, worst: doctor.Fail,
			want: []string{"pass vg: volume group", "pass vg auto-activation", "fail pv /dev/sdb: PV u1 is on /dev/sdb, a path of multipath map /dev/dm-0"}},
		{name: "on a map", f: vgFacts{vgs: vg(nil), pvs: []pvRow{{Name: "/dev/mapper/mpatha", UUID: "u1", VG: "san"}}, kinds: map[string]devKind{"/dev/mapper/mpatha": {multipathMap: "/dev/mapper/mpatha"}}}, worst: doctor.Pass,
			want: []string{"pass vg: volume group", "pass vg auto-activation", "pass pv /dev/mapper/mpatha: PV u1 seen once, on multipath map /dev/mapper/mpatha"}},
		{name: "missing PV", f: vgFacts{vgs: vg(nil), pvs: []pvRow{{Name: "[unknown]", UUID: "u2", VG: "san", Missing: "missing"}}}, worst: doctor.Fail,
			want: []string{"pass vg: volume group", "pass vg auto-activation", "fail pv [unknown]: PV u2 of san is not seen on this host"}},
		{name: "devices file", f: vgFacts{vgs: vg(nil), pvs: one, devices: "the devices in its devices file (/etc/lvm/devices/system.devices)"}, worst: doctor.Pass,
			want: []string{"pass vg: volume group", "pass vg auto-activation", "pass pv /dev/sdb", "pass lvm devices: LVM scans the devices in its devices file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.f.vg = "san"
			got := vgVerdicts(tc.f)
			for i, w := range tc.want {
				if i >= len(got) {
					t.Fatalf("only %d checks: %+v", len(got), got)
				}
				head, frag, _ := strings.Cut(w, ": ")
				if string(got[i].Status)+" "+got[i].Name != head || !strings.Contains(got[i].Detail, frag) {
					t.Errorf("check %d = %s %s: %s, want %s", i, got[i].Status, got[i].Name, got[i].Detail, w)
				}
				if got[i].Status != doctor.Pass && got[i].Fix == "" {
					t.Errorf("check %d has no fix", i)
				}
			}
			if w := doctor.Worst(got); w != tc.worst {
				t.Errorf("worst %s, want %s: %+v", w, tc.worst, got)
			}
		})
	}
}

func TestDeviceSelection(t *testing.T) {
	for in, want := range map[string]string{
		"use_devicesfile=1\nglobal_filter=[\"a|.*|\"]\n":                 "the devices in its devices file (/etc/lvm/devices/system.devices)",
		"use_devicesfile=0\nglobal_filter=[\"r|/dev/sdc|\",\"a|.*|\"]\n": `the devices its global_filter accepts: ["r|/dev/sdc|","a|.*|"]`,
		"use_devicesfile=0\nglobal_filter=[\"a|.*|\"]\n":                 "",
		"use_devicesfile=0\n": "",
	} {
		if got := deviceSelection(in); got != want {
			t.Errorf("deviceSelection(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKindOf(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	testenv.WriteFiles(t, sys, map[string]string{
		"class/block/dm-0/dm/uuid":     "mpath-3600140\n",
		"class/block/dm-1/dm/uuid":     "LVM-abc\n",
		"class/block/sdb/holders/dm-0": "",
		"class/block/sdc/holders/dm-1": "",
		"class/block/sdd/size":         "1",
	})
	testenv.WriteFiles(t, dev, map[string]string{"dm-0": "", "sdb": "", "sdc": "", "sdd": ""})
	for name, want := range map[string]devKind{
		"dm-0": {multipathMap: filepath.Join(dev, "dm-0")},
		"sdb":  {pathOf: "/dev/dm-0"},
		"sdc":  {}, // held by an LV, not a map
		"sdd":  {},
	} {
		if got := kindOf(sysblock.Sysfs(sys), filepath.Join(dev, name)); got != want {
			t.Errorf("kindOf(%s) = %+v, want %+v", name, got, want)
		}
	}
}

func TestUnmanagedDisks(t *testing.T) {
	sys := t.TempDir()
	testenv.WriteFiles(t, sys, map[string]string{
		"class/block/sda/device/wwid":  "naa.1\n",
		"class/block/sdb/device/wwid":  "naa.1\n",
		"class/block/sdc/device/wwid":  "naa.2\n",
		"class/block/sdd/device/wwid":  "naa.2\n",
		"class/block/sdc/holders/dm-0": "",
		"class/block/sdd/holders/dm-0": "",
		"class/block/dm-0/dm/uuid":     "mpath-naa.2\n",
		"class/block/sda1/partition":   "1",
	})
	got := unmanagedDisks(sysblock.Sysfs(sys))
	if len(got) != 1 || strings.Join(got["naa.1"], ",") != "/dev/sda,/dev/sdb" {
		t.Fatalf("unmanagedDisks = %v, want naa.1 on sda and sdb only (naa.2's disks are paths of dm-0)", got)
	}
}
