// Package e2e tests relocvol end to end against a real Docker engine: the
// plugin is built by scripts/build-plugin.sh, installed as a managed plugin,
// and driven through the docker CLI; a second relocvol process plays a
// second host on the same etcd and the same SAN folder.
package e2e

import (
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/testenv"
)

// docker runs the docker CLI and returns its combined output.
func docker(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func mustDocker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := docker(t, args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// buildPlugin makes plugin ref with scripts/build-plugin.sh, with env added
// to its environment (RELOCVOL_GO_TAGS, image tags, …); its output goes to
// t.Logf.
func buildPlugin(t testing.TB, root, ref string, env ...string) {
	t.Helper()
	build := exec.Command("bash", filepath.Join(root, "scripts", "build-plugin.sh"))
	build.Env = append(append(os.Environ(), "PLUGIN_NAME="+ref, "RELOCVOL_REPO="+root), env...)
	w := testenv.LogWriter{T: t, Prefix: "build: "}
	build.Stdout, build.Stderr = w, w
	if err := build.Run(); err != nil {
		t.Fatalf("%s scripts/build-plugin.sh: %v", strings.Join(env, " "), err)
	}
}

// logDockerdOnFailure sends the end of dockerd's log (the plugin logs into
// it) to t.Logf when t failed.
func logDockerdOnFailure(t testing.TB, lines int) {
	if !t.Failed() {
		return
	}
	if raw, err := os.ReadFile(dockerdLog); err == nil {
		all := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
		t.Logf("dockerd log (last lines):\n%s", strings.Join(all[max(0, len(all)-lines):], "\n"))
	}
}

// lvmMounts are the plugin's mounts of what LVM shares with the host
// (config.json): each mount's name and the folder it shares, at the same
// path inside the plugin.
var lvmMounts = map[string]string{"lvm-etc": "/etc/lvm", "lvm-run": "/run/lvm", "lvm-lock": "/run/lock/lvm", "udev": "/run/udev"}

// folders are the host folders a test's plugin mounts, all in one
// temporary folder, so that a test touches neither /var/lib/relocvol nor
// the machine's LVM.
type folders struct {
	dir, state, san string
	lvm             map[string]string // mount name (lvm-etc, …) → its folder
}

// hostDirs makes the folders a test's plugin mounts: state/, san/ and one
// per LVM mount.
func hostDirs(t testing.TB) folders {
	t.Helper()
	dir := t.TempDir()
	f := folders{dir: dir, state: filepath.Join(dir, "state"), san: filepath.Join(dir, "san"), lvm: map[string]string{}}
	for name := range lvmMounts {
		f.lvm[name] = filepath.Join(dir, name)
	}
	for _, d := range append([]string{f.state, f.san}, slices.Collect(maps.Values(f.lvm))...) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// token is the plugin's API token of that name in its state folder
// ("api-token", or "api-token-read" for reads only), as root reads it.
func (f folders) token(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.state, name))
	if err != nil {
		t.Fatalf("the plugin's API token: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// sources are the settings (of docker plugin set or install) that point the
// plugin's mounts at the folders.
func (f folders) sources() []string {
	s := []string{"state.source=" + f.state, "san.source=" + f.san}
	for _, name := range slices.Sorted(maps.Keys(f.lvm)) {
		s = append(s, name+".source="+f.lvm[name])
	}
	return s
}
