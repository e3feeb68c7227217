package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/failpoint"
	"github.com/relocvol/relocvol/internal/testenv"
)

const (
	crashRef    = "relocvol-crash:latest" // a build with the failpoints tag
	crashDriver = "relocvol-crash"
	crashVol    = "crash-vol"
)

// TestCrashInMount kills the plugin (an immediate exit, by a failpoint only
// a test build has) after each step of a Mount (claim written, storage
// attached, filesystem mounted, before the reply) and of an Unmount
// (filesystem unmounted, storage detached, before the reply). Docker
// restarts the plugin. Nothing may leak: no loop device left attached, no
// mount left, no claim or mount ID counted that Docker will never unmount
// (the volume would show "in use" for ever), and the next docker run works.
func TestCrashInMount(t *testing.T) {
	testenv.RequireDocker(t)
	root := testenv.RepoRoot(t)
	dirs := hostDirs(t)
	state, san := dirs.state, dirs.san
	start := time.Now()
	// The plugin as scripts/build-plugin.sh makes it, its binary built with
	// the failpoints tag; its own image tags, so that the release build's
	// cached layers stay.
	t.Cleanup(func() {
		_, _ = docker(t, "rm", "-f", "crash-c")
		_, _ = docker(t, "volume", "rm", "-f", crashVol)
		_, _ = docker(t, "plugin", "disable", "-f", crashRef)
		_, _ = docker(t, "plugin", "rm", "-f", crashRef)
	})
	buildPlugin(t, root, crashRef, "RELOCVOL_GO_TAGS=failpoints", "RELOCVOL_IMAGE=relocvol-rootfs:crash", "RELOCVOL_BUILD_IMAGE=relocvol-build:crash")
	t.Logf("failpoint build made in %s", time.Since(start).Round(time.Second))
	mustDocker(t, append(append([]string{"plugin", "set", crashRef}, dirs.sources()...),
		"RELOCVOL_HOST=crash-host", fmt.Sprintf("RELOCVOL_EMBEDDED_ETCD=127.0.0.1:%d", testenv.FreePorts(t, 2)),
		fmt.Sprintf("RELOCVOL_API_ADDR=127.0.0.1:%d", testenv.FreePorts(t, 2)), "RELOCVOL_LOG_LEVEL=debug")...)
	mustDocker(t, "plugin", "enable", crashRef)
	mustDocker(t, "volume", "create", "-d", crashDriver, "-o", "size=32M", crashVol)
	img := filepath.Join(san, crashVol+".img")

	tally := testenv.NewTally(t, "plugin killed at each step of Mount and Unmount (managed plugin, loop)")
	for _, fp := range failpoint.All {
		tally.Start()
		t.Run(fp, func(t *testing.T) {
			inUnmount := strings.HasPrefix(fp, "unmount-")
			if inUnmount {
				// A container holds the volume; the crash comes when it goes.
				mustDocker(t, "run", "-d", "--name", "crash-c", "-v", crashVol+":/data", image, "sh", "-c", "echo "+fp+" >> /data/log; sleep 600")
			}
			from := dockerdLogSize(t)
			if err := os.WriteFile(failpoint.Path(state), []byte(fp), 0o644); err != nil {
				t.Fatal(err)
			}
			crashed := time.Now()
			if inUnmount {
				out, err := docker(t, "rm", "-f", "crash-c")
				t.Logf("docker rm -f while the plugin is killed in Unmount: %v %s", err, out)
			} else {
				out, err := docker(t, "run", "--rm", "--name", "crash-c", "-v", crashVol+":/data", image, "sh", "-c", "echo "+fp+" >> /data/log")
				t.Logf("docker run while the plugin is killed in Mount: %v %s", err, out)
			}
			if _, err := os.Stat(failpoint.Path(state)); err == nil {
				t.Fatalf("the failpoint %s was never hit", fp)
			}
			testenv.Eventually(t, 60*time.Second, "the plugin killed and running again", func() error {
				if dockerdLogSince(t, from, "failpoint "+fp+": killing") == "" {
					return fmt.Errorf("dockerd's log does not show the plugin killed at %s", fp)
				}
				// Docker restarts a plugin that exits, but gives up (and
				// disables it) when its socket does not answer within
				// about 10 s, which a slow task exit here sometimes
				// causes: then the operator's move, enable it again.
				if enabled, _ := docker(t, "plugin", "inspect", "-f", "{{.Enabled}}", crashRef); enabled == "false" {
					t.Logf("Docker did not restart the plugin after the crash: enabling it")
					if out, err := docker(t, "plugin", "enable", crashRef); err != nil {
						return fmt.Errorf("docker plugin enable: %v: %s", err, out)
					}
				}
				if dockerdLogSince(t, from, "relocvol plugin ready") == "" {
					return fmt.Errorf("dockerd's log does not show the plugin ready again")
				}
				_, err := docker(t, "volume", "inspect", crashVol)
				return err
			})
			// The plugin's agent drops what Docker will never unmount.
			testenv.Eventually(t, 100*time.Second, "nothing left of the crashed mount", func() error {
				st := inspect(t, crashVol)
				if st["owner"] != "" || fmt.Sprint(st["mounts"]) != "0" {
					return fmt.Errorf("volume still claimed: %v", st)
				}
				if out, _ := exec.Command("losetup", "-j", img).CombinedOutput(); len(strings.TrimSpace(string(out))) > 0 {
					return fmt.Errorf("loop device left: %s", out)
				}
				if n := hostMounts(t, crashVol); n != 0 {
					return fmt.Errorf("still mounted %d times", n)
				}
				return nil
			})
			t.Logf("%s: clean %s after the crash", fp, time.Since(crashed).Round(100*time.Millisecond))
			_, _ = docker(t, "rm", "-f", "crash-c") // a Mount crash may leave it created
			got := mustDocker(t, "run", "--rm", "-v", crashVol+":/data", image, "sh", "-c", "echo next >> /data/log && tail -n 1 /data/log")
			if got != "next" {
				t.Fatalf("the next docker run read %q", got)
			}
			if st := inspect(t, crashVol); st["owner"] != "" || fmt.Sprint(st["mounts"]) != "0" {
				t.Fatalf("after the next run: %v, want released", st)
			}
			tally.Pass(time.Since(crashed))
		})
	}
}
