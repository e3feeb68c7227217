// Package e2e tests relocvol end to end against a real Docker engine: the
// plugin is built by scripts/build-plugin.sh, installed as a managed plugin,
// and driven through the docker CLI; a second relocvol process plays a
// second host on the same etcd and the same SAN folder.
package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// docker runs the docker CLI and returns its combined output.
func docker(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := docker(t, args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// freePorts returns a free TCP port p on 127.0.0.1 whose p+1 is free too
// (the embedded etcd's peer port).
func freePorts(t *testing.T) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
		l.Close()
		if err == nil {
			l2.Close()
			return p
		}
	}
	t.Fatal("no two consecutive free ports")
	return 0
}

// hostDirs makes a temporary folder with the state/ and san/ folders a
// plugin's state and san mounts point at.
func hostDirs(t *testing.T) (dir, state, san string) {
	t.Helper()
	dir = t.TempDir()
	state, san = filepath.Join(dir, "state"), filepath.Join(dir, "san")
	for _, d := range []string{state, san} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir, state, san
}
