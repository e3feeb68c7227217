package controller

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

// The record re-read after waiting for an app's volume must be that app's:
// a signed record of another app ("other") copied under apps/web while
// the agent waits is refused. (Checked for its MAC and allowed hosts
// only, it was created under other's name, with other's spec and volumes,
// whose claims were never waited for.)
func TestAgentRefusesAnotherAppsRecordAfterWaiting(t *testing.T) {
	st, ctx := testenv.Store(t, "/test")
	hb := newHeartbeat(t, st, "a")
	if err := hb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	hbB := newHeartbeat(t, st, "b")
	if err := hbB.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"db", "other-db"} {
		if _, _, _, err := st.CreateVolume(ctx, store.Volume{Name: v, State: store.StateReady}); err != nil {
			t.Fatal(err)
		}
	}
	_, vrev, err := st.GetVolume(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	crev, err := st.PutClaim(ctx, store.Claim{Volume: "db", Host: "b", Epoch: 1}, 0, vrev)
	if err != nil {
		t.Fatal(err)
	}
	d := &capturingDocker{fakeDocker: newFakeDocker()}
	rec := NewRecorder(st, "a", nil, quietLog())
	go rec.Run(ctx)
	a := NewAgent(st, d, hb, rec, nil, "a", &fakeVolumes{d: d.fakeDocker}, testKeySource, quietLog())

	rel := &store.Relocation{ID: "r1", Kind: store.KindMove, From: "b", To: "a", Started: time.Now().UTC()}
	web := signed(t, store.App{Name: "web", Volumes: []string{"db"}, Spec: store.AppSpec{Image: "img", Labels: relocate,
		Mounts: []store.AppMount{{Type: "volume", Source: "db", Target: "/db", Driver: "relocvol"}}}})
	web.Host, web.Relocation = "a", rel
	if _, err := st.PutApp(ctx, web, 0); err != nil {
		t.Fatal(err)
	}
	go a.Run(ctx)
	time.Sleep(3 * time.Second) // the reconcile verified web and waits for db

	// Another app's record, as its agent signed it, copied under apps/web
	// with web's placement (placement is not signed).
	other := signed(t, store.App{Name: "other", Volumes: []string{"other-db"}, Spec: store.AppSpec{Image: "other-img", Labels: relocate,
		Mounts: []store.AppMount{{Type: "volume", Source: "other-db", Target: "/data", Driver: "relocvol"}}}})
	other.Host, other.Relocation = "a", rel
	raw, _ := json.Marshal(other)
	if _, err := st.Client().Put(ctx, "/test/apps/web", string(raw)); err != nil {
		t.Fatal(err)
	}
	c, _, _ := st.GetClaim(ctx, "db")
	if _, err := st.PutClaim(ctx, c.Released(""), crev, vrev); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	d.mu.Lock()
	n := len(d.created)
	d.mu.Unlock()
	t.Logf("docker calls: %v; other's state: %s", d.log(), d.state("other"))
	if n > 0 {
		t.Fatalf("created a container from another app's record read under apps/web (container other: %s)", d.state("other"))
	}
}
