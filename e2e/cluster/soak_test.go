package cluster

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/internal/testenv"
)

// soakFor is how long TestIdleSoak idles: RELOCVOL_SOAK (a Go duration,
// e.g. 30m), 1 minute by default (what scripts/test.sh runs: the whole
// run has to stay under 45 minutes on a new 2-core machine; longer on
// demand).
func soakFor(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("RELOCVOL_SOAK")
	if v == "" {
		return time.Minute
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Minute {
		t.Fatalf("RELOCVOL_SOAK=%q: give a duration of at least 1m, e.g. 30m", v)
	}
	return d
}

// TestIdleSoak: a healthy three-host cluster whose etcd fsyncs to a disk
// under fsync pressure idles (a writer on n1, a short container on every
// host every 10 s): no host may self-fence, no Mount may be refused, and
// the smallest slack between a host's longest renewal gap and its cut-off
// is reported (BENCHMARKS.md).
func TestIdleSoak(t *testing.T) {
	requireDocker(t)
	soak := soakFor(t)
	root := testenv.RepoRoot(t)
	pluginDir := buildPlugin(t, root)
	dir := t.TempDir()
	nodes := []string{"n1", "n2", "n3"}
	c := apiCluster(t, pluginDir, testenv.EtcdDurable(t, "0.0.0.0", filepath.Join(dir, "etcd")), nodes)
	ctx := context.Background()
	clients := map[string]*api.Client{}
	for _, n := range nodes {
		clients[n] = api.NewClient("http://"+c.Node(n).IP()+":7480", apiToken)
	}
	testenv.Eventually(t, time.Minute, "three live hosts and a leader", func() error {
		s, err := clients["n1"].Status(ctx)
		if err != nil || s.HostsAlive != 3 || s.Leader == "" {
			return fmt.Errorf("status %+v %v", s, err)
		}
		return nil
	})
	n1 := c.Node("n1")
	for _, n := range nodes {
		c.Node(n).MustDocker(t, "volume", "create", "-d", "relocvol", "-o", "size=16M", "soak-"+n)
	}
	startWriter(t, n1)
	waitLines(t, n1, "n1", 20)

	// fsync pressure on etcd's disk: small synced writes and large flushed
	// ones, as a busy database on the same disk makes.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var fsyncs atomic.Int64
	var worst atomic.Int64 // ns
	for i, size := range []int{4 << 10, 8 << 20} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pressure(t, filepath.Join(dir, fmt.Sprintf("pressure-%d", i)), size, stop, &fsyncs, &worst)
		}()
	}
	defer func() { close(stop); wg.Wait() }()

	start := time.Now()
	minSlack, maxGap := map[string]float64{}, map[string]float64{}
	runs := 0
	for time.Since(start) < soak {
		time.Sleep(10 * time.Second)
		for _, n := range nodes {
			// A Mount on every host: refused if the host had passed its
			// cut-off at that moment.
			if out, err := c.Node(n).Docker("run", "--rm", "-v", "soak-"+n+":/data", "debian:bookworm-slim", "true"); err != nil {
				t.Errorf("after %s: a container on %s with a relocvol volume failed: %v\n%s", time.Since(start).Round(time.Second), n, err, out)
			}
			l, err := clients[n].Local(ctx)
			if err != nil {
				t.Fatalf("GET /v1/local on %s: %v", n, err)
			}
			if !l.Alive || l.SelfFencing != nil {
				t.Fatalf("after %s: %s is not alive or self-fenced: %+v", time.Since(start).Round(time.Second), n, l)
			}
			minSlack[n], maxGap[n] = l.SlackSeconds, l.MaxRenewalGapSeconds
		}
		runs++
	}
	for _, n := range nodes {
		m := metrics(t, c.Node(n))
		for _, want := range []string{"relocvol_self_fencings_total 0", "relocvol_self_fencing 0"} {
			if !strings.Contains(m, "\n"+want+"\n") {
				t.Errorf("%s's metrics lack %q:\n%s", n, want, grepLines(m, "relocvol_self_fenc"))
			}
		}
		if refused := strings.Count(c.Node(n).PluginLogs(), "request refused"); refused != 0 {
			t.Errorf("%s refused %d requests during the soak", n, refused)
		}
	}
	if running, _ := n1.Docker("inspect", "-f", "{{.State.Running}}", appName); running != "true" {
		t.Fatalf("the writer on n1 stopped during the soak")
	}
	checkLog(t, n1, []string{"n1"})
	hosts := slices.Sorted(maps.Keys(minSlack))
	smallest := minSlack[hosts[0]]
	var per []string
	for _, n := range hosts {
		smallest = min(smallest, minSlack[n])
		per = append(per, fmt.Sprintf("%s %.3fs (longest renewal gap %.3fs)", n, minSlack[n], maxGap[n]))
	}
	t.Logf("SOAK %s idle on 3 hosts at TTL %s under fsync pressure (%d fsyncs, the slowest %s), %d rounds of 3 Mounts: "+
		"0 self-fences, 0 refusals; smallest slack to the cut-off %.3fs: %s",
		soak, leaseTTL, fsyncs.Load(), time.Duration(worst.Load()).Round(time.Millisecond), runs, smallest, strings.Join(per, ", "))
}

// pressure writes size bytes and fsyncs, again and again, until stop.
func pressure(t *testing.T, path string, size int, stop <-chan struct{}, n, worst *atomic.Int64) {
	f, err := os.Create(path)
	if err != nil {
		t.Errorf("fsync pressure: %v", err)
		return
	}
	defer os.Remove(path)
	defer f.Close()
	buf := make([]byte, size)
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		if i%64 == 0 {
			if _, err := f.Seek(0, 0); err != nil {
				t.Errorf("fsync pressure: %v", err)
				return
			}
		}
		if _, err := f.Write(buf); err != nil {
			t.Errorf("fsync pressure: %v", err)
			return
		}
		s := time.Now()
		if err := f.Sync(); err != nil {
			t.Errorf("fsync pressure: %v", err)
			return
		}
		d := int64(time.Since(s))
		n.Add(1)
		for {
			w := worst.Load()
			if d <= w || worst.CompareAndSwap(w, d) {
				break
			}
		}
	}
}
