// Package testenv lets tests that need root or system commands say so. Such
// tests skip on a developer's machine that lacks them, but fail under CI=true:
// CI runs on a machine prepared for them, so a skip there would only hide
// tests that never ran.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// RequireRoot skips t unless it runs as root (fails instead when CI=true).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		unmet(t, inCI(), fmt.Sprintf("needs root (running as uid %d)", os.Geteuid()))
	}
}

// RequireCommands skips t unless every named command is on PATH (fails
// instead when CI=true).
func RequireCommands(t testing.TB, names ...string) {
	t.Helper()
	var missing []string
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		unmet(t, inCI(), fmt.Sprintf("needs commands not found on PATH: %s", strings.Join(missing, ", ")))
	}
}

func inCI() bool { return os.Getenv("CI") == "true" }

func unmet(t testing.TB, ci bool, reason string) {
	t.Helper()
	if ci {
		t.Fatal(reason + " (CI=true: this machine must provide it, so not skipping)")
		return
	}
	t.Skip(reason + " (set up the machine or run as root; with CI=true this fails instead)")
}

// Perm is the permission bits of path's mode.
func Perm(t testing.TB, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}
