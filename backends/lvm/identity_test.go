package lvm

import (
	"bytes"
	"context"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/relocvol/relocvol/internal/execx"
)

var vgsTagsArgv = []string{"vgs", "--config", "devices/hints=none", "--reportformat", "json", "-o", "vg_tags", "san"}

func TestClusterMark(t *testing.T) {
	l, _, _ := newLVM(t,
		execx.Call{Argv: vgsTagsArgv, Stdout: fixture(t, "handwritten-vgs-tags.json")},
		execx.Call{Argv: vgsTagsArgv, Stdout: `{"report":[{"vg":[{"vg_tags":""}]}]}`},
	)
	if id, err := l.ClusterMark(context.Background()); err != nil || id != "4f0c2a1e-8d7b-4c55-9a0e-2f6f1e3b9c10" {
		t.Fatalf("ClusterMark = %q, %v", id, err)
	}
	if id, err := l.ClusterMark(context.Background()); err != nil || id != "" {
		t.Fatalf("untagged VG: %q, %v", id, err)
	}
}

func TestMarkCluster(t *testing.T) {
	t.Run("first mark", func(t *testing.T) {
		l, _, lk := newLVM(t,
			execx.Call{Argv: []string{"vgchange", "--config", "devices/hints=none", "--addtag", "relocvol-cluster-c1", "san"}},
			execx.Call{Argv: vgsTagsArgv, Stdout: `{"report":[{"vg":[{"vg_tags":"relocvol-cluster-c1"}]}]}`},
		)
		if id, err := l.MarkCluster(context.Background(), "c1"); err != nil || id != "c1" {
			t.Fatalf("MarkCluster = %q, %v", id, err)
		}
		if strings.Join(lk.events, ",") != "lock vg/san,unlock vg/san" {
			t.Fatalf("tagging is a metadata change: lock events %v", lk.events)
		}
	})
	t.Run("another cluster marked it meanwhile", func(t *testing.T) {
		l, _, _ := newLVM(t,
			execx.Call{Argv: []string{"vgchange", "--config", "devices/hints=none", "--addtag", "relocvol-cluster-c2", "san"}},
			execx.Call{Argv: vgsTagsArgv, Stdout: `{"report":[{"vg":[{"vg_tags":"relocvol-cluster-c1,relocvol-cluster-c2"}]}]}`},
			execx.Call{Argv: []string{"vgchange", "--config", "devices/hints=none", "--deltag", "relocvol-cluster-c2", "san"}},
		)
		if id, err := l.MarkCluster(context.Background(), "c2"); err != nil || id != "c1" {
			t.Fatalf("MarkCluster = %q, %v; want the other cluster's c1 and this mark taken back", id, err)
		}
	})
	if got := (&LVM{vg: "san"}).ClearHint("c1"); got != "vgchange --deltag relocvol-cluster-c1 san" {
		t.Fatalf("hint %q", got)
	}
}

// The app key is a VG tag, added under the VG lock only where there is
// none; of two (two clusters' first hosts, a lock lost), every host reads
// the first.
func TestAppKey(t *testing.T) {
	key := strings.Repeat("ab", 32)
	addArgv := []string{"vgchange", "--config", "devices/hints=none", "--addtag", "relocvol-appkey-" + key, "san"}
	t.Run("made", func(t *testing.T) {
		l, _, lk := newLVM(t,
			execx.Call{Argv: vgsTagsArgv, Stdout: `{"report":[{"vg":[{"vg_tags":"relocvol-cluster-c1"}]}]}`},
			execx.Call{Argv: addArgv},
			execx.Call{Argv: vgsTagsArgv, Stdout: `{"report":[{"vg":[{"vg_tags":"relocvol-appkey-` + key + `,relocvol-cluster-c1"}]}]}`},
		)
		k, err := l.MakeAppKey(context.Background(), bytes.Repeat([]byte{0xab}, 32))
		if err != nil || hex.EncodeToString(k) != key {
			t.Fatalf("MakeAppKey = %x, %v", k, err)
		}
		if strings.Join(lk.events, ",") != "lock vg/san,unlock vg/san" {
			t.Fatalf("the read and the tag under the VG lock: lock events %v", lk.events)
		}
	})
	t.Run("another host's is there", func(t *testing.T) {
		l, _, _ := newLVM(t,
			execx.Call{Argv: vgsTagsArgv, Stdout: `{"report":[{"vg":[{"vg_tags":"relocvol-appkey-` + key + `"}]}]}`},
		)
		if k, err := l.MakeAppKey(context.Background(), bytes.Repeat([]byte{0xcd}, 32)); err != nil || hex.EncodeToString(k) != key {
			t.Fatalf("MakeAppKey = %x, %v; want the one there", k, err)
		}
	})
	t.Run("two there, the first read", func(t *testing.T) {
		l, _, _ := newLVM(t,
			execx.Call{Argv: vgsTagsArgv, Stdout: `{"report":[{"vg":[{"vg_tags":"relocvol-appkey-` + strings.Repeat("cd", 32) + `,relocvol-appkey-` + key + `,relocvol-appkey-zz"}]}]}`},
			execx.Call{Argv: vgsTagsArgv, Stdout: `{"report":[{"vg":[{"vg_tags":""}]}]}`},
		)
		if k, err := l.AppKey(context.Background()); err != nil || hex.EncodeToString(k) != key {
			t.Fatalf("AppKey = %x, %v", k, err)
		}
		if k, err := l.AppKey(context.Background()); err != nil || k != nil {
			t.Fatalf("AppKey of an untagged VG = %x, %v", k, err)
		}
	})
}
