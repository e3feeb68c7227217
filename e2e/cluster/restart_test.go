package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/internal/testenv"
)

// TestPluginKilled kills the plugin process on the host that runs the
// writer (kill -9: an OOM kill, a crash) while the writer keeps writing,
// cycle after cycle. Docker restarts the plugin; the restarted process
// takes its own previous lease over, so the host is never seen dead: no
// fencing, no failover, the writer's container runs on untouched, and its
// log has every fsync'd line from one writer.
func TestPluginKilled(t *testing.T) {
	requireDocker(t)
	root := testenv.RepoRoot(t)
	pluginDir := buildPlugin(t, root)
	c := apiCluster(t, pluginDir, testenv.EtcdOn(t, "0.0.0.0"), []string{"n1", "n2"})
	ctx := context.Background()
	n1, n2 := c.Node("n1"), c.Node("n2")
	onN2 := api.NewClient("http://"+n2.IP()+":7480", apiToken)
	anyAPI := func(f func(*api.Client) error) error { return f(onN2) }
	startWriter(t, n1)
	waitApp(t, anyAPI, "recorded on n1", func(a api.App) bool { return a.DesiredHost == "n1" && a.ActualHost == "n1" })
	waitLines(t, n1, "n1", 20)
	started := containerTime(t, n1, "{{.State.StartedAt}}")

	cycles := faultCycles(t, 5)
	tally := testenv.NewTally(t, "kill -9 of the plugin on the writer's host (docker-in-docker, loop)")
	var worst time.Duration
	for i := 1; i <= cycles; i++ {
		tally.Start()
		pid := n1.MustExec(t, "pgrep", "-f", "^/usr/bin/relocvol plugin")
		n1.MustExec(t, "kill", "-9", pid)
		killed := time.Now()
		// Back: a new process (another pid) that answers the API, with the
		// host alive, never fenced, the app still on n1.
		testenv.Eventually(t, time.Minute, fmt.Sprintf("cycle %d: the plugin back on n1", i), func() error {
			if now, _ := n1.Exec("pgrep", "-f", "^/usr/bin/relocvol plugin"); now == "" || now == pid {
				if enabled, _ := n1.Docker("plugin", "inspect", "-f", "{{.Enabled}}", Plugin); enabled == "false" {
					// Docker gives a plugin that does not answer its
					// socket soon enough up; then the operator enables it.
					t.Logf("cycle %d: Docker did not restart the plugin; enabling it", i)
					if out, err := n1.Docker("plugin", "enable", Plugin); err != nil {
						return fmt.Errorf("docker plugin enable: %v %s", err, out)
					}
				}
				return fmt.Errorf("no new plugin process (was %s, now %q)", pid, now)
			}
			l, err := api.NewClient("http://"+n1.IP()+":7480", apiToken).Local(ctx)
			if err != nil || !l.Alive {
				return fmt.Errorf("n1 local: %+v %v", l, err)
			}
			return nil
		})
		back := time.Since(killed)
		worst = max(worst, back)
		hosts, err := onN2.Hosts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hosts {
			if h.Name == "n1" && (h.Fenced || !h.Alive) {
				t.Fatalf("cycle %d: n1 %+v after its plugin was killed", i, h)
			}
		}
		waitApp(t, anyAPI, "still on n1", func(a api.App) bool { return a.DesiredHost == "n1" && a.ActualHost == "n1" })
		waitLines(t, n1, "n1", countLines(t, n1)+10)
		if now := containerTime(t, n1, "{{.State.StartedAt}}"); !now.Equal(started) {
			t.Fatalf("cycle %d: the writer was restarted (started %s, before %s)", i, now, started)
		}
		tally.Log(readLog(t, n1))
		checkLog(t, n1, []string{"n1"})
		tally.Pass(back)
		t.Logf("cycle %d: plugin killed, back in %s; the writer ran on", i, back.Round(10*time.Millisecond))
	}
	t.Logf("BENCHMARK plugin kill -9 on the writer's host, %d cycles: no failover, no line lost, one writer; the plugin back within %s", cycles, worst.Round(10*time.Millisecond))
}
