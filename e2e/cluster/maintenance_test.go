package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/internal/testenv"
)

// upgradeVersion is the version of the build TestMaintenance upgrades to.
const upgradeVersion = "e2e-upgrade"

// TestMaintenance changes a host's plugin while a relocatable container
// writes on it, the way docs/configuration.md says: (a) a setting with docker plugin
// disable -f, set, enable; (b) docker plugin upgrade to a new build. Each
// time the plugin is down for longer than the lease and the grace, and no
// peer fails the host over: the plugin announced maintenance when it
// stopped. (c) A host that really dies during an announced maintenance is
// failed over once the maintenance ends.
func TestMaintenance(t *testing.T) {
	requireDocker(t)
	root := testenv.RepoRoot(t)
	pluginDir := buildPlugin(t, root)
	cliBin := buildCLI(t, root)
	newDir := upgradeBuild(t, root)
	testenv.EnsureRegistry(t, root)
	c := apiCluster(t, pluginDir, testenv.EtcdOn(t, "0.0.0.0"), []string{"n1", "n2"})
	ctx := context.Background()
	n1, n2 := c.Node("n1"), c.Node("n2")
	onN2 := api.NewClient("http://"+n2.IP()+":7480", apiToken)
	anyAPI := func(f func(*api.Client) error) error { return f(onN2) }
	host := func(name string) api.Host {
		t.Helper()
		var got api.Host
		testenv.Eventually(t, 10*time.Second, "host "+name+" listed", func() error {
			hosts, err := onN2.Hosts(ctx)
			for _, h := range hosts {
				if h.Name == name {
					got = h
					return nil
				}
			}
			return fmt.Errorf("hosts %+v (%v)", hosts, err)
		})
		return got
	}
	testenv.Eventually(t, time.Minute, "two live hosts and a leader", func() error {
		s, err := onN2.Status(ctx)
		if err != nil || s.HostsAlive != 2 || s.Leader == "" {
			return fmt.Errorf("status %+v %v", s, err)
		}
		return nil
	})
	startWriter(t, n1)
	waitApp(t, anyAPI, "recorded on n1", func(a api.App) bool { return a.DesiredHost == "n1" && a.ActualHost == "n1" })
	waitLines(t, n1, "n1", 20)

	// away keeps n1's plugin down for longer than its lease and the grace
	// the leader waits, checking all along that nobody fails n1 over.
	away := func(what string) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, "n1 seen dead, in maintenance", func() error {
			if h := host("n1"); h.Alive || h.Maintenance == nil || h.Maintenance.By != "plugin-stop" {
				return fmt.Errorf("n1 %+v", h)
			}
			return nil
		})
		for end := time.Now().Add(leaseTTL + 5*time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
			if h := host("n1"); h.Fenced {
				t.Fatalf("%s: n1 fenced by %s while its plugin was away in maintenance", what, h.FencedBy)
			}
			waitApp(t, anyAPI, "still placed on n1", func(a api.App) bool { return a.DesiredHost == "n1" })
			if running, err := n1.Docker("inspect", "-f", "{{.State.Running}}", appName); running != "true" {
				t.Fatalf("%s: the writer on n1 is not running (%q, %v)", what, running, err)
			}
		}
		t.Logf("%s: n1's plugin away for %s past its lease: no failover", what, leaseTTL+5*time.Second)
	}
	// back enables n1's plugin again and waits until n1 is back.
	back := func(what string, version string) {
		t.Helper()
		enabled := time.Now()
		n1.MustDocker(t, "plugin", "enable", Plugin)
		testenv.Eventually(t, time.Minute, "n1 back, out of maintenance", func() error {
			h := host("n1")
			if !h.Alive || h.Fenced || h.Maintenance != nil || (version != "" && h.Version != version) {
				return fmt.Errorf("n1 %+v", h)
			}
			return nil
		})
		rejoined := time.Since(enabled)
		before := countLines(t, n1)
		waitLines(t, n1, "n1", before+20)
		t.Logf("BENCHMARK %s: n1 back %s after docker plugin enable began, out of maintenance, the writer kept writing (%d lines)", what, rejoined.Round(10*time.Millisecond), before)
	}

	// ---- (a) change a setting: disable -f, set, enable ----
	n1.MustDocker(t, "plugin", "disable", "-f", Plugin)
	away("disable -f")
	n1.MustDocker(t, "plugin", "set", Plugin, "RELOCVOL_LOG_LEVEL=debug")
	back("disable -f, set, enable", "")

	// ---- (b) docker plugin upgrade to a new build, from a registry ----
	ref := pushToNodeRegistry(t, n1, newDir)
	n1.MustDocker(t, "plugin", "disable", "-f", Plugin)
	away("upgrade")
	n1.MustDocker(t, "plugin", "upgrade", "--grant-all-permissions", "--skip-remote-check", Plugin, ref)
	back("docker plugin upgrade", upgradeVersion)
	if got := n1.MustDocker(t, "plugin", "inspect", "-f", "{{.Settings.Env}}", Plugin); !strings.Contains(got, "RELOCVOL_LOG_LEVEL=debug") {
		t.Errorf("the upgrade lost the plugin's settings: %s", got)
	}
	checkLog(t, n1, []string{"n1"})

	// ---- (c) n1 really dies during an announced maintenance ----
	out, err := exec.Command(cliBin, "maintenance", "on", "n1", "--for", "20s", "--reason", "e2e", "--api", "http://"+n2.IP()+":7480", "--token", apiToken).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "host n1 is in maintenance until") {
		t.Fatalf("relocvol maintenance on n1: %v\n%s", err, out)
	}
	m := host("n1").Maintenance
	if m == nil || m.By != "operator" || m.Reason != "e2e" {
		t.Fatalf("n1's maintenance: %+v", m)
	}
	n1.Kill(t)
	for time.Until(m.Until) > time.Second {
		if h := host("n1"); h.Fenced {
			t.Fatalf("n1 fenced before its maintenance ended (%s left)", time.Until(m.Until))
		}
		waitApp(t, anyAPI, "still placed on n1 during its maintenance", func(a api.App) bool { return a.DesiredHost == "n1" })
		time.Sleep(500 * time.Millisecond)
	}
	waitApp(t, anyAPI, "failed over to n2 after the maintenance", func(a api.App) bool { return a.ActualHost == "n2" })
	late := time.Since(m.Until)
	if late < 0 {
		t.Fatalf("failed over %s before the maintenance ended", -late)
	}
	t.Logf("BENCHMARK n1 killed during maintenance: its app runs on n2 %s after the maintenance ended", late.Round(10*time.Millisecond))
	waitLines(t, n2, "n2", countLines(t, n2)+10)
	checkLog(t, n2, []string{"n1", "n2"})
}

// upgradeBuild is the plugin folder of a build of version upgradeVersion,
// made by scripts/build-plugin.sh as a release is (under image tags of its
// own, so that the release build's cached layers stay): the "new build"
// the test upgrades to.
func upgradeBuild(t *testing.T, root string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "plugin")
	const name = "relocvol-upgrade:" + upgradeVersion
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "build-plugin.sh"))
	cmd.Env = append(os.Environ(), "RELOCVOL_REPO="+root, "PLUGIN_NAME="+name, "PLUGIN_DIR="+dir,
		"RELOCVOL_VERSION="+upgradeVersion, "RELOCVOL_IMAGE=relocvol-rootfs:upgrade", "RELOCVOL_BUILD_IMAGE=relocvol-build:upgrade")
	cmd.Stdout, cmd.Stderr = testenv.LogWriter{T: t, Prefix: "upgrade build: "}, testenv.LogWriter{T: t, Prefix: "upgrade build: "}
	if err := cmd.Run(); err != nil {
		t.Fatalf("RELOCVOL_VERSION=%s scripts/build-plugin.sh: %v", upgradeVersion, err)
	}
	// Only the folder is wanted; the nodes get it from a registry.
	if err := removePlugin(name); err != nil {
		t.Log(err)
	}
	return dir
}

// pushToNodeRegistry runs a registry inside node n (on its loopback, which
// its Docker talks plain HTTP to), creates the plugin folder dir there
// under a registry reference and pushes it, as a release would be
// published; it returns the reference.
func pushToNodeRegistry(t *testing.T, n *Node, dir string) string {
	t.Helper()
	const ref = "localhost:5000/relocvol:" + upgradeVersion
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "registry.yml")
	yml := "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/e2e-registry\nhttp:\n  addr: 127.0.0.1:5000\n"
	if err := os.WriteFile(conf, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cp := range [][2]string{{bin, "/usr/local/bin/docker-registry"}, {conf, "/etc/e2e-registry.yml"}, {dir, "/plugin-upgrade"}} {
		if err := copyInto(n.Container(), cp[0], cp[1]); err != nil {
			t.Fatalf("node %s: %v", n.Name, err)
		}
	}
	n.MustExec(t, "sh", "-c", "setsid docker-registry serve /etc/e2e-registry.yml >/var/log/e2e-registry.log 2>&1 < /dev/null &")
	testenv.Eventually(t, 20*time.Second, "the registry in "+n.Name+" answers", func() error {
		_, err := n.Exec("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/5000")
		return err
	})
	n.MustDocker(t, "plugin", "create", ref, "/plugin-upgrade")
	n.MustDocker(t, "plugin", "push", ref)
	n.MustDocker(t, "plugin", "rm", ref)
	return ref
}
