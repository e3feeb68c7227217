package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/etcdembed"
	"github.com/relocvol/relocvol/internal/testenv"
)

const (
	startRef    = "relocvol-start:latest"
	startDriver = "relocvol-start"
	startVol    = "start-vol"
)

// TestEnableBeforeEtcd enables the plugin while its etcd does not answer,
// as on a host that boots before its etcd cluster is reachable. Docker
// gives a plugin about 12 s to listen on its socket (moby's
// pluginPostStart: 0.5 s, then four dials 3 s apart, whatever --timeout
// says) and disables it for good when it does not: relocvol's start-up
// (etcd, the storage checks, the registration on every LUN) may take
// longer, so the plugin listens at once and answers while it starts. Until
// etcd answers, requests fail with an error that names the host and what it
// waits for, and change nothing; once etcd is up the same plugin works,
// without an operator.
func TestEnableBeforeEtcd(t *testing.T) {
	testenv.RequireDocker(t)
	root := testenv.RepoRoot(t)
	dirs := hostDirs(t)
	etcdPort, apiPort := testenv.FreePorts(t, 2), testenv.FreePorts(t, 2)

	var srv *etcdembed.Server
	t.Cleanup(func() {
		logDockerdOnFailure(t, 60)
		_, _ = docker(t, "volume", "rm", "-f", startVol)
		_, _ = docker(t, "plugin", "disable", "-f", startRef)
		_, _ = docker(t, "plugin", "rm", "-f", startRef)
		if srv != nil {
			srv.Close() // once the plugin, its client, is gone
		}
	})
	buildPlugin(t, root, startRef)
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	mustDocker(t, append(append([]string{"plugin", "set", startRef}, dirs.sources()...),
		"RELOCVOL_HOST=start-host", "RELOCVOL_ETCD_ENDPOINTS="+endpoint,
		fmt.Sprintf("RELOCVOL_API_ADDR=127.0.0.1:%d", apiPort), "RELOCVOL_LOG_LEVEL=debug")...)

	// No etcd answers: the plugin cannot finish starting, and must be
	// enabled all the same.
	start := time.Now()
	if out, err := docker(t, "plugin", "enable", startRef); err != nil {
		t.Fatalf("docker plugin enable while etcd is down: %v\n%s\nwant it enabled: the plugin listens at once and answers while it starts", err, out)
	}
	t.Logf("enabled in %s while etcd is down", time.Since(start).Round(100*time.Millisecond))

	out, err := docker(t, "volume", "create", "-d", startDriver, "-o", "size=32M", startVol)
	for _, want := range []string{"host start-host", "etcd", "try again"} {
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("docker volume create while etcd is down: %v\n%s\nwant a refusal that says %q", err, out, want)
		}
	}
	t.Logf("docker volume create while etcd is down: %s", out)
	if entries, _ := os.ReadDir(dirs.san); len(entries) > 0 {
		t.Fatalf("the refused create left %d files in the SAN folder", len(entries))
	}

	// etcd comes up: the same plugin finishes starting by itself.
	srv, err = etcdembed.Start(t.TempDir(), fmt.Sprintf("127.0.0.1:%d", etcdPort), etcdembed.Options{NoFsync: true, LogLevel: "fatal"})
	if err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	testenv.Eventually(t, 90*time.Second, "the plugin started once etcd answers", func() error {
		out, err := docker(t, "volume", "create", "-d", startDriver, "-o", "size=32M", startVol)
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	t.Logf("serving %s after etcd came up", time.Since(up).Round(100*time.Millisecond))
	if got := mustDocker(t, "run", "--rm", "-v", startVol+":/data", image, "sh", "-c", "echo started > /data/f && cat /data/f"); got != "started" {
		t.Fatalf("a container on the volume read %q", got)
	}
	mustDocker(t, "volume", "rm", startVol)
}
