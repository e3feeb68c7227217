package controller

import (
	"errors"
	"testing"
	"time"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/plugin"
)

func TestGrowView(t *testing.T) {
	at := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	grown := func(g store.Grow) store.Volume {
		g.Size, g.From, g.By, g.At = 2<<30, 1<<30, "n1", at
		return store.Volume{Size: 2 << 30, Grow: &g}
	}
	for _, tc := range []struct {
		name             string
		vol              store.Volume
		fs, host, detail string
	}{
		{name: "never grown", vol: store.Volume{Size: 1 << 30}, fs: api.FSGrown},
		{name: "grown online", vol: grown(store.Grow{Owner: "n2", Done: true, FSHost: "n2"}), fs: api.FSGrown, host: "n2"},
		{name: "grown at the next mount elsewhere", vol: grown(store.Grow{Owner: "n2", Done: true, FSHost: "n3"}), fs: api.FSGrown, host: "n3"},
		{name: "growing on the owner", vol: grown(store.Grow{Owner: "n2"}), fs: api.FSGrowing, host: "n2"},
		{name: "nobody mounts it", vol: grown(store.Grow{}), fs: api.FSNextMount, detail: "no host had the volume mounted"},
		{name: "the owner cannot grow it mounted", vol: grown(store.Grow{Owner: "n2", FSHost: "n2", Waiting: "host n2: no CAP_SYS_RESOURCE"}), fs: api.FSNextMount, host: "n2", detail: "host n2: no CAP_SYS_RESOURCE"},
		{name: "failed", vol: grown(store.Grow{Owner: "n2", FSHost: "n2", Error: "host n2: resize2fs failed"}), fs: api.FSFailed, host: "n2", detail: "host n2: resize2fs failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := growView("db", tc.vol)
			if g.Filesystem != tc.fs || g.Host != tc.host || g.Detail != tc.detail || g.Volume != "db" || g.SizeHuman != "2G" && tc.vol.Grow != nil {
				t.Fatalf("growView = %+v; want filesystem %q, host %q, detail %q", g, tc.fs, tc.host, tc.detail)
			}
			if tc.vol.Grow == nil && (g.From != g.Size || g.By != "") {
				t.Fatalf("never grown: %+v", g)
			}
			if tc.vol.Grow != nil && (g.FromHuman != "1G" || g.By != "n1" || !g.At.Equal(at)) {
				t.Fatalf("grown: %+v", g)
			}
		})
	}
}

func TestAPIErrorOfAPluginRefusal(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{&plugin.Error{Kind: plugin.ErrInvalid, Msg: "bad"}, api.ErrInvalid},
		{&plugin.Error{Kind: plugin.ErrNotFound, Msg: "none"}, api.ErrNotFound},
		{&plugin.Error{Kind: plugin.ErrBusy, Msg: "busy"}, api.ErrConflict},
		{&plugin.Error{Kind: plugin.ErrNotAlive, Msg: "cut off"}, api.ErrUnavailable},
		{&plugin.Error{Kind: plugin.ErrFence, Msg: "?"}, api.ErrInternal},
	} {
		got := apiError(tc.err)
		if !errors.Is(got, tc.want) || got.Error() != tc.err.Error() {
			t.Errorf("apiError(%v) = %v, want kind %v with the same message", tc.err, got, tc.want)
		}
	}
	plain := errors.New("etcd down")
	if got := apiError(plain); got != plain {
		t.Errorf("apiError of a plain error = %v, want it unchanged", got)
	}
}
