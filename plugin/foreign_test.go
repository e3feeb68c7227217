package plugin_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/relocvol/relocvol/backends"
)

// failCreate is a backend whose Create fails before it makes anything, as
// LVM.Create does when the lvs of its existence check fails.
type failCreate struct{ backends.Backend }

func (failCreate) Create(context.Context, backends.Volume) error {
	return errors.New("lvs: exit 5: a transient failure")
}

// Storage with no record (etcd restored from a backup older than the
// volume, or a VG taken over from a lost cluster) is never removed by a
// create of the same name that fails: only what a create made is removed.
func TestFailedCreateNeverRemovesStorageItDidNotMake(t *testing.T) {
	c := newCluster(t)
	a := c.host("node-a", "", "")
	mustCreate(t, a, "db", nil)
	mp := mustMount(t, a, "db", "c1")
	writeFile(t, mp, "data", "precious")
	mustUnmount(t, a, "db", "c1")
	ctx := context.Background()
	for _, k := range []string{"/relocvol/volumes/db", "/relocvol/claims/db"} {
		if _, err := a.cli.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	b := c.hostWith("node-b", "", "", hostOpts{backend: failCreate{c.be}})
	if err := b.drv.Create(&volume.CreateRequest{Name: "db"}); err == nil {
		t.Fatal("a create whose backend failed succeeded")
	}
	if _, err := os.Stat(filepath.Join(c.san, "db.img")); err != nil {
		t.Fatalf("the storage of db, which this create did not make, is gone: %v", err)
	}
}

// Taking over the unfinished create of a dead host removes only the
// storage that create made: storage of that name another create made is
// left as it is, and the create is refused saying so.
func TestCreateTakeoverNeverRemovesStorageItsCreateDidNotMake(t *testing.T) {
	c := newCluster(t)
	a := c.host("node-a", "", "")
	mustCreate(t, a, "db", nil)
	ctx := context.Background()
	v, _, err := a.st.GetVolume(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	// etcd restored from a backup taken while a host that is gone now was
	// creating db under another create.
	v.State, v.CreatedBy, v.CreateID = "creating", "node-gone", "deadbeefdeadbeef"
	rec, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.cli.Put(ctx, "/relocvol/volumes/db", string(rec)); err != nil {
		t.Fatal(err)
	}
	b := c.host("node-b", "", "")
	err = b.drv.Create(&volume.CreateRequest{Name: "db"})
	if err == nil || !strings.Contains(err.Error(), "was not made by that create") {
		t.Fatalf("create taking over a create whose storage is another's: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.san, "db.img")); err != nil {
		t.Fatalf("storage the taken-over create did not make is gone: %v", err)
	}
}
