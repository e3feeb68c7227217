package controller

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

// capturingDocker records the HostConfig of every create.
type capturingDocker struct {
	*fakeDocker
	mu      sync.Mutex
	created []*container.HostConfig
}

func (c *capturingDocker) ContainerCreate(ctx context.Context, cfg *container.Config, hc *container.HostConfig, nc *network.NetworkingConfig, p *ocispec.Platform, name string) (container.CreateResponse, error) {
	c.mu.Lock()
	c.created = append(c.created, hc)
	c.mu.Unlock()
	return c.fakeDocker.ContainerCreate(ctx, cfg, hc, nc, p, name)
}

// The agent starts what it checked: someone who can write etcd but has no
// app key swaps the spec while the agent waits for the app's volume (held
// by a live host), then frees the volume: the record read after the wait
// is checked again, and refused. (Checked only when the start was
// planned, the container was created from the unsigned spec: a bind
// mount of / as user 0.)
func TestAgentVerifiesTheRecordItStarts(t *testing.T) {
	st, ctx := testenv.Store(t, "/test")
	hb := newHeartbeat(t, st, "a")
	if err := hb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	hbB := newHeartbeat(t, st, "b")
	if err := hbB.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := st.CreateVolume(ctx, store.Volume{Name: "db", State: store.StateReady}); err != nil {
		t.Fatal(err)
	}
	_, vrev, err := st.GetVolume(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	// db is in use on live host b: the agent on a waits in awaitFree.
	crev, err := st.PutClaim(ctx, store.Claim{Volume: "db", Host: "b", Epoch: 1}, 0, vrev)
	if err != nil {
		t.Fatal(err)
	}
	d := &capturingDocker{fakeDocker: newFakeDocker()}
	rec := NewRecorder(st, "a", nil, quietLog())
	go rec.Run(ctx)
	a := NewAgent(st, d, hb, rec, nil, "a", &fakeVolumes{d: d.fakeDocker}, testKeySource, quietLog())

	rel := &store.Relocation{ID: "r1", Kind: store.KindMove, From: "b", To: "a", Started: time.Now().UTC()}
	benign := signed(t, store.App{Name: "web", Volumes: []string{"db"}, Spec: store.AppSpec{Image: "img", Labels: relocate,
		Mounts: []store.AppMount{{Type: "volume", Source: "db", Target: "/db", Driver: "relocvol"}}}})
	benign.Host, benign.Relocation = "a", rel // placement: not signed
	arev, err := st.PutApp(ctx, benign, 0)
	if err != nil {
		t.Fatal(err)
	}
	go a.Run(ctx)
	time.Sleep(3 * time.Second) // the reconcile verified the record and waits for db

	evil := benign
	evil.Spec.User = "0"
	evil.Spec.Mounts = append(evil.Spec.Mounts, store.AppMount{Type: "bind", Source: "/", Target: "/host"})
	if _, err := st.PutApp(ctx, evil, arev); err != nil { // the old MAC kept: it no longer matches
		t.Fatal(err)
	}
	c, _, _ := st.GetClaim(ctx, "db")
	if _, err := st.PutClaim(ctx, c.Released(""), crev, vrev); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the rewritten record refused", 10*time.Second, func() bool {
		ev, _ := st.ListEvents(ctx, 100)
		for _, e := range ev {
			if e.App == "web" && e.Phase == "refused" {
				return true
			}
		}
		return false
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.created) > 0 {
		t.Fatalf("created web from a record whose MAC does not verify: mounts %+v", d.created[0].Mounts)
	}
}
