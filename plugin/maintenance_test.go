package plugin_test

import (
	"context"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/relocvol/relocvol/plugin"
)

// A host in maintenance may have its plugin stopped while its containers
// keep writing: a Mount elsewhere is refused, saying until when, and
// takes over only once the maintenance has ended.
func TestNoTakeoverDuringMaintenance(t *testing.T) {
	c := newCluster(t)
	a, b := c.host("node-a", "", ""), c.host("node-b", "", "")
	mustCreate(t, a, "db", nil)
	mustMount(t, a, "db", "c1")
	ctx := context.Background()
	if _, err := b.st.SetMaintenance(ctx, "node-a", time.Minute, "operator", "plugin upgrade"); err != nil {
		t.Fatal(err)
	}
	a.kill(t) // the plugin stops: its lease goes
	_, err := b.drv.Mount(&volume.MountRequest{Name: "db", ID: "b1"})
	wantErr(t, err, plugin.ErrInUse, `volume "db" is held by host node-a, which is in maintenance until`, "(set by operator: plugin upgrade)",
		"relocvol maintenance off node-a")
	if cl := claimOf(t, b, "db"); cl.Host != "node-a" {
		t.Fatalf("claim moved during maintenance: %+v", cl)
	}
	if _, rev, _ := b.st.GetFence(ctx, "node-a"); rev != 0 {
		t.Fatal("a host in maintenance was marked for fencing")
	}
	if _, err := b.st.EndMaintenance(ctx, "node-a", ""); err != nil {
		t.Fatal(err)
	}
	mustMount(t, b, "db", "b1")
	if cl := claimOf(t, b, "db"); cl.Host != "node-b" || cl.TakenFrom != "node-a" {
		t.Fatalf("claim after the maintenance ended: %+v", cl)
	}
	c.host("node-a", a.root, a.state) // back: it drops its stale mount
	mustUnmount(t, b, "db", "b1")
}
