package plugin_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/fencing"
)

// slowFence is fencing none whose proof takes a while, as sg_persist on a
// SAN does (several PR commands per path).
type slowFence struct {
	fencing.None
	d time.Duration
}

func (f slowFence) Join(context.Context) error { return nil }
func (f slowFence) Fence(ctx context.Context, host string) error {
	time.Sleep(f.d)
	return nil
}

// A dead host's volumes are taken over by several Mounts at once (Swarm
// reschedules all of a dead node's tasks together): they share the one
// mark that stands, each proves the fence itself, and every takeover
// lands. (When each Mount wrote a mark of its own, each invalidated the
// others' proofs: 6 of 8 failed, "its claim kept changing".)
func TestConcurrentTakeoversOfOneDeadHost(t *testing.T) {
	c := newCluster(t)
	a := c.host("node-a", "", "")
	log := logrus.New()
	b := c.hostWith("node-b", "", "", hostOpts{fencer: slowFence{None: fencing.None{Log: log}, d: 300 * time.Millisecond}})
	const n = 8
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("v%d", i)
		mustCreate(t, a, name, nil)
		mustMount(t, a, name, "a"+name)
	}
	a.kill(t)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("v%d", i)
			_, errs[i] = b.drv.Mount(&volume.MountRequest{Name: name, ID: "b" + name})
		}()
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			t.Errorf("takeover of v%d from the dead node-a failed: %v", i, err)
		}
	}
	// clean up the shared kernel
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("v%d", i)
		_ = c.fs.Unmount(context.Background(), filepath.Join(a.root, name))
		if errs[i] == nil {
			mustUnmount(t, b, name, "b"+name)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d concurrent takeovers of one dead host's volumes failed", failed, n)
	}
}
