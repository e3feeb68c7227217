package plugin_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/etcdembed"
	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
	"github.com/relocvol/relocvol/plugin"
)

// benchSizes are the numbers of volume records BenchmarkList and
// BenchmarkGet read: 1,000 and 10,000, and 100,000 with
// RELOCVOL_BENCH_FULL=1 (scripts/bench.sh --full).
func benchSizes() []int {
	if os.Getenv("RELOCVOL_BENCH_FULL") != "" {
		return []int{1_000, 10_000, 100_000}
	}
	return []int{1_000, 10_000}
}

// recordsDriver is a driver on an embedded etcd holding n volume records,
// written through the store as Create writes them (the storage itself is
// not made: List and Get read etcd alone).
//
// With cached it also measures, into metrics (reported after the loop:
// b.Loop's first call deletes what was reported before it), the heap the
// cache adds and what a volume costs etcd.
func recordsDriver(b *testing.B, n int, cached bool, metrics map[string]float64) *plugin.Driver {
	b.Helper()
	srv, err := etcdembed.Start(b.TempDir(), "127.0.0.1:0", etcdembed.Options{NoFsync: true, LogLevel: "fatal"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	st := store.New(testenv.EtcdClient(b, srv.Endpoints()), "/relocvol")
	names := make(chan string)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range names {
				v := store.Volume{Name: name, Backend: "loop", Size: 64 << 20, FS: "ext4", State: store.StateReady, CreatedAt: time.Now(), CreatedBy: "bench"}
				if _, _, _, err := st.CreateVolume(context.Background(), v); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range n {
		names <- fmt.Sprintf("vol-%06d", i)
	}
	close(names)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	log := logrus.New()
	log.SetLevel(logrus.ErrorLevel)
	opt := plugin.Options{Host: "bench", MountRoot: b.TempDir(), Defaults: spec.Defaults{Size: 64 << 20, FS: "ext4"}, Log: log}
	if cached {
		// The cache's memory: the heap it adds once filled (the embedded
		// etcd, idle meanwhile, shares the process).
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c := st.NewVolumeCache()
		ctx, cancel := context.WithCancel(context.Background())
		b.Cleanup(cancel)
		go c.Run(ctx)
		for vols, ok := c.Volumes(ctx); !ok || len(vols) < n; vols, ok = c.Volumes(ctx) {
			time.Sleep(10 * time.Millisecond)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		metrics["cache-MB"] = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / (1 << 20)
		opt.Listing = c
		// What a volume costs etcd: its record's key and value.
		resp, err := st.Client().Get(context.Background(), "/relocvol/volumes/", clientv3.WithPrefix())
		if err != nil {
			b.Fatal(err)
		}
		var bytes int
		for _, kv := range resp.Kvs {
			bytes += len(kv.Key) + len(kv.Value)
		}
		metrics["etcd-bytes/volume"] = float64(bytes) / float64(n)
	}
	return plugin.New(st, nil, nil, fencing.None{Log: log}, alwaysAlive{}, opt)
}

// BenchmarkList is Docker's VolumeDriver.List (docker volume ls) with n
// volumes in the cluster (issue 14: 10,000 ≤ 20 ms, 100,000 ≤ 200 ms),
// from the plugin's cache following etcd (what the plugin runs) and read
// from etcd (what it does while the cache does not follow).
// `go test -run XXX -bench 'List|Get' -benchmem ./plugin`.
func BenchmarkList(b *testing.B) {
	for _, n := range benchSizes() {
		for _, from := range []string{"cache", "etcd"} {
			b.Run(fmt.Sprintf("volumes=%d/from=%s", n, from), func(b *testing.B) {
				metrics := map[string]float64{}
				benchList(b, recordsDriver(b, n, from == "cache", metrics), n)
				for unit, v := range metrics {
					b.ReportMetric(v, unit)
				}
			})
		}
	}
}

func benchList(b *testing.B, d *plugin.Driver, n int) {
	b.ReportAllocs()
	for b.Loop() {
		r, err := d.List()
		if err != nil || len(r.Volumes) != n {
			b.Fatalf("List: %d volumes, %v", len(r.Volumes), err)
		}
	}
}

// BenchmarkGet is Docker's VolumeDriver.Get (docker volume inspect, and
// before every Mount) with n volumes in the cluster.
func BenchmarkGet(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("volumes=%d", n), func(b *testing.B) {
			d := recordsDriver(b, n, false, nil)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := d.Get(&volume.GetRequest{Name: fmt.Sprintf("vol-%06d", i%n)}); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
