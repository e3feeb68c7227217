package testenv

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// StartRegistry runs a registry of the test's own (Debian's docker-registry,
// not the package's service) on 127.0.0.1:port with its storage in a
// temporary folder, stopped when t ends, and returns its address. Docker
// talks plain HTTP to it because it is on 127.0.0.0/8 (the VM lab's hosts
// reach it as 10.0.2.2:port, listed in their insecure-registries). Call
// EnsureRegistry first.
func StartRegistry(t testing.TB, port int) string {
	t.Helper()
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	conf := filepath.Join(dir, "config.yml")
	yml := fmt.Sprintf(`version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(conf, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("docker-registry", "serve", conf)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = LogWriter{T: t, Prefix: "registry: "}, LogWriter{T: t, Prefix: "registry: "}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start docker-registry: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	Eventually(t, 20*time.Second, "the registry answers on "+addr, func() error {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("docker-registry exited at start: %v (its output is above)", err)
		default:
		}
		resp, err := http.Get("http://" + addr + "/v2/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		return nil
	})
	return addr
}
