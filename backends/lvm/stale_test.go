package lvm

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/relocvol/relocvol/backends"
	"github.com/relocvol/relocvol/internal/execx"
)

var dmInfoArgv = []string{"dmsetup", "info", "-c", "--noheadings", "--separator", "|", "-o", "name,uuid,open"}

// gone is the VG after another host removed rv-x-y (and rv-db) while
// their device-mapper devices were still active here.
const gone = `{"report":[{"lv":[{"lv_name":"rv-logs", "vg_name":"san", "lv_attr":"-wi-------", "lv_size":"1073741824", "lv_path":"/dev/san/rv-logs", "lv_tags":"relocvol", "lv_uuid":"Ll3333-GFw0-oeh1-giFI-48e7-t2HU-o5fQBR", "vg_uuid":"GTKJ70-vVfo-Srcd-TMh9-82qd-i9Nl-riry8z"}]}]}`

// recreated is the VG after another host removed rv-x-y and created an LV
// of that name again: LVM sees it inactive here (its device here is the
// old LV's).
const recreated = `{"report":[{"lv":[{"lv_name":"rv-x-y", "vg_name":"san", "lv_attr":"-wi-------", "lv_size":"16777216", "lv_path":"/dev/san/rv-x-y", "lv_tags":"relocvol", "lv_uuid":"MFG4bZ-ILkg-0byU-gmS8-z75A-0eHx-gwkppl", "vg_uuid":"GTKJ70-vVfo-Srcd-TMh9-82qd-i9Nl-riry8z"}]}]}`

// A device-mapper device of an LV removed (or removed and created again)
// by another host is this host's stale mapping of extents that may be
// another volume's now: it counts as active here (Device, Active), a
// Deactivate removes it where nothing holds it open and refuses (ErrInUse)
// where something does, and an Activate of a re-created LV clears it
// first, all by the device-mapper's own names, not LVM's metadata.
func TestStaleDeviceMapperDevices(t *testing.T) {
	info := execx.Call{Argv: dmInfoArgv, Stdout: fixture(t, "handwritten-dmsetup-info.txt")}
	ctx := context.Background()

	t.Run("seen as active", func(t *testing.T) {
		l, _, _ := newLVM(t, execx.Call{Argv: lvsArgv, Stdout: gone}, info, execx.Call{Argv: lvsArgv, Stdout: gone}, info)
		if dev, err := l.Device(ctx, "x-y"); err != nil || dev != "/dev/mapper/san-rv--x--y" {
			t.Fatalf("Device of an LV removed elsewhere with its mapping still here = %q, %v; want /dev/mapper/san-rv--x--y", dev, err)
		}
		active, err := l.Active(ctx)
		if err != nil || !slices.Equal(active, []string{"db", "x-y"}) {
			t.Fatalf("Active = %v, %v; want the stale mappings db and x-y", active, err)
		}
	})
	t.Run("deactivated where not open", func(t *testing.T) {
		l, _, _ := newLVM(t, execx.Call{Argv: lvsArgv, Stdout: gone}, info,
			execx.Call{Argv: []string{"dmsetup", "remove", "san-rv--x--y"}})
		if err := l.Deactivate(ctx, "x-y"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("refused where open", func(t *testing.T) {
		l, _, _ := newLVM(t, execx.Call{Argv: lvsArgv, Stdout: gone}, info)
		if err := l.Deactivate(ctx, "db"); !errors.Is(err, backends.ErrInUse) {
			t.Fatalf("Deactivate of an open stale mapping: %v, want ErrInUse (nothing removed)", err)
		}
	})
	t.Run("cleared before activating a re-created LV", func(t *testing.T) {
		l, _, _ := newLVM(t, execx.Call{Argv: lvsArgv, Stdout: recreated}, info,
			execx.Call{Argv: []string{"dmsetup", "remove", "san-rv--x--y"}},
			execx.Call{Argv: []string{"lvchange", "--config", "devices/hints=none", "--activate", "y", "san/rv-x-y"}})
		if dev, err := l.Activate(ctx, "x-y"); err != nil || dev != "/dev/san/rv-x-y" {
			t.Fatalf("Activate = %q, %v", dev, err)
		}
	})
}

func TestParseDMInfo(t *testing.T) {
	vg := "LVM-GTKJ70vVfoSrcdTMh982qdi9Nlriry8z"
	for _, tc := range []struct {
		name, out string
		want      []dmDevice
		wantErr   string
	}{
		{name: "none (the lab's dmsetup)", out: string(fixture(t, "lab-dmsetup-none.txt"))},
		{name: "devices", out: string(fixture(t, "handwritten-dmsetup-info.txt")), want: []dmDevice{
			{"san-rv--x--y", vg + "ksCvV6GFw0oeh1giFI48e7t2HUo5fQBR", 0}, {"san-rv--db", vg + "Dd1111GFw0oeh1giFI48e7t2HUo5fQBR", 1},
			{"san-other", vg + "Oo2222GFw0oeh1giFI48e7t2HUo5fQBR", 1}, {"mpatha", "mpath-36001405a0a1b2c3d4e5f60718293a4b5", 2}}},
		{name: "not a count", out: "san-rv--db|LVM-x|x\n", wantErr: `open count "x" of san-rv--db`},
		{name: "not name|uuid|open", out: "san-rv--db|1\n", wantErr: `"san-rv--db|1" is not NAME|UUID|OPEN`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDMInfo([]byte(tc.out))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("parseDMInfo = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestStaleMappings(t *testing.T) {
	const vgU, db, rimage, xy = "GTKJ70-vVfo", "Dd1111", "Ri0000", "Xx0000"
	lvs := []lv{
		{Name: "rv-db", UUID: db, VGUUID: vgU, active: true},
		{Name: "[rv-db_rimage_0]", UUID: rimage, VGUUID: vgU, active: true}, // a raid LV's hidden sub-LV
		{Name: "rv-x-y", UUID: "Xx9999", VGUUID: vgU},                       // created again elsewhere
	}
	dev := func(name, lvUUID string, open int) dmDevice {
		return dmDevice{name: name, uuid: "LVM-GTKJ70vVfo" + lvUUID, open: open}
	}
	devs := []dmDevice{
		dev("san-rv--db", db, 1), dev("san-rv--db_rimage_0", rimage, 1), dev("san-rv--db-real", db+"-real", 1),
		dev("san-rv--x--y", xy, 0), dev("san-rv--gone", "Gg0000", 2), dev("san-other", "Oo0000", 1),
		{name: "san-rv--foreign", uuid: "LVM-AAAAAAAAAAAA" + "Ff0000", open: 0}, // another VG named san, or not ours
		{name: "san--2-rv--db", uuid: "LVM-BBBB" + db, open: 0},
	}
	got := staleMappings("san", lvs, devs)
	want := map[string]dmDevice{"x-y": dev("san-rv--x--y", xy, 0), "gone": dev("san-rv--gone", "Gg0000", 2)}
	if len(got) != len(want) || got["x-y"] != want["x-y"] || got["gone"] != want["gone"] {
		t.Fatalf("staleMappings = %v, want %v (an LV's own device, its hidden sub-LVs, another VG's and other LVs are not stale)", got, want)
	}
	// A VG without LVs: every device named as one of its relocvol LVs is.
	if got := staleMappings("san", nil, devs); len(got) != 5 {
		t.Fatalf("staleMappings of a VG without LVs = %v, want every LVM device named as a san rv- LV (5; not the layer device db-real)", got)
	}
	if n := dmName("my-vg", "rv-a-b"); n != "my--vg-rv--a--b" {
		t.Fatalf("dmName = %q", n)
	}
}

// An LV of relocvol's that LVM maps through hidden sub-LVs (an operator's
// lvconvert --type raid1, a cache LV) has devices VG-rv--NAME_rimage_0 and
// the like: they are the LV's, not stale mappings of volumes that do not
// exist (which would block the host's rejoin while the LV is in use).
func TestHiddenSubLVsAreNotStale(t *testing.T) {
	row := func(name, uuid string) string {
		return `{"lv_name":"` + name + `", "vg_name":"san", "lv_attr":"rwi-aor---", "lv_size":"67108864", "lv_path":"", "lv_tags":"", "lv_uuid":"` + uuid + `", "vg_uuid":"GTKJ70-vVfo"}`
	}
	lvs := `{"report":[{"lv":[` + row("rv-db", "Dd1111") + `,` + row("[rv-db_rimage_0]", "Ri0000") + `,` + row("[rv-db_rmeta_0]", "Rm0000") + `]}]}`
	info := "san-rv--db|LVM-GTKJ70vVfoDd1111|1\nsan-rv--db_rimage_0|LVM-GTKJ70vVfoRi0000|1\nsan-rv--db_rmeta_0|LVM-GTKJ70vVfoRm0000|1\n"
	l, _, _ := newLVM(t, execx.Call{Argv: lvsArgv, Stdout: lvs}, execx.Call{Argv: dmInfoArgv, Stdout: info})
	active, err := l.Active(context.Background())
	if err != nil || !slices.Equal(active, []string{"db"}) {
		t.Fatalf("Active = %v, %v; want [db]: a raid LV's own sub-LVs are not stale mappings", active, err)
	}
}
