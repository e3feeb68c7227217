package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

// faultCycles is how many cycles of a fault a test runs: RELOCVOL_CYCLES
// when set (scripts/reliability.sh passes it for a long run), else def
// (what scripts/test.sh runs).
func faultCycles(t *testing.T, def int) int {
	t.Helper()
	v := os.Getenv("RELOCVOL_CYCLES")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("RELOCVOL_CYCLES=%q: give a number of cycles, e.g. 50", v)
	}
	return n
}

// faults drives fault cycles against the writer app on a cluster: where
// it runs, which hosts wrote its log in which order, how long each
// recovery took.
type faults struct {
	c       *Cluster
	clients map[string]*api.Client
	owner   string   // the host the writer runs on
	order   []string // the hosts that wrote the log, block by block
	took    map[string][]time.Duration
}

func newFaults(t *testing.T, c *Cluster) *faults {
	f := &faults{c: c, clients: map[string]*api.Client{}, took: map[string][]time.Duration{}}
	for _, n := range c.Nodes() {
		cl := api.NewClient("http://"+n.IP()+":7480", apiToken)
		cl.HTTP.Timeout = 2 * time.Second // a killed or cut-off node never answers
		f.clients[n.Name] = cl
	}
	t.Cleanup(func() {
		for _, kind := range slices.Sorted(maps.Keys(f.took)) {
			d := f.took[kind]
			t.Logf("BENCHMARK %s, %d cycles: writer running again after %s at the median, %s at worst",
				kind, len(d), testenv.Median(d).Round(10*time.Millisecond), slices.Max(d).Round(10*time.Millisecond))
		}
	})
	return f
}

// anyAPI asks the first node that answers (some are down on purpose).
func (f *faults) anyAPI(do func(*api.Client) error) error {
	var err error
	for _, n := range f.c.Nodes() {
		if err = do(f.clients[n.Name]); err == nil {
			return nil
		}
	}
	return err
}

// movedTo waits for the writer to run on a host other than f.owner, which
// a fault took out at since, and returns that host and the failover's
// timeline (phase → event).
func (f *faults) movedTo(t *testing.T) (string, map[string]api.Event) {
	t.Helper()
	to := waitApp(t, f.anyAPI, "running on a host other than "+f.owner, func(a api.App) bool {
		return a.ActualHost != "" && a.ActualHost != f.owner && a.Relocation == nil
	}).ActualHost
	return to, timeline(t, f.anyAPI, store.KindFailover, f.owner)
}

// pluginLogBetween is what n's plugin logged from since to until.
func pluginLogBetween(n *Node, since, until time.Time) string {
	var out []string
	for _, line := range strings.Split(n.PluginLogs(), "\n") {
		var e struct{ Time time.Time }
		if json.Unmarshal([]byte(line), &e) == nil && !e.Time.Before(since) && !e.Time.After(until) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// unmountedAt is when n's plugin first logged, after since, that it
// unmounted vol's filesystem (a debug line: the cluster's plugins must log
// at debug level; later ones are retries finding nothing mounted).
func unmountedAt(n *Node, vol string, since time.Time) (time.Time, bool) {
	for _, line := range strings.Split(n.PluginLogs(), "\n") {
		var e struct {
			Msg, Volume string
			Time        time.Time
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "filesystem unmounted" && e.Volume == vol && e.Time.After(since) {
			return e.Time, true
		}
	}
	return time.Time{}, false
}

// written checks, on the writer's host, that it wrote 20 lines past lines
// and that the whole log is intact, in f.order, from one writer at a time,
// and tallies what the log shows.
func (f *faults) written(t *testing.T, tally *testenv.Tally, lines int) {
	t.Helper()
	n := f.c.Node(f.owner)
	waitLines(t, n, f.owner, lines+20)
	tally.Log(readLog(t, n))
	checkLog(t, n, f.order)
}

// powerLoss is one cycle of (b): the writer's host killed; the writer runs
// on another host with every line; the killed host boots, cleans up and
// rejoins without ever starting its old copy (its restart policy asks
// dockerd to, and the Mount is refused). The first cycle also checks the
// failover's record: timeline, hosts, metrics.
func (f *faults) powerLoss(t *testing.T, i int, tally *testenv.Tally) {
	t.Helper()
	tally.Start()
	old := f.c.Node(f.owner)
	lines := countLines(t, old)
	old.Kill(t)
	killed := time.Now()
	to, phases := f.movedTo(t)
	took := phases["started"].At.Sub(killed)
	f.owner, f.order = to, append(f.order, to)
	f.written(t, tally, lines)
	tally.Pass(took)
	f.took["power loss"] = append(f.took["power loss"], took)
	t.Logf("(b) cycle %d: %s killed, the writer started on %s %s later (lease TTL %s)", i, old.Name, to, took.Round(time.Millisecond), leaseTTL)
	if i == 1 {
		f.checkFailoverRecord(t, old.Name, to, killed)
	}
	booted := time.Now()
	old.Boot(t)
	rejoin(t, f.anyAPI, old, old.Name, booted)
}

// checkFailoverRecord checks what the cluster recorded of the first
// failover from dead to to: every phase of its timeline, dead fenced, the
// failover counted in to's metrics.
func (f *faults) checkFailoverRecord(t *testing.T, dead, to string, killed time.Time) {
	t.Helper()
	phases := timeline(t, f.anyAPI, store.KindFailover, dead)
	for _, p := range []string{"detected", "fenced", "placed", "claimed", "activated", "mounted", "started", "done"} {
		if _, ok := phases[p]; !ok {
			t.Errorf("failover timeline has no %q phase: %v", p, phases)
		}
	}
	// The time is reported, not asserted (see BENCHMARKS.md): from the kill
	// to the container's start on the new host, as the timeline recorded it.
	failover := phases["started"].At.Sub(killed)
	t.Logf("BENCHMARK (b) failover after power loss: writer started on %s %s after docker kill %s (lease TTL %s, target TTL+5s = %s; %s of it after the lease expired)",
		to, failover.Round(time.Millisecond), dead, leaseTTL, leaseTTL+5*time.Second, time.Duration(phases["done"].TookMS)*time.Millisecond)
	hosts, err := f.clients[to].Hosts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		if h.Name == dead && (h.Alive || !h.Fenced || h.FencedBy == "") {
			t.Errorf("%s after its power loss: %+v, want dead and fenced", dead, h)
		}
	}
	if m := metrics(t, f.c.Node(to)); !strings.Contains(m, `relocvol_relocations_total{kind="failover",result="ok"} 1`) {
		t.Errorf("metrics of %s do not count the failover:\n%s", to, grepLines(m, "relocvol_"))
	}
}

// partition is one cycle of (c): the writer's host cut off the network; it
// stops its copy (self-fencing) before another host starts one; healed, it
// rejoins without starting its copy again. In the first cycle a plain
// container (not relocatable) on that host uses another relocvol volume:
// it must stop too, and start again once the host is back.
func (f *faults) partition(t *testing.T, i int, tally *testenv.Tally) {
	t.Helper()
	old := f.c.Node(f.owner)
	if i == 1 {
		old.MustDocker(t, "volume", "create", "-d", "relocvol", "-o", "size=32M", "side")
		old.MustDocker(t, "run", "-d", "--name", "plain", "-v", "side:/data", "debian:bookworm-slim", "sleep", "infinity")
	}
	tally.Start()
	lines := countLines(t, old)
	old.Disconnect(t)
	parted := time.Now()
	to, phases := f.movedTo(t)
	took := phases["started"].At.Sub(parted)
	// The partitioned host stopped its copy before the new one started,
	// and unmounted the volume before the new host mounted it: with loop
	// nothing fences it, so a filesystem still mounted there when the new
	// host mounts its own would be two kernels' filesystems on one image.
	var unmounted time.Time
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("(c) cycle %d: the partitioned %s unmounted the volume", i, old.Name), func() error {
		var ok bool
		if unmounted, ok = unmountedAt(old, "data", parted); !ok {
			return fmt.Errorf("no \"filesystem unmounted\" of data in its plugin log")
		}
		return nil
	})
	m := phases["mounted"]
	if mounted := m.At.Add(-time.Duration(m.TookMS) * time.Millisecond); !unmounted.Before(mounted) {
		t.Errorf("(c) cycle %d: the partitioned %s unmounted the volume at %s, after %s mounted it at %s (%s after the cut); its plugin meanwhile:\n%s",
			i, old.Name, unmounted.Format("15:04:05.000"), to, mounted.Format("15:04:05.000"), unmounted.Sub(parted).Round(time.Millisecond),
			pluginLogBetween(old, parted, unmounted))
	}
	oldStop := containerTime(t, old, "{{.State.FinishedAt}}")
	newStart := containerTime(t, f.c.Node(to), "{{.State.StartedAt}}")
	if running, _ := old.Docker("inspect", "-f", "{{.State.Running}}", appName); running != "false" {
		t.Errorf("(c) cycle %d: the partitioned %s's writer is still running: %q", i, old.Name, running)
	}
	if !oldStop.Before(newStart) {
		t.Errorf("(c) cycle %d: the partitioned %s stopped its writer at %s, after %s started one at %s", i, old.Name, oldStop, to, newStart)
	}
	f.owner, f.order = to, append(f.order, to)
	f.written(t, tally, lines)
	tally.Pass(took)
	f.took["partition"] = append(f.took["partition"], took)
	t.Logf("(c) cycle %d: %s cut off, stopped its writer at %s and unmounted at %s; %s mounted at %s, started at %s, %s after the cut",
		i, old.Name, oldStop.Format("15:04:05.000"), unmounted.Format("15:04:05.000"), to,
		phases["mounted"].At.Format("15:04:05.000"), newStart.Format("15:04:05.000"), took.Round(time.Millisecond))
	if i == 1 {
		if running, _ := old.Docker("inspect", "-f", "{{.State.Running}}", "plain"); running != "false" {
			t.Errorf("the partitioned host's plain container using a relocvol volume still runs: %q", running)
		}
	}
	back := time.Now()
	old.Connect(t)
	rejoin(t, f.anyAPI, old, old.Name, back)
	if i == 1 {
		testenv.Eventually(t, 30*time.Second, "the plain container runs again on "+old.Name, func() error {
			out, err := old.Docker("inspect", "-f", "{{.State.Running}}", "plain")
			if err != nil || out != "true" {
				return fmt.Errorf("running %q (%v)", out, err)
			}
			return nil
		})
	}
}

// dockerdRestart is one cycle of (d): the writer's host's dockerd
// restarted cleanly (systemctl restart docker): dockerd stops the writer
// and the plugin, starts them again, and the writer runs on where it was,
// with no failover (the restart takes less than the lease), every line
// intact and one writer.
func (f *faults) dockerdRestart(t *testing.T, i int, tally *testenv.Tally) {
	t.Helper()
	tally.Start()
	n := f.c.Node(f.owner)
	lines := countLines(t, n)
	before := containerTime(t, n, "{{.State.StartedAt}}")
	restarted := time.Now()
	n.Restart(t)
	var again time.Time
	testenv.Eventually(t, time.Minute, fmt.Sprintf("(d) cycle %d: the writer running again on %s", i, n.Name), func() error {
		out, err := n.Docker("inspect", "-f", "{{.State.Running}} {{.State.StartedAt}}", appName)
		f := strings.Fields(out)
		if err != nil || len(f) != 2 || f[0] != "true" {
			return fmt.Errorf("running, started: %q (%v)", out, err)
		}
		if again, err = time.Parse(time.RFC3339Nano, f[1]); err != nil || !again.After(before) {
			return fmt.Errorf("started at %s, before the restart", f[1])
		}
		return nil
	})
	took := again.Sub(restarted)
	waitApp(t, f.anyAPI, "still on "+n.Name, func(a api.App) bool { return a.DesiredHost == n.Name && a.ActualHost == n.Name })
	f.written(t, tally, lines)
	hosts, err := f.clients[n.Name].Hosts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		if h.Name == n.Name && (h.Fenced || !h.Alive) {
			t.Fatalf("(d) cycle %d: %s after a dockerd restart: %+v, want alive and never fenced", i, n.Name, h)
		}
	}
	tally.Pass(took)
	f.took["dockerd restart"] = append(f.took["dockerd restart"], took)
	t.Logf("(d) cycle %d: dockerd restarted on %s, the writer running there again %s later", i, n.Name, took.Round(time.Millisecond))
}
