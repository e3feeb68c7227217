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

var dmInfoArgv = []string{"dmsetup", "info", "-c", "--noheadings", "--separator", "|", "-o", "name,open"}

// gone is the VG after another host removed rv-x-y (and rv-db) while
// their device-mapper devices were still active here.
const gone = `{"report":[{"lv":[{"lv_name":"rv-logs", "vg_name":"san", "lv_attr":"-wi-------", "lv_size":"1073741824", "lv_path":"/dev/san/rv-logs", "lv_tags":"relocvol"}]}]}`

// recreated is the VG after another host removed rv-x-y and created an LV
// of that name again: LVM sees it inactive here (its device here is the
// old LV's).
const recreated = `{"report":[{"lv":[{"lv_name":"rv-x-y", "vg_name":"san", "lv_attr":"-wi-------", "lv_size":"16777216", "lv_path":"/dev/san/rv-x-y", "lv_tags":"relocvol"}]}]}`

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
	for _, tc := range []struct {
		name, out string
		want      []dmDevice
		wantErr   string
	}{
		{name: "none (the lab's dmsetup)", out: string(fixture(t, "lab-dmsetup-none.txt"))},
		{name: "devices", out: string(fixture(t, "handwritten-dmsetup-info.txt")), want: []dmDevice{{"san-rv--x--y", 0}, {"san-rv--db", 1}, {"san-other", 1}, {"mpatha", 2}}},
		{name: "not a count", out: "san-rv--db|x\n", wantErr: `open count "x" of san-rv--db`},
		{name: "not name|open", out: "san-rv--db 1\n", wantErr: `"san-rv--db 1" is not NAME|OPEN`},
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
	lvs := []lv{{Name: "rv-db", active: true}, {Name: "rv-x-y"}, {Name: "rv-logs"}}
	devs := []dmDevice{{"san-rv--db", 1}, {"san-rv--x--y", 0}, {"san-other", 1}, {"san--2-rv--db", 0}, {"san-rv--gone", 2}}
	got := staleMappings("san", lvs, devs)
	want := map[string]dmDevice{"x-y": {"san-rv--x--y", 0}, "gone": {"san-rv--gone", 2}}
	if len(got) != len(want) || got["x-y"] != want["x-y"] || got["gone"] != want["gone"] {
		t.Fatalf("staleMappings = %v, want %v (an active LV's own device, another VG's and other LVs are not stale)", got, want)
	}
	if n := dmName("my-vg", "rv-a-b"); n != "my--vg-rv--a--b" {
		t.Fatalf("dmName = %q", n)
	}
}
