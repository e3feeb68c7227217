package main

import (
	"strings"
	"testing"
)

// A bad configuration is refused before anything starts, every problem
// named by its flag and its variable.
func TestPluginRefusesBadConfig(t *testing.T) {
	t.Setenv("RELOCVOL_LEASE_TTL", "1s")
	cmd := pluginCmd()
	cmd.SetArgs([]string{"--backend=zfs", "--san-dir=relative", "--host=node-1"})
	err := cmd.Execute()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"invalid configuration",
		`--backend (RELOCVOL_BACKEND): unknown backend "zfs": use loop or lvm`,
		`--san-dir (RELOCVOL_SAN_DIR): "relative" must be an absolute path`,
		"--lease-ttl (RELOCVOL_LEASE_TTL): 1s: use whole seconds from 2s",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestPluginRejectsArguments(t *testing.T) {
	cmd := pluginCmd()
	cmd.SetArgs([]string{"extra"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), `unknown command "extra"`) {
		t.Fatalf("err = %v", err)
	}
}
