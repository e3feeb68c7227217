package config

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestManifestEnvMatchesFlags keeps the managed plugin's settable env in
// config.json and the flags of `relocvol plugin` the same set of names.
func TestManifestEnvMatchesFlags(t *testing.T) {
	raw, err := os.ReadFile("../../config.json")
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct {
		Entrypoint []string
		Env        []struct {
			Name     string
			Settable []string
		}
		Linux   struct{ Capabilities []string }
		IPCHost bool
		Mounts  []struct {
			Name, Source, Destination, Type string
			Settable, Options               []string
		}
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	var inManifest []string
	for _, e := range manifest.Env {
		if !strings.HasPrefix(e.Name, "RELOCVOL_") {
			continue
		}
		inManifest = append(inManifest, e.Name)
		if len(e.Settable) != 1 || e.Settable[0] != "value" {
			t.Errorf("config.json: %s is not settable", e.Name)
		}
	}
	c := Defaults()
	fs := pflag.NewFlagSet("plugin", pflag.ContinueOnError)
	c.Bind(fs)
	var fromFlags []string
	fs.VisitAll(func(f *pflag.Flag) { fromFlags = append(fromFlags, FlagEnv(f)) })
	sort.Strings(inManifest)
	sort.Strings(fromFlags)
	if strings.Join(inManifest, " ") != strings.Join(fromFlags, " ") {
		t.Errorf("config.json env:\n  %v\nflags:\n  %v", inManifest, fromFlags)
	}
	// CAP_SYS_RESOURCE (online growth of ext4) is one the plugin can do
	// without: scripts/build-plugin.sh leaves it out where the engine
	// cannot grant it (this project's sandbox, docker-in-docker), by
	// dropping its line, which must then not be the list's last.
	caps := manifest.Linux.Capabilities
	for i, c := range caps {
		if c == "ALL" {
			t.Errorf("config.json asks for %s: never ask for every capability", c)
		}
		if c == "CAP_SYS_RESOURCE" && i == len(caps)-1 {
			t.Errorf("config.json: CAP_SYS_RESOURCE is the last capability; build-plugin.sh drops its line, which would leave a trailing comma")
		}
	}
	if !regexp.MustCompile(`(?m)^\s*"CAP_SYS_RESOURCE",$`).Match(raw) {
		t.Error(`config.json: CAP_SYS_RESOURCE must stand on a line of its own, as "CAP_SYS_RESOURCE",: build-plugin.sh drops that line where the engine cannot grant it`)
	}
	// LVM waits for udev to acknowledge each device-mapper change through
	// SysV semaphores; in a private IPC namespace the host's udev cannot,
	// and lvcreate hangs for ever (seen in the VM lab with unshare --ipc).
	if !manifest.IPCHost {
		t.Error("config.json must set ipchost: true, or LVM hangs inside the plugin")
	}
	if strings.Join(manifest.Entrypoint, " ") != "/usr/bin/relocvol plugin" {
		t.Errorf("entrypoint %v", manifest.Entrypoint)
	}
	// The plugin's LVM shares the host's configuration (filters, devices
	// file, backups), file locks and hints, at the paths LVM uses, each
	// settable for hosts that keep them elsewhere.
	lvmDirs := map[string]string{"lvm-etc": "/etc/lvm", "lvm-run": "/run/lvm", "lvm-lock": "/run/lock/lvm"}
	for _, m := range manifest.Mounts {
		dest, ok := lvmDirs[m.Name]
		if !ok {
			continue
		}
		delete(lvmDirs, m.Name)
		if m.Source != dest || m.Destination != dest || m.Type != "bind" ||
			strings.Join(m.Options, ",") != "rbind,rw" || strings.Join(m.Settable, ",") != "source" {
			t.Errorf("config.json mount %s = %+v, want a settable rbind,rw bind of the host's %s at %s", m.Name, m, dest, dest)
		}
	}
	for name, dest := range lvmDirs {
		t.Errorf("config.json has no mount %s (the host's %s)", name, dest)
	}
	// LVM waits for the host's udev only if it sees udev running, by
	// /run/udev/control; otherwise it leaves /dev nodes to udev without
	// waiting, and lvcreate fails ("device not cleared", seen in the VM lab).
	udev := false
	for _, m := range manifest.Mounts {
		if m.Name == "udev" {
			udev = m.Source == "/run/udev" && m.Destination == "/run/udev" && m.Type == "bind" && strings.Join(m.Options, ",") == "rbind,ro"
		}
	}
	if !udev {
		t.Error("config.json must bind-mount the host's /run/udev at /run/udev (rbind,ro), or LVM in the plugin does not wait for udev's /dev nodes")
	}
}

// TestPrivilegesExplained: every privilege config.json asks for (each
// capability, the host namespaces, each mount) has its row in the README's
// table of what the plugin may do, and nothing more is asked for than it
// lists: a privilege added to the manifest fails this test until the README
// says why.
func TestPrivilegesExplained(t *testing.T) {
	raw, err := os.ReadFile("../../config.json")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Network struct{ Type string }
		IPCHost bool
		PIDHost bool
		Linux   struct {
			Capabilities    []string
			AllowAllDevices bool
		}
		Mounts []struct{ Name string }
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "### What the plugin may do on the host")
	if !ok {
		t.Fatal("README.md has no section \"What the plugin may do on the host\"")
	}
	table, _, _ = strings.Cut(table, "\n\nIt asks")
	var rows []string
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "| `") || strings.HasPrefix(line, "| all devices") || strings.HasPrefix(line, "| host ") {
			rows = append(rows, strings.SplitN(line, "|", 3)[1])
		}
	}
	explained := func(what string) {
		t.Helper()
		for _, r := range rows {
			if strings.Contains(r, what) {
				return
			}
		}
		t.Errorf("config.json asks for %s, but the README's table of privileges does not say why", what)
	}
	for _, c := range m.Linux.Capabilities {
		explained("`" + c + "`")
	}
	if len(m.Linux.Capabilities) != 3 {
		t.Errorf("capabilities %v: the README explains CAP_SYS_RESOURCE, CAP_SYS_ADMIN and CAP_SYS_RAWIO only", m.Linux.Capabilities)
	}
	if m.Linux.AllowAllDevices {
		explained("all devices")
	}
	if m.Network.Type == "host" {
		explained("host network")
	}
	if m.IPCHost {
		explained("`ipchost`")
	}
	if m.PIDHost {
		t.Error("config.json asks for the host's PID namespace, which relocvol does not use")
	}
	for _, mnt := range m.Mounts {
		explained("`" + mnt.Name + "`")
	}
}
