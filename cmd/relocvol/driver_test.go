package main

import (
	"bytes"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"
)

// fakeDriver answers Get and refuses Mount, to test the client side.
type fakeDriver struct{ volume.Driver }

func (fakeDriver) Get(r *volume.GetRequest) (*volume.GetResponse, error) {
	return &volume.GetResponse{Volume: &volume.Volume{Name: r.Name, Status: map[string]interface{}{"owner": "node-a"}}}, nil
}

func (fakeDriver) Mount(r *volume.MountRequest) (*volume.MountResponse, error) {
	return nil, errors.New(`volume "` + r.Name + `" is in use on host node-a`)
}

func serveFake(t *testing.T) string {
	sock := filepath.Join(t.TempDir(), "p.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() { _ = volume.NewHandler(fakeDriver{}).Serve(l) }()
	return sock
}

func runDriver(t *testing.T, args ...string) (string, error) {
	cmd := driverCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestDriverCommand(t *testing.T) {
	sock := serveFake(t)
	out, err := runDriver(t, "--socket", sock, "get", `{"Name":"db"}`)
	if err != nil || !strings.Contains(out, `"owner":"node-a"`) {
		t.Fatalf("Get: %q %v", out, err)
	}
	if _, err := runDriver(t, "--socket", sock, "Mount", `{"Name":"db","ID":"x"}`); err == nil || err.Error() != `volume "db" is in use on host node-a` {
		t.Fatalf("Mount: the plugin's Err must come back as the error: %v", err)
	}
	if _, err := runDriver(t, "--socket", sock, "Frobnicate"); err == nil || !strings.Contains(err.Error(), `unknown method "Frobnicate": use one of Create, Remove`) {
		t.Fatalf("bad method: %v", err)
	}
	if _, err := runDriver(t, "--socket", sock, "Get", "{Name:db}"); err == nil || !strings.Contains(err.Error(), "is not JSON") {
		t.Fatalf("bad JSON: %v", err)
	}
	// RELOCVOL_SOCKET stands in for --socket, as for every command.
	t.Setenv("RELOCVOL_SOCKET", sock)
	if out, err := runDriver(t, "get", `{"Name":"db"}`); err != nil || !strings.Contains(out, `"owner":"node-a"`) {
		t.Fatalf("Get with RELOCVOL_SOCKET: %q %v", out, err)
	}
	if _, err := runDriver(t, "--socket", filepath.Join(t.TempDir(), "none.sock"), "List"); err == nil || !strings.Contains(err.Error(), "is the plugin running?") {
		t.Fatalf("no plugin: %v", err)
	}
}
