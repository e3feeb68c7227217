package plugin_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/relocvol/relocvol/internal/store"
)

// A Mount refused while the holder was dead but in maintenance must not
// count that sighting towards the grace of a later death: the holder came
// back (registered again) since, and when it dies for real, a takeover
// waits the whole grace from that death.
func TestGraceCountsFromTheHoldersLastDeath(t *testing.T) {
	c := newCluster(t)
	a := c.host("node-a", "", "")
	grace := 2 * time.Second
	b := c.hostWith("node-b", "", "", hostOpts{grace: grace})
	mustCreate(t, a, "db", nil)
	mustMount(t, a, "db", "a1")
	ctx := context.Background()
	// a's plugin stops for maintenance with db mounted (its lease runs
	// out; its containers would keep running).
	if _, err := a.st.SetMaintenance(ctx, "node-a", time.Minute, store.MaintenanceByPluginStop, ""); err != nil {
		t.Fatal(err)
	}
	a.kill(t)
	if _, err := b.drv.Mount(&volume.MountRequest{Name: "db", ID: "b1"}); err == nil {
		t.Fatal("mounted a volume whose holder is in maintenance")
	}
	// a comes back (a new process registers under a new lease), the
	// maintenance ends, and a while later a dies for real.
	grant, err := a.cli.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.st.RegisterHost(ctx, store.Host{Name: "node-a", Lease: int64(grant.ID)}, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := a.st.EndMaintenance(ctx, "node-a", ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(grace + 500*time.Millisecond)
	if _, err := a.cli.Revoke(ctx, clientv3.LeaseID(grant.ID)); err != nil {
		t.Fatal(err)
	}
	died := time.Now()
	mustMount(t, b, "db", "b2")
	if took := time.Since(died); took < grace {
		t.Fatalf("took db over %s after its holder died: the grace (%s) was counted from a sighting before the holder came back", took.Round(time.Millisecond), grace)
	}
	// The dead host's mount is still there on this shared kernel.
	if err := c.fs.Unmount(ctx, filepath.Join(a.root, "db")); err != nil {
		t.Fatal(err)
	}
	mustUnmount(t, b, "db", "b2")
}
