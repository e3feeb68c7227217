package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/testenv"
)

// The plugin as another host installs it: under an alias, so its driver
// name is short and stays the same whatever registry it came from.
const (
	regRepo   = "relocvol-reg"
	regAlias  = "relocvol-reg" // the driver name (docker names it relocvol-reg:latest)
	regPlugin = regAlias + ":latest"
	regVol    = "reg-vol"
	regHost   = "reg-host"
)

// TestInstallFromRegistry publishes the plugin with scripts/publish.sh to a
// registry of its own (Debian's docker-registry on a free loopback port),
// removes the local copy, installs it back from the registry as another host
// would — no prompt, settings on the command line — and uses it.
func TestInstallFromRegistry(t *testing.T) {
	testenv.RequireDocker(t)
	testenv.RequireCommands(t, "bash")
	root := testenv.RepoRoot(t)
	dirs := hostDirs(t)
	san := dirs.san

	testenv.EnsureRegistry(t, root)
	regPort := testenv.FreePorts(t, 2)
	registry := testenv.StartRegistry(t, regPort)
	ref := fmt.Sprintf("%s/%s:e2e", registry, regRepo)
	etcdPort := testenv.FreePorts(t, 2) // after the registry listens: never its port

	t.Run("publish refuses a registry that does not answer", func(t *testing.T) {
		dead := fmt.Sprintf("127.0.0.1:%d", testenv.FreePorts(t, 2))
		start := time.Now()
		out, err := publish(t, root, dead+"/"+regRepo+":e2e")
		if err == nil {
			t.Fatalf("publish.sh to %s (nothing listens) succeeded:\n%s", dead, out)
		}
		for _, want := range []string{"registry " + dead + " does not answer", "apt-get install -y docker-registry", "docker-registry serve"} {
			if !strings.Contains(out, want) {
				t.Errorf("publish.sh said:\n%s\nwant it to say %q", out, want)
			}
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("publish.sh took %s to give up: it should check the registry before building", d)
		}
	})

	removeInstalled(t, ref) // leftovers of an interrupted run
	t.Cleanup(func() { removeInstalled(t, ref) })

	// ---- publish: build under the registry's reference, push ----
	start := time.Now()
	if out, err := publish(t, root, ref); err != nil {
		t.Fatalf("scripts/publish.sh %s: %v\n%s", ref, err, out)
	}
	t.Logf("built and pushed in %s", time.Since(start).Round(time.Second))
	var tags struct{ Tags []string }
	getJSON(t, fmt.Sprintf("http://%s/v2/%s/tags/list", registry, regRepo), &tags)
	if !slices.Contains(tags.Tags, "e2e") {
		t.Fatalf("the registry lists tags %v of %s, want e2e", tags.Tags, regRepo)
	}

	// ---- what another host has: nothing local, only the registry ----
	mustDocker(t, "plugin", "rm", "-f", ref)
	if ls := mustDocker(t, "plugin", "ls", "--format", "{{.Name}}"); strings.Contains(ls, regRepo) {
		t.Fatalf("plugin still here after docker plugin rm -f %s:\n%s", ref, ls)
	}

	// ---- install: no prompt (stdin is /dev/null), settings as arguments ----
	start = time.Now()
	mustDocker(t, append(append([]string{"plugin", "install", "--grant-all-permissions", "--alias", regAlias, ref}, dirs.sources()...),
		"RELOCVOL_HOST="+regHost,
		fmt.Sprintf("RELOCVOL_EMBEDDED_ETCD=127.0.0.1:%d", etcdPort),
		fmt.Sprintf("RELOCVOL_API_ADDR=127.0.0.1:%d", testenv.FreePorts(t, 2)))...)
	t.Logf("installed from the registry in %s", time.Since(start).Round(100*time.Millisecond))

	p := inspectPlugin(t, regAlias)
	if p.Name != regPlugin || p.PluginReference != ref || !p.Enabled {
		t.Fatalf("installed plugin: name %q, reference %q, enabled %v; want %q from %q, enabled",
			p.Name, p.PluginReference, p.Enabled, regPlugin, ref)
	}
	// The privileges --grant-all-permissions granted, as the manifest asks.
	for _, c := range []string{"CAP_SYS_ADMIN", "CAP_SYS_RAWIO"} {
		if !slices.Contains(p.Config.Linux.Capabilities, c) {
			t.Errorf("capabilities %v lack %s", p.Config.Linux.Capabilities, c)
		}
	}
	if len(p.Config.Linux.Capabilities) != 2 {
		t.Errorf("capabilities %v, want exactly CAP_SYS_ADMIN and CAP_SYS_RAWIO", p.Config.Linux.Capabilities)
	}
	if !p.Config.Linux.AllowAllDevices {
		t.Errorf("allowAllDevices is false")
	}
	if p.Config.Network.Type != "host" {
		t.Errorf("network %q, want host", p.Config.Network.Type)
	}
	mounts := map[string]pluginMount{}
	for _, m := range p.Settings.Mounts {
		mounts[m.Name] = m
	}
	wantMounts := map[string][2]string{"dev": {"/dev", "/dev"}, "state": {dirs.state, "/var/lib/relocvol"}, "san": {san, "/var/lib/relocvol/san"},
		"host-etc": {"/etc", "/host/etc"}}
	for name, dest := range lvmMounts {
		wantMounts[name] = [2]string{dirs.lvm[name], dest}
	}
	for name, want := range wantMounts {
		m, ok := mounts[name]
		if !ok || m.Source != want[0] || m.Destination != want[1] || m.Type != "bind" || !slices.Contains(m.Options, "rbind") {
			t.Errorf("mount %s = %+v, want bind (rbind) %s -> %s", name, m, want[0], want[1])
		}
	}
	if m := mounts["host-etc"]; !slices.Contains(m.Options, "ro") {
		t.Errorf("mount host-etc = %+v: the host's /etc must be read-only in the plugin", m)
	}
	for _, want := range []string{"RELOCVOL_HOST=" + regHost, fmt.Sprintf("RELOCVOL_EMBEDDED_ETCD=127.0.0.1:%d", etcdPort)} {
		if !slices.Contains(p.Settings.Env, want) {
			t.Errorf("settings env %v lack %s", p.Settings.Env, want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// ---- use it: a container writes, another reads back ----
	mustDocker(t, "volume", "create", "-d", regAlias, "-o", "size=64M", regVol)
	if ls := mustDocker(t, "volume", "ls", "--format", "{{.Driver}} {{.Name}}"); !strings.Contains(ls, regPlugin+" "+regVol) {
		t.Fatalf("docker volume ls does not list %s with driver %s:\n%s", regVol, regPlugin, ls)
	}
	st := inspect(t, regVol)
	if st["createdBy"] != regHost || st["size"] != "64M" || st["backend"] != "loop" {
		t.Fatalf("volume inspect: %v, want created by %s, 64M, loop", st, regHost)
	}
	if _, err := os.Stat(filepath.Join(san, regVol+".img")); err != nil {
		t.Fatalf("the volume's image is not in the san.source given at install: %v", err)
	}
	token := fmt.Sprintf("installed from %s at %d", ref, time.Now().UnixNano())
	mustDocker(t, "run", "--rm", "--name", "reg-writer", "-v", regVol+":/data", image,
		"sh", "-c", `printf '%s\n' "$1" > /data/token && sync`, "sh", token)
	if got := mustDocker(t, "run", "--rm", "--name", "reg-reader", "-v", regVol+":/data", image, "cat", "/data/token"); got != token {
		t.Fatalf("the second container read %q, the first wrote %q", got, token)
	}
	st = inspect(t, regVol)
	if st["owner"] != "" || fmt.Sprint(st["mounts"]) != "0" {
		t.Fatalf("volume inspect after both containers ended: %v, want released", st)
	}
	mustDocker(t, "volume", "rm", regVol)
	if _, err := os.Stat(filepath.Join(san, regVol+".img")); !os.IsNotExist(err) {
		t.Fatalf("image file left after docker volume rm: %v", err)
	}
}

// publish runs scripts/publish.sh REF, its output logged and returned. The
// plugin is installed on this very engine, so it is published for hosts
// like this one (RELOCVOL_OMIT_CAPS=auto: without what this engine cannot
// grant).
func publish(t *testing.T, root, ref string) (string, error) {
	t.Helper()
	var out strings.Builder
	w := io.MultiWriter(&out, testenv.LogWriter{T: t, Prefix: "publish: "})
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "publish.sh"), ref)
	cmd.Env = append(os.Environ(), "RELOCVOL_REPO="+root, "RELOCVOL_OMIT_CAPS=auto")
	cmd.Stdout, cmd.Stderr = w, w
	err := cmd.Run()
	return out.String(), err
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %q", url, err, body)
	}
}

type pluginMount struct {
	Name, Source, Destination, Type string
	Options                         []string
}

// installedPlugin is the part of `docker plugin inspect` the test checks.
type installedPlugin struct {
	Name, PluginReference string
	Enabled               bool
	Config                struct {
		Linux struct {
			Capabilities    []string
			AllowAllDevices bool
		}
		Network struct{ Type string }
	}
	Settings struct {
		Mounts []pluginMount
		Env    []string
	}
}

func inspectPlugin(t *testing.T, name string) installedPlugin {
	t.Helper()
	out := mustDocker(t, "plugin", "inspect", name)
	var ps []installedPlugin
	if err := json.Unmarshal([]byte(out), &ps); err != nil || len(ps) != 1 {
		t.Fatalf("docker plugin inspect %s: %v in %q", name, err, out)
	}
	return ps[0]
}

// removeInstalled removes what the test put in the engine, whatever state
// it stopped in: containers, the volume, the installed plugin and the
// local copy publish.sh built. On failure it shows the engine's log first.
func removeInstalled(t *testing.T, ref string) {
	t.Helper()
	if t.Failed() {
		for _, f := range []string{"/var/log/relocvol-dockerd.log", "/var/log/dockerd.log"} {
			raw, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			lines := strings.Split(string(raw), "\n")
			if len(lines) > 150 {
				lines = lines[len(lines)-150:]
			}
			t.Logf("%s (last lines):\n%s", f, strings.Join(lines, "\n"))
			break
		}
	}
	_, _ = docker(t, "rm", "-f", "reg-writer", "reg-reader")
	_, _ = docker(t, "volume", "rm", "-f", regVol)
	for _, p := range []string{regPlugin, ref} {
		_, _ = docker(t, "plugin", "disable", "-f", p)
		_, _ = docker(t, "plugin", "rm", "-f", p)
	}
}
