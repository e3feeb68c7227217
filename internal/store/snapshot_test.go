package store_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/store"
)

// TestSnapshot: one read holds what every List of each family holds, at
// one revision, and a write after it is not in it.
func TestSnapshot(t *testing.T) {
	st, cli := newStore(t)
	ctx := context.Background()
	_, _, vrev, err := st.CreateVolume(ctx, store.Volume{Name: "db", State: store.StateReady, Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutClaim(ctx, store.Claim{Volume: "db", Host: "a", Epoch: 1}, 0, vrev); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutApp(ctx, store.App{Name: "pg", Host: "a", Volumes: []string{"db"}}, 0); err != nil {
		t.Fatal(err)
	}
	if err := st.SetRunning(ctx, "pg", "a", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := st.MarkFence(ctx, store.Fence{Host: "c", By: "a", Volume: "db"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetMaintenance(ctx, "b", time.Minute, "ops", "kernel"); err != nil {
		t.Fatal(err)
	}
	grant, err := cli.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RegisterHost(ctx, store.Host{Name: "a", Lease: int64(grant.ID)}, 0, 0); err != nil {
		t.Fatal(err)
	}

	snap, err := st.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	same := func(what string, got, want any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: snapshot %+v, list %+v", what, got, want)
		}
	}
	hosts, err := st.ListHosts(ctx)
	same("hosts", snap.Hosts, hosts, err)
	vols, err := st.ListVolumes(ctx)
	same("volumes", snap.Volumes, vols, err)
	claims, err := st.ListClaims(ctx)
	same("claims", snap.Claims, claims, err)
	apps, err := st.ListApps(ctx)
	same("apps", snap.Apps, apps, err)
	fences, err := st.ListFences(ctx)
	same("fences", snap.Fences, fences, err)
	maint, err := st.ListMaintenance(ctx)
	same("maintenance", snap.Maintenance, maint, err)
	running, err := st.ListRunning(ctx)
	same("running", snap.Running, running, err)
	for what, n := range map[string]int{"hosts": len(snap.Hosts), "volumes": len(snap.Volumes), "claims": len(snap.Claims),
		"apps": len(snap.Apps), "fences": len(snap.Fences), "maintenance": len(snap.Maintenance), "running": len(snap.Running)} {
		if n != 1 {
			t.Errorf("%s: %d records in the snapshot, want 1", what, n)
		}
	}

	// A later write has a later revision than the snapshot's.
	rev, err := st.PutApp(ctx, store.App{Name: "web", Host: "a"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rev <= snap.Rev || snap.Rev < snap.Hosts["a"].Rev {
		t.Errorf("snapshot at revision %d, host read at %d, a later write at %d", snap.Rev, snap.Hosts["a"].Rev, rev)
	}
}
