package e2e

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/fsutil"
	"github.com/relocvol/relocvol/internal/testenv"
)

// checkGrow grows volumes in use through the managed plugin, with the CLI
// against its API (base), as an operator does: an xfs volume under a
// running writer grows online (the container's df shows it at once); the
// writer's ext4 volume (vol, 64M) grows too, online where the plugin has
// CAP_SYS_RESOURCE, else (this machine: build-plugin.sh left it out)
// when its container restarts; a smaller size is refused; docker volume
// inspect shows the new size.
func checkGrow(t *testing.T, bin, base string) {
	t.Helper()
	cli := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append(args, "--api", base)...).CombinedOutput()
		return string(out), err
	}

	// xfs: online, wherever.
	const xv = "e2e-xfs"
	mustDocker(t, "volume", "create", "-d", driver, "-o", "size=320M", "-o", "fs=xfs", xv)
	t.Cleanup(func() { _, _ = docker(t, "rm", "-f", "e2e-xfs-writer"); _, _ = docker(t, "volume", "rm", xv) })
	mustDocker(t, "run", "-d", "--name", "e2e-xfs-writer", "-v", xv+":/data", image, "sh", "-c",
		`i=0; while :; do i=$((i+1)); echo "line $i" >> /data/log; sync; sleep 0.1; done`)
	before := dfSize(t, "e2e-xfs-writer")
	out, err := cli("volume", "grow", xv, "640M")
	if err != nil || !strings.Contains(out, "volume e2e-xfs grew from 320M to 640M: its filesystem was grown on host e2e-host-a") {
		t.Fatalf("relocvol volume grow %s 640M: %v\n%s", xv, err, out)
	}
	if after := dfSize(t, "e2e-xfs-writer"); after < before+300<<20 {
		t.Fatalf("df in the running container: %d bytes after the grow, %d before; want 320M more", after, before)
	}
	if st := inspect(t, xv); st["size"] != "640M" || !strings.Contains(fmt.Sprint(st["grown"]), "filesystem grown on host e2e-host-a") {
		t.Fatalf("docker volume inspect after the grow: %v", st)
	}
	waitMoreLines(t, "e2e-xfs-writer")
	mustDocker(t, "rm", "-f", "e2e-xfs-writer")

	// A smaller size: refused, nothing changed.
	out, err = cli("volume", "grow", vol, "32M")
	if err == nil || !strings.Contains(out, `grow volume "e2e-db" to 32M: it is 64M already, and relocvol only grows volumes`) {
		t.Fatalf("relocvol volume grow %s 32M: %v\n%s", vol, err, out)
	}

	// ext4 under the writer.
	before = dfSize(t, "e2e-writer")
	out, err = cli("volume", "grow", vol, "128M")
	if err != nil {
		t.Fatalf("relocvol volume grow %s 128M: %v\n%s", vol, err, out)
	}
	t.Logf("relocvol volume grow %s 128M: %s", vol, strings.TrimSpace(out))
	if st := inspect(t, vol); st["size"] != "128M" {
		t.Fatalf("docker volume inspect after the grow: %v", st)
	}
	if online, why := fsutil.GrowsOnline("ext4"); !online {
		// This test's process has the capabilities the engine can grant.
		if !strings.Contains(out, "volume e2e-db grew from 64M to 128M; its filesystem grows when the volume is next mounted: host e2e-host-a:") || !strings.Contains(out, "CAP_SYS_RESOURCE") {
			t.Fatalf("ext4 where the engine cannot grant CAP_SYS_RESOURCE (%s): relocvol said\n%s\nwant it to say the filesystem grows at the next mount, and why", why, out)
		}
		if now := dfSize(t, "e2e-writer"); now != before {
			t.Fatalf("df changed from %d to %d before the container restarted", before, now)
		}
		mustDocker(t, "restart", "-t", "1", "e2e-writer")
	} else if !strings.Contains(out, "its filesystem was grown on host e2e-host-a") {
		t.Fatalf("ext4 with CAP_SYS_RESOURCE: relocvol said\n%s", out)
	}
	testenv.Eventually(t, 30*time.Second, "the writer's filesystem has the new size", func() error {
		if now := dfSize(t, "e2e-writer"); now < before+56<<20 {
			return fmt.Errorf("df says %d bytes, %d before the grow", now, before)
		}
		return nil
	})
	if st := inspect(t, vol); !strings.Contains(fmt.Sprint(st["grown"]), "from 64M to 128M") || !strings.Contains(fmt.Sprint(st["grown"]), "filesystem grown on host e2e-host-a") {
		t.Fatalf("docker volume inspect once grown: %v", st)
	}
	waitMoreLines(t, "e2e-writer")
}

// dfSize is the size of the filesystem at /data in container c.
func dfSize(t *testing.T, c string) int64 {
	t.Helper()
	out := mustDocker(t, "exec", c, "sh", "-c", "df -B1 --output=size /data | tail -n 1")
	n, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatalf("df in %s: %q", c, out)
	}
	return n
}

// waitMoreLines waits for container c's writer to add lines to /data/log.
func waitMoreLines(t *testing.T, c string) {
	t.Helper()
	n := lineCount(t, c)
	testenv.Eventually(t, 10*time.Second, c+" still writes", func() error {
		if lineCount(t, c) <= n {
			return fmt.Errorf("no new line after %d", n)
		}
		return nil
	})
}
