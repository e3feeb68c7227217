package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// RepoRoot is the module's root folder: $RELOCVOL_REPO (the scripts set
// it), else the nearest folder holding go.mod above the working directory,
// which for a test is its package's folder. It fails t when there is none.
func RepoRoot(t testing.TB) string {
	t.Helper()
	if r := os.Getenv("RELOCVOL_REPO"); r != "" {
		return r
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory: set RELOCVOL_REPO to the repository")
			return ""
		}
		dir = parent
	}
}

// RequireDocker skips t unless it runs as root with a Docker engine that
// answers (fails instead when CI=true).
func RequireDocker(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	RequireCommands(t, "docker")
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		unmet(t, inCI(), fmt.Sprintf("no Docker engine answers (docker info: %v: %s); scripts/test.sh starts one", err, bytes.TrimSpace(out)))
	}
}

// Eventually calls f every 200 ms until it returns nil, and fails t with
// what and f's last error if that does not happen within timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	poll(t, timeout, 200*time.Millisecond, what, f)
}

// poll runs f every period until it returns nil, and fails t with f's
// last error after timeout.
func poll(t testing.TB, timeout, period time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
			return
		}
		time.Sleep(period)
	}
}

// EnsureRegistry installs Debian's docker-registry when it is missing, with
// scripts/lib.sh (ensure_registry) as setup.sh would.
func EnsureRegistry(t testing.TB, root string) {
	t.Helper()
	if _, err := exec.LookPath("docker-registry"); err == nil {
		return
	}
	cmd := exec.Command("bash", "-c", `set -euo pipefail; . "$1/scripts/lib.sh"; ensure_registry`, "bash", root)
	cmd.Env = append(os.Environ(), "RELOCVOL_REPO="+root)
	w := LogWriter{T: t, Prefix: "ensure_registry: "}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		t.Fatalf("installing docker-registry (lib.sh ensure_registry): %v", err)
	}
}

// WaitFor waits until cond holds, checking every 50 ms, and fails t after
// timeout: for conditions that are cheap to check and change quickly.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	poll(t, timeout, 50*time.Millisecond, what, func() error {
		if !cond() {
			return errNotYet
		}
		return nil
	})
}

var errNotYet = errors.New("the condition does not hold")

// WriteFiles makes the files under root (path → content), with their
// folders: a fake sysfs tree, for one.
func WriteFiles(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FSSize is the size in bytes of the filesystem mounted at mp.
func FSSize(t testing.TB, mp string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(mp, &st); err != nil {
		t.Fatalf("statfs %s: %v", mp, err)
	}
	return int64(st.Blocks) * st.Bsize
}
