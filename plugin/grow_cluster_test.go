package plugin_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/relocvol/relocvol/internal/fsutil"
	"github.com/relocvol/relocvol/internal/testenv"
	"github.com/relocvol/relocvol/plugin"
)

// A volume in use on host a grows when host b is asked: b extends the
// storage, a's filesystem follows online (its volume cache tells it), the
// data stays, and b's answer says so. A smaller size is refused and
// changes nothing; the same size again is a success that changes nothing.
func TestGrowWhileInUseOnAnotherHost(t *testing.T) {
	c := newCluster(t)
	a, b := c.host("a", "", ""), c.host("b", "", "")
	ctx := context.Background()
	mustCreate(t, a, "gv", map[string]string{"size": "320M", "fs": "xfs"})
	mp := mustMount(t, a, "gv", "c1")
	writeFile(t, mp, "kept", "before the grow")
	before := testenv.FSSize(t, mp)

	vol, err := b.drv.Grow(ctx, "gv", "640M", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if g := vol.Grow; vol.Size != 640<<20 || g == nil || !g.Done || g.FSHost != "a" || g.By != "b" || g.Owner != "a" || g.From != 320<<20 {
		t.Fatalf("record after the grow: size %d, grow %+v; want 640M, grown by b, filesystem done on a", vol.Size, vol.Grow)
	}
	if after := testenv.FSSize(t, mp); after < before+300<<20 {
		t.Fatalf("the filesystem a mounts is %d bytes after the grow, %d before: want 320M more", after, before)
	}
	if got := readFile(t, mp, "kept"); got != "before the grow" {
		t.Fatalf("data after the grow: %q", got)
	}
	// docker volume inspect, on either host.
	for _, h := range []*host{a, b} {
		st := inspect(t, h, "gv")
		if st["size"] != "640M" || !strings.Contains(st["grown"].(string), "from 320M to 640M by host b") || !strings.Contains(st["grown"].(string), "filesystem grown on host a") {
			t.Fatalf("inspect on %s: %v", h.name, st)
		}
	}

	_, err = a.drv.Grow(ctx, "gv", "320M", time.Second)
	wantErr(t, err, plugin.ErrInvalid, `grow volume "gv" to 320M: it is 640M already`, "create a smaller volume and copy the data")
	vol, err = a.drv.Grow(ctx, "gv", "640M", time.Second)
	if err != nil || vol.Size != 640<<20 || !vol.Grow.Done {
		t.Fatalf("the same size again: %+v %v", vol, err)
	}
	_, err = a.drv.Grow(ctx, "nosuch", "1G", time.Second)
	wantErr(t, err, plugin.ErrNotFound, `volume "nosuch" not found`)
	mustUnmount(t, a, "gv", "c1")
}

// A volume nobody mounts grows at once on storage, and its filesystem at
// its next Mount, on whichever host.
func TestGrowOfAnUnusedVolumeAtItsNextMount(t *testing.T) {
	c := newCluster(t)
	a, b := c.host("a", "", ""), c.host("b", "", "")
	ctx := context.Background()
	mustCreate(t, a, "uv", map[string]string{"size": "64M"})
	mp := mustMount(t, a, "uv", "c1")
	writeFile(t, mp, "kept", "data")
	before := testenv.FSSize(t, mp)
	mustUnmount(t, a, "uv", "c1")

	vol, err := a.drv.Grow(ctx, "uv", "128M", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !vol.Grow.Pending() || vol.Grow.Owner != "" || vol.Size != 128<<20 {
		t.Fatalf("record: size %d, grow %+v; want 128M, the filesystem pending with no owner", vol.Size, vol.Grow)
	}
	mp = mustMount(t, b, "uv", "c2")
	if after := testenv.FSSize(t, mp); after < before+56<<20 {
		t.Fatalf("the filesystem after the next mount is %d bytes, %d before: want 64M more", after, before)
	}
	if got := readFile(t, mp, "kept"); got != "data" {
		t.Fatalf("data: %q", got)
	}
	got, _, err := b.st.GetVolume(ctx, "uv")
	if err != nil || !got.Grow.Done || got.Grow.FSHost != "b" {
		t.Fatalf("record after the mount: %+v %v; want the filesystem grown by b", got.Grow, err)
	}
	mustUnmount(t, b, "uv", "c2")
}

// An ext4 volume grows online only where the plugin has CAP_SYS_RESOURCE;
// where it has not, the owner says so in the record and the filesystem
// grows, offline, at the next mount. Where it has (a VM's kernel, as
// root), it grows online like any other.
func TestGrowExt4(t *testing.T) {
	c := newCluster(t)
	a, b := c.host("a", "", ""), c.host("b", "", "")
	ctx := context.Background()
	mustCreate(t, a, "ev", map[string]string{"size": "64M", "fs": "ext4"})
	mp := mustMount(t, a, "ev", "c1")
	writeFile(t, mp, "kept", "ext4 data")
	before := testenv.FSSize(t, mp)
	vol, err := b.drv.Grow(ctx, "ev", "128M", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if online, why := fsutil.GrowsOnline("ext4"); online {
		if !vol.Grow.Done || testenv.FSSize(t, mp) < before+56<<20 {
			t.Fatalf("ext4 with CAP_SYS_RESOURCE: grow %+v, filesystem %d bytes", vol.Grow, testenv.FSSize(t, mp))
		}
		mustUnmount(t, a, "ev", "c1")
		return
	} else if !vol.Grow.Pending() || !strings.Contains(vol.Grow.Waiting, "host a: ") || !strings.Contains(vol.Grow.Waiting, "CAP_SYS_RESOURCE") {
		t.Fatalf("ext4 without CAP_SYS_RESOURCE (%s): grow %+v; want it waiting for the next mount, saying why", why, vol.Grow)
	}
	if now := testenv.FSSize(t, mp); now != before {
		t.Fatalf("filesystem %d bytes, %d before: nothing should have changed yet", now, before)
	}
	if st := inspect(t, b, "ev"); !strings.Contains(st["grown"].(string), "filesystem grows at its next mount: host a:") {
		t.Fatalf("inspect: %v", st)
	}
	mustUnmount(t, a, "ev", "c1")
	mp = mustMount(t, b, "ev", "c2")
	if after := testenv.FSSize(t, mp); after < before+56<<20 {
		t.Fatalf("after the next mount: filesystem %d bytes, %d before", after, before)
	}
	if got := readFile(t, mp, "kept"); got != "ext4 data" {
		t.Fatalf("data: %q", got)
	}
	got, _, err := b.st.GetVolume(ctx, "ev")
	if err != nil || !got.Grow.Done || got.Grow.FSHost != "b" || got.Grow.Waiting != "" {
		t.Fatalf("record after the mount: %+v %v", got.Grow, err)
	}
	mustUnmount(t, b, "ev", "c2")
}

func inspect(t *testing.T, h *host, name string) map[string]interface{} {
	t.Helper()
	r, err := h.drv.Get(&volume.GetRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return r.Volume.Status
}
