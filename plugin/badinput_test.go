package plugin_test

import (
	"context"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/relocvol/relocvol/internal/fsutil"
)

// TestBadInput sends malformed requests through every endpoint. Each must
// fail with an error that names what is wrong and says what to do, and
// must leave no residue: no record, no claim, no image, no loop device, no
// mount, and the good volume's count unchanged.
func TestBadInput(t *testing.T) {
	c := newCluster(t)
	h := c.host("node-a", "", "")
	mustCreate(t, h, "good", nil)
	mustMount(t, h, "good", "m1")
	long := strings.Repeat("x", 97)

	type req func() error
	create := func(name string, opts map[string]string) req {
		return func() error { return h.drv.Create(&volume.CreateRequest{Name: name, Options: opts}) }
	}
	mount := func(name, id string) req {
		return func() error { _, err := h.drv.Mount(&volume.MountRequest{Name: name, ID: id}); return err }
	}
	unmount := func(name, id string) req {
		return func() error { return h.drv.Unmount(&volume.UnmountRequest{Name: name, ID: id}) }
	}
	for _, tc := range []struct {
		name string
		do   req
		want []string // every string must appear in the error
	}{
		{"create: empty name", create("", nil), []string{"volume name is empty", "give a name"}},
		{"create: one-letter name", create("a", nil), []string{`invalid volume name "a"`, "use 2 to 96 characters"}},
		{"create: dot dot", create("..", nil), []string{`invalid volume name ".."`}},
		{"create: path traversal", create("../../etc", nil), []string{`invalid volume name "../../etc"`}},
		{"create: slash", create("db/x", nil), []string{`invalid volume name "db/x"`}},
		{"create: leading dash", create("-db", nil), []string{`"-db"`, "starting with a letter or digit"}},
		{"create: space", create("my db", nil), []string{`"my db"`}},
		{"create: over-long name", create(long, nil), []string{"97 characters long: use at most 96"}},
		{"create: zero size", create("v1", map[string]string{"size": "0"}), []string{`volume "v1"`, `invalid size "0"`, "greater than zero"}},
		{"create: negative size", create("v1", map[string]string{"size": "-5G"}), []string{`invalid size "-5G"`, "with K, M, G or T"}},
		{"create: unknown unit", create("v1", map[string]string{"size": "12QB"}), []string{`invalid size "12QB": use a positive number with K, M, G or T`}},
		{"create: empty size", create("v1", map[string]string{"size": ""}), []string{`invalid size ""`}},
		{"create: words for size", create("v1", map[string]string{"size": "huge"}), []string{`invalid size "huge"`}},
		{"create: absurd size", create("v1", map[string]string{"size": "900T"}), []string{"larger than the 64T limit"}},
		{"create: unknown fs", create("v1", map[string]string{"fs": "btrfs"}), []string{`unsupported fs "btrfs": use one of ext4, xfs`}},
		{"create: xfs too small", create("v1", map[string]string{"fs": "xfs", "size": "64M"}), []string{"too small for xfs: use at least 300M"}},
		{"create: unknown option", create("v1", map[string]string{"sise": "1G"}), []string{`unknown option "sise": valid options are fs, size`}},
		{"create: option case", create("v1", map[string]string{"Size": "1G"}), []string{`unknown option "Size"`}},
		{"create: existing with other size", create("good", map[string]string{"size": "2G"}), []string{`volume "good" already exists with size=64M`, "remove it first"}},
		{"mount: unknown volume", mount("nosuch", "m9"), []string{`volume "nosuch" not found`, "docker volume create -d relocvol nosuch"}},
		{"mount: invalid name", mount("../x", "m9"), []string{`invalid volume name "../x"`}},
		{"unmount: no mount ID", unmount("good", ""), []string{`unmount of volume "good" has no mount ID`}},
		{"mount: no mount ID", mount("good", ""), []string{`mount of volume "good" has no mount ID`}},
		{"unmount: invalid name", unmount("a/b", "m1"), []string{`invalid volume name "a/b"`}},
		{"remove: unknown volume", func() error { return h.drv.Remove(&volume.RemoveRequest{Name: "nosuch"}) }, []string{`volume "nosuch" not found`}},
		{"remove: in use", func() error { return h.drv.Remove(&volume.RemoveRequest{Name: "good"}) }, []string{`volume "good" is in use on host node-a`, "stop the containers"}},
		{"get: unknown volume", func() error { _, err := h.drv.Get(&volume.GetRequest{Name: "nosuch"}); return err }, []string{`volume "nosuch" not found`}},
		{"path: unknown volume", func() error { _, err := h.drv.Path(&volume.PathRequest{Name: "nosuch"}); return err }, []string{`volume "nosuch" not found`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if err == nil {
				t.Fatalf("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			assertOnlyGood(t, c, h)
		})
	}
	mustUnmount(t, h, "good", "m1")
	if err := h.drv.Remove(&volume.RemoveRequest{Name: "good"}); err != nil {
		t.Fatal(err)
	}
}

// assertOnlyGood checks that the cluster holds exactly the volume "good",
// mounted once on h, and nothing else.
func assertOnlyGood(t *testing.T, c *cluster, h *host) {
	t.Helper()
	ctx := context.Background()
	vols, err := h.st.ListVolumes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(vols) != 1 || vols["good"].Value.State != "ready" {
		t.Errorf("volume records: %v, want only good (ready)", vols)
	}
	claims, _ := h.st.ListClaims(ctx)
	if len(claims) != 1 || claims["good"].Value.Host != "node-a" || len(claims["good"].Value.Mounts) != 1 {
		t.Errorf("claims: %+v, want only good held by node-a with 1 mount", claims)
	}
	entries, _ := os.ReadDir(c.san)
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	sort.Strings(files)
	good := "good.img,good.img." + vols["good"].Value.CreateID // the link and its create's image
	if strings.Join(files, ",") != good {
		t.Errorf("SAN folder holds %v, want only %s", files, good)
	}
	mounts, _ := fsutil.Mounts(h.root)
	if len(mounts) != 1 {
		t.Errorf("mounts under the mount root: %v, want only good", mounts)
	}
	if n := h.drv.MountCount("good"); n != 1 {
		t.Errorf("good's count is %d, want 1", n)
	}
}
