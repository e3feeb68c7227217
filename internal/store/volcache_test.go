package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

func cachedNames(c *store.VolumeCache) ([]string, bool) {
	vols, ok := c.Volumes(context.Background())
	var names []string
	for _, v := range vols {
		names = append(names, v.Name)
	}
	return names, ok
}

// The cache lists what etcd holds, follows creations and removals made
// after its first read, and says when it cannot follow (then List reads
// etcd), including a record it cannot decode.
func TestVolumeCacheFollowsEtcd(t *testing.T) {
	st, cli := newStore(t)
	ctx := context.Background()
	create := func(name string) {
		t.Helper()
		if _, _, _, err := st.CreateVolume(ctx, store.Volume{Name: name, Backend: "loop", State: store.StateReady}); err != nil {
			t.Fatal(err)
		}
	}
	create("b")
	create("a")
	c := st.NewVolumeCache()
	if _, ok := c.Volumes(context.Background()); ok {
		t.Fatal("a cache not run yet says it follows etcd")
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { c.Run(rctx); close(done) }()
	want := func(names ...string) {
		t.Helper()
		testenv.Eventually(t, 10*time.Second, fmt.Sprintf("the cache lists %v", names), func() error {
			got, ok := cachedNames(c)
			if !ok || !slices.Equal(got, names) {
				return fmt.Errorf("cache: %v (following: %v)", got, ok)
			}
			return nil
		})
	}
	want("a", "b")
	// A read after a write sees it at once, whichever client wrote:
	// `docker volume create c && docker volume ls` lists c (TestManagedPlugin
	// failed on a cache that only followed its watch).
	now := func(names ...string) {
		t.Helper()
		if got, ok := cachedNames(c); !ok || !slices.Equal(got, names) {
			t.Fatalf("the cache right after the write: %v (following: %v), want %v", got, ok, names)
		}
	}
	for range 20 {
		create("c")
		now("a", "b", "c")
		_, rev, err := st.GetVolume(ctx, "c")
		if err != nil {
			t.Fatal(err)
		}
		if err := st.DeleteVolume(ctx, "c", rev); err != nil {
			t.Fatal(err)
		}
		now("a", "b")
	}
	// Nothing changed since: the cache still answers (a progress
	// notification proves it complete).
	if _, err := cli.Put(ctx, "/test/other", "x"); err != nil {
		t.Fatal(err)
	}
	now("a", "b")
	create("c")
	_, rev, err := st.GetVolume(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteVolume(ctx, "a", rev); err != nil {
		t.Fatal(err)
	}
	want("b", "c")

	// A record no relocvol wrote: the cache stops following, as ListVolumes
	// refuses it; removed, the cache reads again and follows.
	if _, err := cli.Put(ctx, "/test/volumes/junk", "{not json"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the cache stops following at an unreadable record", func() error {
		if _, ok := c.Volumes(context.Background()); ok {
			return fmt.Errorf("still following")
		}
		return nil
	})
	if _, err := cli.Delete(ctx, "/test/volumes/junk"); err != nil {
		t.Fatal(err)
	}
	want("b", "c")
	cancel()
	<-done
	if _, ok := c.Volumes(context.Background()); ok {
		t.Fatal("a stopped cache says it follows etcd")
	}
}

// OnChange hears every record of the first read, then each record written,
// with its name, and never a removal.
func TestVolumeCacheOnChange(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	if _, _, _, err := st.CreateVolume(ctx, store.Volume{Name: "a", Backend: "loop", State: store.StateReady}); err != nil {
		t.Fatal(err)
	}
	heard := make(chan store.Volume, 16)
	c := st.NewVolumeCache()
	c.OnChange = func(v store.Volume) { heard <- v }
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go c.Run(rctx)
	next := func(want string, size int64) {
		t.Helper()
		select {
		case v := <-heard:
			if v.Name != want || v.Size != size {
				t.Fatalf("OnChange heard %s of size %d, want %s of size %d", v.Name, v.Size, want, size)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("OnChange never heard of %s", want)
		}
	}
	next("a", 0)
	_, _, rev, err := st.CreateVolume(ctx, store.Volume{Name: "b", Backend: "loop", State: store.StateReady})
	if err != nil {
		t.Fatal(err)
	}
	next("b", 0)
	if _, err := st.UpdateVolume(ctx, store.Volume{Name: "b", Backend: "loop", State: store.StateReady, Size: 2 << 20}, rev, -1); err != nil {
		t.Fatal(err)
	}
	next("b", 2<<20)
	_, rev, err = st.GetVolume(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteVolume(ctx, "a", rev); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := st.CreateVolume(ctx, store.Volume{Name: "c", Backend: "loop", State: store.StateReady}); err != nil {
		t.Fatal(err)
	}
	next("c", 0) // nothing of a's removal before it
}
