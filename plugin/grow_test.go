package plugin

import (
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/store"
)

func TestGrowStatus(t *testing.T) {
	at := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	base := store.Grow{Size: 2 << 30, From: 1 << 30, By: "n1", At: at}
	with := func(f func(*store.Grow)) *store.Grow {
		g := base
		f(&g)
		return &g
	}
	const from = "from 1G to 2G by host n1 at 2026-12-06T05:00:00Z; "
	for _, tc := range []struct {
		name string
		g    *store.Grow
		want string
	}{
		{name: "done", g: with(func(g *store.Grow) { g.Done, g.FSHost, g.Owner = true, "n2", "n2" }), want: from + "filesystem grown on host n2"},
		{name: "being grown", g: with(func(g *store.Grow) { g.Owner = "n2" }), want: from + "filesystem being grown on host n2"},
		{name: "nobody mounts it", g: &base, want: from + "filesystem grows at its next mount (no host had it mounted)"},
		{name: "failed", g: with(func(g *store.Grow) { g.Owner, g.Error = "n2", "host n2: resize2fs: exit 1" }),
			want: from + "filesystem NOT grown: host n2: resize2fs: exit 1 (ask for the grow again to retry)"},
		{name: "waiting for a mount", g: with(func(g *store.Grow) { g.Owner, g.Waiting = "n2", "host n2: no CAP_SYS_RESOURCE" }),
			want: from + "filesystem grows at its next mount: host n2: no CAP_SYS_RESOURCE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := growStatus(tc.g); got != tc.want {
				t.Fatalf("growStatus =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}
