package api

import (
	"context"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The API's socket is root's alone (mode 0600), replaces the socket an
// earlier run left (a crash leaves it), never another kind of file, and
// the client asks it at unix:///PATH.
func TestUnixSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "api.sock")
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = stale.Close()
	ln, err := ListenUnix(path)
	if err != nil {
		t.Fatalf("over an earlier run's socket: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v %v, want a socket of mode 600", path, fi.Mode(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, Handler(&fakeService{}, Options{Token: "t"})) }()
	c := NewClient("unix://"+path, "t")
	if _, err := c.Status(ctx); err != nil {
		t.Fatalf("status over the socket: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(context.Background()); err == nil || !strings.Contains(err.Error(), "cannot reach the relocvol API at unix://"+path) {
		t.Fatalf("status with the plugin gone: %v, want it to name the socket", err)
	}
	file := filepath.Join(dir, "not-a-socket")
	if err := os.WriteFile(file, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenUnix(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("ListenUnix over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "data" {
		t.Fatal("the regular file was replaced")
	}
}
