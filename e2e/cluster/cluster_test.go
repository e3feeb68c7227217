package cluster

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/testenv"
)

const image = "debian:bookworm-slim" // made offline by scripts/lib.sh

// TestCluster is the harness's smoke test: three nodes on one etcd and one
// SAN, a volume written on n1 and read back on n2, a partition of n2 and a
// power loss of n3.
func TestCluster(t *testing.T) {
	requireDocker(t)
	root := testenv.RepoRoot(t)
	pluginDir := buildPlugin(t, root)
	endpoints := testenv.EtcdOn(t, "0.0.0.0")
	_, port, err := net.SplitHostPort(strings.TrimPrefix(endpoints[0], "http://"))
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	c := Start(t, Options{
		Nodes:     []string{"n1", "n2", "n3"},
		PluginDir: pluginDir,
		EtcdPort:  port,
		PluginEnv: []string{"RELOCVOL_LEASE_TTL=5s", "RELOCVOL_LOG_LEVEL=debug"},
		Images:    []string{image},
	})
	t.Logf("TIMING three nodes with plugin and image up in %s", time.Since(start).Round(100*time.Millisecond))
	n1, n2, n3 := c.Node("n1"), c.Node("n2"), c.Node("n3")

	// ---- a volume made on n1 is every node's: one etcd, one SAN ----
	n1.MustDocker(t, "volume", "create", "-d", Plugin, "-o", "size=64M", "smoke")
	n1.MustDocker(t, "run", "--rm", "-v", "smoke:/data", image, "sh", "-c", "echo written on n1 > /data/f")
	if _, err := os.Stat(filepath.Join(c.SAN(), "smoke.img")); err != nil {
		t.Errorf("the volume's image is not in the host's SAN folder: %v", err)
	}
	testenv.Eventually(t, 30*time.Second, "n2 reads what n1 wrote", func() error {
		out, err := n2.Docker("run", "--rm", "-v", "smoke:/data", image, "cat", "/data/f")
		if err != nil {
			return err
		}
		if out != "written on n1" {
			return fmt.Errorf("read %q", out)
		}
		return nil
	})
	if ls := n3.MustDocker(t, "volume", "ls", "--format", "{{.Driver}} {{.Name}}"); ls != Plugin+":latest smoke" {
		t.Errorf("docker volume ls on n3: %q", ls)
	}

	// ---- partition: n2 loses the host (its etcd) and gets it back ----
	dial := "exec 3<>/dev/tcp/" + c.Gateway() + "/" + port
	n2.MustExec(t, "timeout", "5", "bash", "-c", dial)
	n2.Disconnect(t)
	if out, err := n2.Exec("timeout", "3", "bash", "-c", dial); err == nil {
		t.Errorf("a disconnected n2 still reaches etcd on %s:%s (%s)", c.Gateway(), port, out)
	}
	n2.Connect(t)
	testenv.Eventually(t, 10*time.Second, "n2 reaches etcd again", func() error {
		_, err := n2.Exec("timeout", "3", "bash", "-c", dial)
		return err
	})
	if out := n2.MustExec(t, "ip", "-4", "-o", "addr", "show"); !strings.Contains(out, " "+n2.IP()+"/") {
		t.Errorf("n2 came back with another address than %s: %s", n2.IP(), out)
	}

	// ---- power loss of n3, and its boot ----
	n3.Kill(t)
	if _, err := n3.Docker("info"); err == nil {
		t.Errorf("a killed n3 still answers")
	}
	boot := time.Now()
	n3.Boot(t) // waits for the plugin to be enabled again
	t.Logf("TIMING n3 booted with its plugin enabled in %s", time.Since(boot).Round(100*time.Millisecond))
	testenv.Eventually(t, 30*time.Second, "n3 lists the volume after its boot", func() error {
		ls, err := n3.Docker("volume", "ls", "-q")
		if err != nil {
			return err
		}
		if ls != "smoke" {
			return fmt.Errorf("docker volume ls -q: %q", ls)
		}
		return nil
	})
	if boots := strings.Count(n3.DockerdLog(), "---- boot "); boots != 2 {
		t.Errorf("n3's dockerd.log shows %d boots, want 2", boots)
	}
	if n3.PluginLogs() == "" {
		t.Errorf("no plugin output in n3's dockerd.log")
	}
	log := n3.DockerdLog()
	if after := log[strings.LastIndex(log, "---- boot "):]; !strings.Contains(after, " plugin=") {
		t.Errorf("the plugin wrote nothing since n3's boot:\n%s", tail(after, 20))
	}
	if out := n3.MustExec(t, "ip", "-4", "-o", "addr", "show"); !strings.Contains(out, " "+n3.IP()+"/") {
		t.Errorf("n3 booted with another address than %s: %s", n3.IP(), out)
	}
}

// plugin is the plugin folder built once for every test of the package.
var plugin struct {
	once sync.Once
	dir  string
	err  error
}

// buildPlugin builds the plugin folder (config.json + rootfs/) with
// scripts/build-plugin.sh, once per test binary (TestMain removes it), and
// removes the plugin that script also creates in the host engine.
func buildPlugin(t testing.TB, root string) string {
	t.Helper()
	plugin.once.Do(func() {
		const name = "relocvol-cluster-build:latest"
		start := time.Now()
		plugin.dir, plugin.err = os.MkdirTemp("", "relocvol-cluster-plugin-")
		if plugin.err != nil {
			return
		}
		cmd := exec.Command("bash", filepath.Join(root, "scripts", "build-plugin.sh"))
		cmd.Env = append(os.Environ(), "PLUGIN_NAME="+name, "PLUGIN_DIR="+plugin.dir, "RELOCVOL_REPO="+root)
		cmd.Stdout, cmd.Stderr = testenv.LogWriter{T: t, Prefix: "build: "}, testenv.LogWriter{T: t, Prefix: "build: "}
		if err := cmd.Run(); err != nil {
			plugin.err = fmt.Errorf("scripts/build-plugin.sh: %w", err)
		}
		if err := removePlugin(name); err != nil {
			t.Logf("remove the build's plugin %s from the host engine: %v", name, err)
		}
		t.Logf("TIMING plugin folder built in %s", time.Since(start).Round(100*time.Millisecond))
	})
	if plugin.err != nil {
		t.Fatal(plugin.err)
	}
	return plugin.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if plugin.dir != "" {
		_ = os.RemoveAll(plugin.dir)
	}
	os.Exit(code)
}
