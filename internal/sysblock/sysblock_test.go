package sysblock

import (
	"slices"
	"testing"

	"github.com/relocvol/relocvol/internal/testenv"
)

func TestTopology(t *testing.T) {
	root := t.TempDir()
	testenv.WriteFiles(t, root, map[string]string{
		"class/block/sda/device/wwid":  "naa.1\n",
		"class/block/sdb/device/wwid":  "naa.1\n",
		"class/block/sdc/device/wwid":  "naa.2\n",
		"class/block/sdc/holders/dm-0": "",
		"class/block/sdd/device/wwid":  "naa.2\n",
		"class/block/sdd/holders/dm-0": "",
		"class/block/dm-0/dm/uuid":     "mpath-naa.2\n",
		"class/block/dm-0/slaves/sdd":  "",
		"class/block/dm-0/slaves/sdc":  "",
		"class/block/dm-1/dm/uuid":     "LVM-abc\n",
		"class/block/sda1/partition":   "1",
	})
	s := Sysfs(root)
	if !s.IsMultipathMap("dm-0") || s.IsMultipathMap("dm-1") || s.IsMultipathMap("sda") {
		t.Error("IsMultipathMap: want dm-0 only")
	}
	if s.MapOf("sdc") != "dm-0" || s.MapOf("sda") != "" {
		t.Errorf("MapOf: sdc %q, sda %q", s.MapOf("sdc"), s.MapOf("sda"))
	}
	if p := s.Paths("dm-0"); !slices.Equal(p, []string{"sdc", "sdd"}) {
		t.Errorf("Paths(dm-0) = %v", p)
	}
	if w, err := s.WWID("sdb"); err != nil || w != "naa.1" {
		t.Errorf("WWID(sdb) = %q, %v", w, err)
	}
	if _, err := s.WWID("sda1"); err == nil {
		t.Error("a partition has no WWID")
	}
	d := s.Disks()
	if len(d) != 2 || !slices.Equal(d["naa.1"], []string{"sda", "sdb"}) || !slices.Equal(d["naa.2"], []string{"sdc", "sdd"}) {
		t.Errorf("Disks = %v", d)
	}
}
