package lvm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relocvol/relocvol/internal/execx"
	"github.com/relocvol/relocvol/internal/sysblock"
)

// lunSysfs makes /dev/sdz a SCSI disk nothing holds, as l sees it.
func lunSysfs(t *testing.T, l *LVM) {
	t.Helper()
	root := t.TempDir()
	mkdirs(t, root, "class/block/sdz/device/scsi_disk/2:0:0:1", "class/block/sdz/holders")
	l.sysfs = sysblock.Sysfs(root)
	l.blockDevice = func(dev string) (string, error) { return dev, nil }
}

func mkdirs(t *testing.T, root string, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// Only a whole SCSI disk or a multipath map that nothing holds, named by
// its node or under /dev/mapper or /dev/disk, is added: refused before
// anything is written.
func TestCheckLUN(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root,
		"class/block/sdz/device/scsi_disk/2:0:0:1", "class/block/sdz/holders",
		"class/block/sdb/device/scsi_disk/2:0:0:2", "class/block/sdb/holders/dm-4",
		"class/block/dm-4/holders", "class/block/dm-4/dm",
		"class/block/dm-5/holders/dm-6", "class/block/dm-5/dm",
		"class/block/dm-7/holders", "class/block/dm-7/dm",
		"class/block/loop3/holders", "class/block/sdc/device/scsi_disk/2:0:0:3", "class/block/sdc/holders")
	for name, uuid := range map[string]string{"dm-4": "mpath-3600a", "dm-5": "mpath-3600b", "dm-7": "LVM-abc"} {
		if err := os.WriteFile(filepath.Join(root, "class/block", name, "dm/uuid"), []byte(uuid+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// sdc holds a partition: a filesystem on it.
	mkdirs(t, root, "class/block/sdc/holders/sdc1")
	sys := sysblock.Sysfs(root)
	for _, tc := range []struct {
		dev, real, wantErr string
	}{
		{"/dev/sdz", "/dev/sdz", ""},
		{"/dev/mapper/mpatha", "/dev/dm-4", ""},
		{"/dev/disk/by-id/dm-uuid-mpath-3600a", "/dev/dm-4", ""},
		{"/dev/shm/lun", "/dev/dm-4", "a link outside /dev/mapper and /dev/disk"},
		{"/dev/sdb", "/dev/sdb", "a path of multipath map dm-4"},
		{"/dev/mapper/mpathb", "/dev/dm-5", "in use (held by dm-6)"},
		{"/dev/mapper/vg-lv", "/dev/dm-7", "not a multipath map"},
		{"/dev/loop3", "/dev/loop3", "not a SCSI disk"},
		{"/dev/sdc", "/dev/sdc", "in use (held by sdc1)"},
		{"/dev/disk/by-id/x", "/dev/pts/3", "not a disk node under /dev"},
	} {
		err := checkLUN(sys, tc.dev, tc.real)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("checkLUN(%s → %s): %v", tc.dev, tc.real, err)
			}
			continue
		}
		var de interface{ DeviceRefused() bool }
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.As(err, &de) {
			t.Errorf("checkLUN(%s → %s) = %v, want a refusal saying %q", tc.dev, tc.real, err, tc.wantErr)
		}
	}
}

func TestPlanExtend(t *testing.T) {
	pvs := []pvRow{{Name: "/dev/mapper/mpatha", UUID: "u-a", VG: "san"}, {Name: "/dev/mapper/mpathc", UUID: "u-c"}, {Name: "/dev/sdq", UUID: "u-q", VG: "other"}}
	pvReal := []string{"/dev/dm-0", "/dev/dm-2", "/dev/sdq"}
	for _, tc := range []struct {
		name    string
		devs    []string
		real    []string
		want    []extendAction
		wantErr string
	}{
		{"a new device", []string{"/dev/mapper/mpathb"}, []string{"/dev/dm-1"}, []extendAction{pvCreate}, ""},
		{"an orphan PV is reused", []string{"/dev/mapper/mpathc"}, []string{"/dev/dm-2"}, []extendAction{pvReuse}, ""},
		{"two, one named by another link", []string{"/dev/mapper/mpathb", "/dev/disk/by-id/dm-uuid-mpath-3600c"}, []string{"/dev/dm-1", "/dev/dm-2"}, []extendAction{pvCreate, pvReuse}, ""},
		{"none", nil, nil, nil, "no device given"},
		{"in the VG already", []string{"/dev/mapper/mpatha"}, []string{"/dev/dm-0"}, nil, "device /dev/mapper/mpatha is a PV of volume group san already"},
		{"another VG's", []string{"/dev/sdq"}, []string{"/dev/sdq"}, nil, "a PV of another volume group, other"},
		{"the same device twice", []string{"/dev/mapper/mpathb", "/dev/dm-1"}, []string{"/dev/dm-1", "/dev/dm-1"}, nil, "device /dev/dm-1 is the same device as /dev/mapper/mpathb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := planExtend("san", tc.devs, tc.real, pvs, pvReal)
			if tc.wantErr != "" {
				var de interface{ DeviceRefused() bool }
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.As(err, &de) {
					t.Fatalf("err = %v, want a refusal saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("planExtend = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestValidDevice(t *testing.T) {
	for _, dev := range []string{"mpathb", "/dev/../etc/passwd", "/dev/sdb ", "/tmp/x", "", "/dev/"} {
		if ValidDevice(dev) == nil {
			t.Errorf("ValidDevice(%q) accepted it", dev)
		}
	}
	for _, dev := range []string{"/dev/sdb", "/dev/mapper/mpathb", "/dev/disk/by-id/wwn-0x6001405"} {
		if err := ValidDevice(dev); err != nil {
			t.Errorf("ValidDevice(%q): %v", dev, err)
		}
	}
}

func TestDevicesOf(t *testing.T) {
	pvs := []pvRow{{Name: "/dev/mapper/mpatha", UUID: "u-a", VG: "san"}, {Name: "/dev/mapper/mpathb", UUID: "u-b"}, {Name: "[unknown]", UUID: "u-x", VG: "san"}}
	if got, err := devicesOf(pvs, []string{"u-b"}); err != nil || !slices.Equal(got, []string{"/dev/mapper/mpathb"}) {
		t.Fatalf("devicesOf u-b = %v, %v", got, err)
	}
	for _, u := range []string{"u-zz", "u-x"} {
		if _, err := devicesOf(pvs, []string{"u-b", u}); err == nil || !strings.Contains(err.Error(), u) || !strings.Contains(err.Error(), "attach the LUN here too") {
			t.Fatalf("devicesOf with %s (not seen here): %v", u, err)
		}
	}
}

var pvsArgv = []string{"pvs", "--config", "devices/hints=none", "--reportformat", "json", "-o", "pv_name,pv_uuid,vg_name"}

// Extend writes the PV label, lets every host join it, and only then runs
// vgextend, under the VG's metadata lock, having proven the lock of VG
// changes held before each step.
func TestExtend(t *testing.T) {
	before := execx.Call{Argv: pvsArgv, Stdout: `{"report":[{"pv":[{"pv_name":"/dev/sdb","pv_uuid":"u-b","vg_name":"san"}]}]}`}
	after := execx.Call{Argv: pvsArgv, Stdout: `{"report":[{"pv":[{"pv_name":"/dev/sdb","pv_uuid":"u-b","vg_name":"san"},{"pv_name":"/dev/sdz","pv_uuid":"u-z","vg_name":""}]}]}`}
	pvcreate := execx.Call{Argv: []string{"pvcreate", "--config", "devices/hints=none", "/dev/sdz"}}
	t.Run("joined, then added", func(t *testing.T) {
		l, f, lk := newLVM(t, before, pvcreate, after,
			execx.Call{Argv: []string{"vgextend", "--config", "devices/hints=none", "san", "/dev/sdz"}},
			execx.Call{Argv: []string{"pvscan", "--cache"}})
		lunSysfs(t, l)
		var joined []string
		err := l.Extend(context.Background(), []string{"/dev/sdz"}, func(_ context.Context, uuids, _ []string) error {
			joined = uuids
			lk.events = append(lk.events, "join")
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(joined, []string{"u-z"}) {
			t.Fatalf("join got %v, want the new PV's UUID", joined)
		}
		want := []string{"lock vgchange/san", "held vgchange/san", "held vgchange/san", "join", "held vgchange/san", "lock vg/san", "unlock vg/san", "unlock vgchange/san"}
		if !slices.Equal(lk.events, want) {
			t.Fatalf("lock events %v, want %v", lk.events, want)
		}
		if left := f.Left(); len(left) != 0 {
			t.Fatalf("commands not run: %v", left)
		}
	})
	t.Run("a host refuses: nothing added, the label removed", func(t *testing.T) {
		l, f, _ := newLVM(t, before, pvcreate, after, execx.Call{Argv: []string{"pvremove", "--config", "devices/hints=none", "/dev/sdz"}})
		lunSysfs(t, l)
		err := l.Extend(context.Background(), []string{"/dev/sdz"}, func(context.Context, []string, []string) error {
			return errors.New("host n2 does not see the PV")
		})
		if err == nil || !strings.Contains(err.Error(), "host n2 does not see the PV") {
			t.Fatalf("err = %v", err)
		}
		if left := f.Left(); len(left) != 0 {
			t.Fatalf("commands not run: %v", left)
		}
	})
	t.Run("vgextend fails: the label stays", func(t *testing.T) {
		l, f, _ := newLVM(t, before, pvcreate, after,
			execx.Call{Argv: []string{"vgextend", "--config", "devices/hints=none", "san", "/dev/sdz"}, Err: &execx.ExecError{ExitCode: 5, Stderr: "Failed to write metadata to /dev/sdb"}})
		lunSysfs(t, l)
		err := l.Extend(context.Background(), []string{"/dev/sdz"}, func(context.Context, []string, []string) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "the PV labels stay") {
			t.Fatalf("err = %v", err)
		}
		if left := f.Left(); len(left) != 0 {
			t.Fatalf("commands not run: %v", left)
		}
	})
	t.Run("the caller gives up: vgextend runs on", func(t *testing.T) {
		l, f, _ := newLVM(t, before, pvcreate, after,
			execx.Call{Argv: []string{"vgextend", "--config", "devices/hints=none", "san", "/dev/sdz"}},
			execx.Call{Argv: []string{"pvscan", "--cache"}})
		lunSysfs(t, l)
		ctx, cancel := context.WithCancel(context.Background())
		var vgextendCtx error
		l.run = ctxSpy{Runner: f, on: "vgextend", seen: &vgextendCtx}
		err := l.Extend(ctx, []string{"/dev/sdz"}, func(context.Context, []string, []string) error { cancel(); return nil })
		if err != nil || vgextendCtx != nil {
			t.Fatalf("Extend = %v, vgextend's context %v: want it run to its end once started", err, vgextendCtx)
		}
		if left := f.Left(); len(left) != 0 {
			t.Fatalf("commands not run: %v", left)
		}
	})
	t.Run("lock lost during the join: the label stays", func(t *testing.T) {
		l, f, lk := newLVM(t, before, pvcreate, after)
		lunSysfs(t, l)
		err := l.Extend(context.Background(), []string{"/dev/sdz"}, func(context.Context, []string, []string) error {
			lk.lost = errors.New("lock lost")
			return errors.New("etcd does not answer")
		})
		if err == nil {
			t.Fatal("Extend succeeded")
		}
		if left := f.Left(); len(left) != 0 {
			t.Fatalf("commands not run: %v", left)
		}
	})
	t.Run("lock lost: no vgextend", func(t *testing.T) {
		l, f, lk := newLVM(t, before)
		lk.lost = errors.New("lock lost")
		lunSysfs(t, l)
		err := l.Extend(context.Background(), []string{"/dev/sdz"}, func(context.Context, []string, []string) error { t.Fatal("joined without the lock"); return nil })
		if err == nil || !strings.Contains(err.Error(), "lock lost") {
			t.Fatalf("err = %v", err)
		}
		if left := f.Left(); len(left) != 0 {
			t.Fatalf("commands not run: %v", left)
		}
	})
}

// ctxSpy records whether the context of the command on was done when it
// ran.
type ctxSpy struct {
	execx.Runner
	on   string
	seen *error
}

func (c ctxSpy) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if name == c.on {
		*c.seen = ctx.Err()
	}
	return c.Runner.Run(ctx, name, args...)
}
