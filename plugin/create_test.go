package plugin_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/backends"
	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
	"github.com/relocvol/relocvol/plugin"
)

// gatedBackend holds its host's Create after the storage is made, before
// Create returns: the moment a creator may lose its lease.
type gatedBackend struct {
	backends.Backend
	gate *gate
}

func (g gatedBackend) Create(ctx context.Context, v backends.Volume) error {
	err := g.Backend.Create(ctx, v)
	g.gate.hold()
	return err
}

// The creator of a volume loses its lease half way through Create; a peer
// takes the Create over, and the volume is written to. When the first
// creator resumes, it must not remove (or otherwise touch) the storage the
// peer made: it lost the record, so the storage is not its own any more.
func TestCreateTakeoverNeverDestroysPeerStorage(t *testing.T) {
	c := newCluster(t)
	g := newGate()
	a := c.hostWith("node-a", "", "", hostOpts{backend: gatedBackend{Backend: c.be, gate: g}})
	b := c.host("node-b", "", "")
	created := make(chan error, 1)
	go func() {
		created <- a.drv.Create(&volume.CreateRequest{Name: "db", Options: map[string]string{"size": "64M"}})
	}()
	select {
	case <-g.reached:
	case <-time.After(20 * time.Second):
		t.Fatal("node-a's create never reached its backend")
	}
	defer g.release()
	a.kill(t)

	// node-b takes the unfinished create over and uses the volume.
	mustCreate(t, b, "db", map[string]string{"size": "64M"})
	mp := mustMount(t, b, "db", "b1")
	writeFile(t, mp, "journal", "written by node-b")
	mustUnmount(t, b, "db", "b1")

	// node-a resumes.
	g.release()
	select {
	case err := <-created:
		t.Logf("node-a's create returned: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("node-a's create never returned")
	}
	vol, _, err := b.st.GetVolume(context.Background(), "db")
	if err != nil || vol.State != "ready" || vol.CreatedBy != "node-b" {
		t.Fatalf("volume record after node-a resumed: %+v %v", vol, err)
	}
	mp = mustMount(t, b, "db", "b2")
	if got := readFile(t, mp, "journal"); got != "written by node-b" {
		t.Fatalf("node-b's data after node-a resumed: %q", got)
	}
	mustUnmount(t, b, "db", "b2")
	if err := b.drv.Remove(&volume.RemoveRequest{Name: "db"}); err != nil {
		t.Fatal(err)
	}
}

// Two hosts, each on its own etcd (an embedded one each), on one SAN
// folder form two clusters, and both would grant the same volume: the
// second refuses the folder, saying how to fix it.
func TestSecondClusterRefusesTheStorage(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	log := logrus.New()
	log.SetOutput(testenv.LogWriter{T: t})
	st1 := store.New(testenv.EtcdClient(t, c.endpoints), "/relocvol")
	one, err := st1.Cluster(ctx, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := st1.Cluster(ctx, "node-b"); again.ID != one.ID {
		t.Fatalf("a cluster's identity changed: %s then %s", one.ID, again.ID)
	}
	if err := plugin.CheckCluster(ctx, c.be, one, "etcd-1"); err != nil {
		t.Fatalf("first cluster on an unmarked folder: %v", err)
	}
	// The first host to join marks the folder.
	drv := plugin.New(st1, c.be, c.fs, fencing.None{Log: log}, alwaysAlive{}, plugin.Options{Host: "node-a", MountRoot: t.TempDir(), Cluster: one, Etcd: "etcd-1", Log: log})
	if err := drv.Join(ctx); err != nil {
		t.Fatal(err)
	}
	if err := plugin.CheckCluster(ctx, c.be, one, "etcd-1"); err != nil {
		t.Fatalf("the same cluster again: %v", err)
	}
	for _, other := range []*store.Store{
		store.New(testenv.EtcdClient(t, testenv.Etcd(t)), "/relocvol"),  // another etcd
		store.New(testenv.EtcdClient(t, c.endpoints), "/other-cluster"), // another prefix
	} {
		two, err := other.Cluster(ctx, "node-x")
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"the SAN folder " + c.san + " belongs to relocvol cluster " + one.ID,
			"this host's etcd (etcd-2) is cluster " + two.ID, "point RELOCVOL_ETCD_ENDPOINTS (and RELOCVOL_ETCD_PREFIX) at the etcd of the cluster that uses this storage",
			"rm " + filepath.Join(c.san, ".relocvol-cluster")}
		wantErr(t, plugin.CheckCluster(ctx, c.be, two, "etcd-2"), nil, want...)
		// Nor does it get in by joining.
		drv := plugin.New(other, c.be, c.fs, fencing.None{Log: log}, alwaysAlive{}, plugin.Options{Host: "node-x", MountRoot: t.TempDir(), Cluster: two, Etcd: "etcd-2", Log: log})
		wantErr(t, drv.Join(ctx), nil, want...)
	}
}
