package cluster

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/internal/testenv"
)

// TestFailover runs the controller on three docker-in-docker hosts that
// share one etcd and one loop "SAN", with the writer app (restart policy
// unless-stopped, as stateful services run): (a) a planned move, then
// cycles of each fault with a check of the whole log after every one: (b)
// power losses of the writer's host, each followed by its reboot; (c)
// partitions of the writer's host, each healed; (d) clean restarts of the
// writer's dockerd. RELOCVOL_CYCLES sets the number of (b) and (c)
// cycles, 10 by default, and of (d), 5 by default.
func TestFailover(t *testing.T) {
	requireDocker(t)
	root := testenv.RepoRoot(t)
	pluginDir := buildPlugin(t, root)
	cliBin := buildCLI(t, root)
	endpoints := testenv.EtcdOn(t, "0.0.0.0")
	c := apiCluster(t, pluginDir, endpoints, []string{"n1", "n2", "n3"}, "RELOCVOL_LOG_LEVEL=debug")
	f := newFaults(t, c)
	n1 := c.Node("n1")
	testenv.Eventually(t, time.Minute, "three live hosts and a leader", func() error {
		return f.anyAPI(func(cl *api.Client) error {
			s, err := cl.Status(context.Background())
			if err != nil {
				return err
			}
			if s.HostsAlive != 3 || s.Leader == "" {
				return fmt.Errorf("status %+v", s)
			}
			return nil
		})
	})

	startWriter(t, n1, "--restart", "unless-stopped")
	app := waitApp(t, f.anyAPI, "recorded on n1", func(a api.App) bool { return a.DesiredHost == "n1" && a.ActualHost == "n1" })
	if len(app.Volumes) != 1 || app.Volumes[0] != "data" || app.Image != "debian:bookworm-slim" {
		t.Fatalf("app %+v", app)
	}
	waitLines(t, n1, "n1", 20)

	// ---- (a) planned move n1 -> n2 through the CLI ----
	start := time.Now()
	out, err := exec.Command(cliBin, "move", appName, "--to", "n2", "--api", "http://"+n1.IP()+":7480", "--token", apiToken).CombinedOutput()
	moveWall := time.Since(start)
	t.Logf("relocvol move %s --to n2:\n%s", appName, out)
	if err != nil {
		t.Fatalf("relocvol move: %v", err)
	}
	for _, step := range []string{"requested", "stopped", "released", "created", "claimed", "activated", "mounted", "started", "done"} {
		if !regexp.MustCompile(`(?m)^  \S+  ` + step + `\s+on `).Match(out) {
			t.Errorf("relocvol move printed no %q step", step)
		}
	}
	total := regexp.MustCompile(`moved writer from n1 to n2 in (\S+)\n`).FindSubmatch(out)
	if total == nil {
		t.Fatalf("relocvol move did not end with the total")
	}
	t.Logf("BENCHMARK (a) planned move: %s reported by the timeline, %s wall time of relocvol move", total[1], moveWall.Round(time.Millisecond))
	f.owner, f.order = "n2", []string{"n1", "n2"}
	waitLines(t, c.Node("n2"), "n2", 20)
	checkLog(t, c.Node("n2"), f.order)
	if ps, _ := n1.Docker("ps", "-aq", "--filter", "name=^"+appName+"$"); strings.TrimSpace(ps) != "" {
		t.Errorf("n1 still has a container %s after the move", appName)
	}

	cycles := faultCycles(t, 10)
	powerLoss := testenv.NewTally(t, "power loss of the writer's host, then its reboot (docker-in-docker, loop)")
	for i := 1; i <= cycles; i++ {
		f.powerLoss(t, i, powerLoss)
	}
	partition := testenv.NewTally(t, "partition of the writer's host, then healed (docker-in-docker, loop)")
	for i := 1; i <= cycles; i++ {
		f.partition(t, i, partition)
	}
	for _, n := range c.Nodes() { // (c)'s plain container: sleep ignores SIGTERM, so dockerd would wait 10 s for it
		_, _ = n.Docker("rm", "-f", "plain")
	}
	restarts := testenv.NewTally(t, "dockerd restarted on the writer's host (docker-in-docker, loop)")
	for i := 1; i <= faultCycles(t, 5); i++ {
		f.dockerdRestart(t, i, restarts)
	}
	owner := c.Node(f.owner)

	out, err = exec.Command(cliBin, "events", "--app", appName, "--api", "http://"+owner.IP()+":7480", "--token", apiToken).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PHASE") {
		t.Errorf("relocvol events: %v\n%s", err, out)
	}
	t.Logf("relocvol events --app %s:\n%s", appName, tail(string(out), 40))

	// ---- the user removes the container: the app is forgotten ----
	owner.MustDocker(t, "rm", "-f", appName)
	testenv.Eventually(t, 30*time.Second, "the removed app is forgotten", func() error {
		return f.anyAPI(func(cl *api.Client) error {
			apps, err := cl.Apps(context.Background())
			if err != nil {
				return err
			}
			if len(apps) != 0 {
				return fmt.Errorf("apps %+v", apps)
			}
			return nil
		})
	})
}
