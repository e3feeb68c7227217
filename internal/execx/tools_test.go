package execx

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

var (
	lvs       = Tool{Name: "lvs", Package: "lvm2"}
	lvcreate  = Tool{Name: "lvcreate", Package: "lvm2"}
	sgPersist = Tool{Name: "sg_persist", Package: "sg3-utils"}
	mkfsXFS   = Tool{Name: "mkfs.xfs", Package: "xfsprogs"}
)

// lookIn is a lookPath that finds only the named commands.
func lookIn(found ...string) func(string) (string, error) {
	return func(name string) (string, error) {
		if slices.Contains(found, name) {
			return "/usr/sbin/" + name, nil
		}
		return "", errors.New("executable file not found in $PATH")
	}
}

func TestCheckTools(t *testing.T) {
	for _, tc := range []struct {
		name  string
		found []string
		lists [][]Tool
		want  []string // substrings of the error; none: no error
		not   []string
	}{
		{name: "all there", found: []string{"lvs", "lvcreate", "sg_persist"}, lists: [][]Tool{{lvs, lvcreate}, {sgPersist}}},
		{name: "nothing to check", lists: nil},
		{
			name: "one missing", found: []string{"lvs", "lvcreate"}, lists: [][]Tool{{lvs, lvcreate}, {sgPersist}},
			want: []string{"not on PATH: sg_persist (package sg3-utils).", "scripts/build-plugin.sh", "apt-get install sg3-utils"},
			not:  []string{"lvs", "lvm2"},
		},
		{
			name: "several from several lists: each named, packages once", found: []string{"lvs"},
			lists: [][]Tool{{lvs, lvcreate}, {sgPersist}, {mkfsXFS}},
			want: []string{"lvcreate (package lvm2), sg_persist (package sg3-utils), mkfs.xfs (package xfsprogs)",
				"apt-get install lvm2 sg3-utils xfsprogs"},
		},
		{
			name: "listed twice, named once", lists: [][]Tool{{lvs, lvcreate}, {lvs}},
			want: []string{"not on PATH: lvs (package lvm2), lvcreate (package lvm2).", "apt-get install lvm2"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckTools(lookIn(tc.found...), tc.lists...)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want one saying %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to say %q", err, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(err.Error(), n) {
					t.Errorf("err = %v\nnames %q, which is there", err, n)
				}
			}
		})
	}
}

func TestUndeclared(t *testing.T) {
	for _, tc := range []struct {
		name string
		ran  []string
		want []string
	}{
		{name: "all declared", ran: []string{"lvs", "sg_persist", "lvs"}},
		{name: "none ran", ran: nil},
		{name: "undeclared, sorted, once", ran: []string{"vgs", "lvs", "blkid", "vgs"}, want: []string{"blkid", "vgs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := undeclared(tc.ran, []Tool{lvs, lvcreate}, []Tool{sgPersist})
			if !slices.Equal(got, tc.want) {
				t.Fatalf("undeclared = %v, want %v", got, tc.want)
			}
		})
	}
}
