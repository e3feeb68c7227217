package fsutil

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/relocvol/relocvol/internal/execx"
)

func TestHasCapability(t *testing.T) {
	const status = "Name:\trelocvol\nCapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\nCapEff:\t%s\nCapBnd:\t000001ffffffffff\n"
	for _, tc := range []struct {
		name, eff string
		bit       uint
		want      bool
		wantErr   string
	}{
		{name: "sandbox without CAP_SYS_RESOURCE", eff: "000001fffeffffff", bit: capSysResource, want: false},
		{name: "root with every capability", eff: "000001ffffffffff", bit: capSysResource, want: true},
		{name: "the plugin's set", eff: "0000000001220000", bit: 21, want: true}, // CAP_SYS_ADMIN
		{name: "the plugin's set lacks it", eff: "0000000000220000", bit: capSysResource, want: false},
		{name: "garbage", eff: "xyz", bit: capSysResource, wantErr: `read the effective capabilities "xyz"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := hasCapability([]byte(strings.Replace(status, "%s", tc.eff, 1)), tc.bit)
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
			case err != nil || got != tc.want:
				t.Fatalf("hasCapability = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := hasCapability([]byte("Name:\tx\n"), capSysResource); err == nil {
		t.Fatal("a status without CapEff: no error")
	}
}

func TestGrowOffline(t *testing.T) {
	corrected := &execx.ExecError{Cmd: []string{"e2fsck"}, ExitCode: 1, Stderr: "/dev/loop3: 11/16384 files"}
	broken := &execx.ExecError{Cmd: []string{"e2fsck"}, ExitCode: 4, Stderr: "/dev/loop3: UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY."}
	for _, tc := range []struct {
		name    string
		script  []execx.Call
		wantErr string
	}{
		{name: "clean", script: []execx.Call{
			{Argv: []string{"e2fsck", "-f", "-p", "/dev/loop3"}},
			{Argv: []string{"resize2fs", "/dev/loop3"}},
		}},
		{name: "errors corrected", script: []execx.Call{
			{Argv: []string{"e2fsck", "-f", "-p", "/dev/loop3"}, Err: corrected},
			{Argv: []string{"resize2fs", "/dev/loop3"}},
		}},
		{name: "errors left: no resize", script: []execx.Call{
			{Argv: []string{"e2fsck", "-f", "-p", "/dev/loop3"}, Err: broken},
		}, wantErr: "check the ext4 filesystem of /dev/loop3 before growing it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &execx.Fake{Script: tc.script}
			err := FS{Run: fake}.GrowOffline(context.Background(), "ext4", "/dev/loop3")
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
			if left := fake.Left(); len(left) != 0 {
				t.Fatalf("not run: %v", left)
			}
		})
	}
	if err := (FS{Run: &execx.Fake{}}).GrowOffline(context.Background(), "xfs", "/dev/loop3"); !errors.Is(err, ErrUnsupportedFS) {
		t.Fatalf("xfs offline: %v", err)
	}
}
