package cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/internal/testenv"
)

// The writer app of the fault tests, and what they ask of the cluster's
// API about it.

const (
	apiToken = "e2e-token"
	leaseTTL = 5 * time.Second
	appName  = "writer"
)

// writerScript is the app of these tests: fsync'd numbered lines tagged
// with the node's name (testenv.WriterScript).
const writerScript = testenv.WriterScript

// startWriter creates the volume "data" on n and runs the writer app there
// on it, labelled relocatable; flags go to docker run (a restart policy).
func startWriter(t *testing.T, n *Node, flags ...string) {
	t.Helper()
	n.MustDocker(t, "volume", "create", "-d", "relocvol", "-o", "size=64M", "data")
	args := append([]string{"run", "-d", "--name", appName, "--label", "relocvol.relocate=true"}, flags...)
	n.MustDocker(t, append(args, "-v", "data:/data", "-v", "/etc/hostname:/node:ro", "debian:bookworm-slim", "sh", "-c", writerScript)...)
}

// apiCluster starts nodes with the plugin on the etcd at endpoints (on the
// host), lease TTL leaseTTL, and the REST API on every node's port 7480
// with token apiToken; env adds plugin settings.
func apiCluster(t testing.TB, pluginDir string, endpoints, nodes []string, env ...string) *Cluster {
	t.Helper()
	return Start(t, Options{
		Nodes:     nodes,
		PluginDir: pluginDir,
		PluginEnv: append([]string{
			"RELOCVOL_LEASE_TTL=" + leaseTTL.String(),
			"RELOCVOL_API_ADDR=0.0.0.0:7480",
			"RELOCVOL_API_TOKEN=" + apiToken,
		}, env...),
		EtcdPort: endpoints[0][strings.LastIndex(endpoints[0], ":")+1:],
		Images:   []string{"debian:bookworm-slim"},
	})
}

// metrics scrapes a node's /metrics.
func metrics(t *testing.T, n *Node) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+n.IP()+":7480/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics on %s: %v", n.Name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics on %s: %s", n.Name, resp.Status)
	}
	return string(b)
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// waitApp waits until the writer app satisfies ok.
func waitApp(t *testing.T, anyAPI func(func(*api.Client) error) error, what string, ok func(api.App) bool) api.App {
	t.Helper()
	var got api.App
	testenv.Eventually(t, time.Minute, "app "+what, func() error {
		return anyAPI(func(cl *api.Client) error {
			apps, err := cl.Apps(context.Background())
			if err != nil {
				return err
			}
			for _, a := range apps {
				if a.Name == appName && ok(a) {
					got = a
					return nil
				}
			}
			return fmt.Errorf("apps %+v", apps)
		})
	})
	return got
}

// rejoin waits until host is alive and unfenced again and has removed its
// old copy of the writer without ever starting it.
func rejoin(t *testing.T, anyAPI func(func(*api.Client) error) error, n *Node, host string, since time.Time) {
	t.Helper()
	testenv.Eventually(t, 2*time.Minute, host+" rejoined, unfenced, its old writer removed", func() error {
		if ps, err := n.Docker("ps", "-aq", "--filter", "name=^"+appName+"$"); err != nil || strings.TrimSpace(ps) != "" {
			return fmt.Errorf("%s still has a writer container (%v)", host, err)
		}
		return anyAPI(func(cl *api.Client) error {
			hosts, err := cl.Hosts(context.Background())
			if err != nil {
				return err
			}
			for _, h := range hosts {
				if h.Name == host && h.Alive && !h.Fenced {
					return nil
				}
			}
			return fmt.Errorf("hosts %+v", hosts)
		})
	})
	// Docker's own record on the returning host: the old writer never
	// started again.
	out, err := n.Docker("events", "--since", strconv.FormatInt(since.Unix()-1, 10), "--until", strconv.FormatInt(time.Now().Unix()+1, 10),
		"--filter", "container="+appName, "--filter", "event=start", "--format", "{{.Time}}")
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("%s started its old %s after coming back (docker events: %q, %v)", host, appName, out, err)
	}
}

// timeline returns the phases of the newest relocation of kind from host.
func timeline(t *testing.T, anyAPI func(func(*api.Client) error) error, kind, from string) map[string]api.Event {
	t.Helper()
	phases := map[string]api.Event{}
	testenv.Eventually(t, 30*time.Second, "the "+kind+" timeline is complete", func() error {
		return anyAPI(func(cl *api.Client) error {
			ev, err := cl.Events(context.Background(), api.EventFilter{App: appName, Limit: 200})
			if err != nil {
				return err
			}
			id := ""
			for _, e := range ev {
				if e.Kind == kind && e.From == from {
					id = e.Relocation
				}
			}
			clear(phases)
			for _, e := range ev {
				if e.Relocation == id {
					phases[e.Phase] = e
					t.Logf("timeline %s: %-9s on %-3s took %5dms at +%dms %s %s", id, e.Phase, e.Host, e.TookMS, e.SinceStartMS, e.Detail, e.Error)
				}
			}
			if _, ok := phases["done"]; !ok {
				return fmt.Errorf("no done phase yet in %s", id)
			}
			return nil
		})
	})
	return phases
}

// readLog returns the writer's log as seen on node n, read through a
// throwaway container on the volume (n owns it, so its mount joins).
func readLog(t *testing.T, n *Node) string {
	t.Helper()
	out, err := n.Docker("exec", appName, "cat", "/data/log")
	if err != nil {
		t.Fatalf("read the log on %s: %v\n%s", n.Name, err, out)
	}
	return out
}

func countLines(t *testing.T, n *Node) int {
	return strings.Count(readLog(t, n), "\n")
}

// waitLines waits until the log has at least min lines and the last one
// comes from host.
func waitLines(t *testing.T, n *Node, host string, min int) {
	t.Helper()
	testenv.Eventually(t, time.Minute, fmt.Sprintf("%d lines, the last from %s", min, host), func() error {
		out, err := n.Docker("exec", appName, "tail", "-n", "1", "/data/log")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if !strings.HasPrefix(out, host+" ") {
			return fmt.Errorf("last line %q", out)
		}
		nr, _ := strconv.Atoi(strings.Fields(out)[1])
		if nr < min {
			return fmt.Errorf("%d lines", nr)
		}
		return nil
	})
}

// checkLog checks the whole log on n with testenv.CheckWriterLog: every
// line intact, the writers in order, never two at once.
func checkLog(t *testing.T, n *Node, order []string) {
	t.Helper()
	data := readLog(t, n)
	if _, err := testenv.CheckWriterLog(data, order); err != nil {
		t.Fatal(err)
	}
	t.Logf("log on %s: %d lines intact, writers %v", n.Name, strings.Count(data, "\n"), order)
}

// containerTime reads a timestamp of the writer container on n.
func containerTime(t *testing.T, n *Node, format string) time.Time {
	t.Helper()
	out, err := n.Docker("inspect", "-f", format, appName)
	if err != nil {
		t.Fatalf("inspect %s on %s: %v %s", appName, n.Name, err, out)
	}
	ts, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("time %q: %v", out, err)
	}
	return ts
}

// buildCLI builds the relocvol binary for the test to run as the CLI.
func buildCLI(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "relocvol")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/relocvol")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
