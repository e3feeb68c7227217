package config

import (
	"encoding/json"
	"os"
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
	fs.VisitAll(func(f *pflag.Flag) { fromFlags = append(fromFlags, EnvName(f.Name)) })
	sort.Strings(inManifest)
	sort.Strings(fromFlags)
	if strings.Join(inManifest, " ") != strings.Join(fromFlags, " ") {
		t.Errorf("config.json env:\n  %v\nflags:\n  %v", inManifest, fromFlags)
	}
	for _, c := range manifest.Linux.Capabilities {
		if c == "CAP_SYS_RESOURCE" || c == "ALL" {
			t.Errorf("config.json asks for %s: Docker here cannot grant it, never ask for it", c)
		}
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
}
