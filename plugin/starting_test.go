package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
)

// readyDriver answers List with one volume and counts its calls.
type readyDriver struct {
	volume.Driver
	lists int
}

func (r *readyDriver) List() (*volume.ListResponse, error) {
	r.lists++
	return &volume.ListResponse{Volumes: []*volume.Volume{{Name: "db"}}}, nil
}

// TestStartingAnswersAtOnce serves Starting on a real unix socket, as the
// plugin does from its first moment: the socket accepts at once (Docker
// disables a plugin whose socket is not there within about 12 s), a
// request before Ready is refused after the wait with what the host waits
// for; a request waiting when Ready comes is served, and every one after.
func TestStartingAnswersAtOnce(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "relocvol.sock")
	s := NewStarting("node-a", 200*time.Millisecond, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, sock, s) }()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	call := func(method string, req any) map[string]any {
		t.Helper()
		body, _ := json.Marshal(req)
		var resp *http.Response
		var err error
		for range 50 { // the socket appears as soon as Serve listens
			if resp, err = client.Post("http://plugin/"+method, "application/json", bytes.NewReader(body)); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		defer resp.Body.Close()
		out := map[string]any{}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s: decode: %v", method, err)
		}
		return out
	}
	errOf := func(out map[string]any) string { s, _ := out["Err"].(string); return s }

	// Capabilities do not wait.
	if got := call("VolumeDriver.Capabilities", struct{}{}); !strings.Contains(mustJSON(t, got), `"Scope":"global"`) {
		t.Fatalf("capabilities while starting: %v", got)
	}
	s.Step("connecting to etcd at http://10.0.0.1:2379")
	for _, c := range []struct {
		method string
		req    any
		want   []string
	}{
		{"VolumeDriver.Create", volume.CreateRequest{Name: "db"}, []string{`cannot create volume "db" on host node-a`, "still starting (connecting to etcd at http://10.0.0.1:2379, for ", "try again in a moment"}},
		{"VolumeDriver.Mount", volume.MountRequest{Name: "db", ID: "c1"}, []string{`cannot mount volume "db" on host node-a`, "still starting"}},
		{"VolumeDriver.List", struct{}{}, []string{"cannot list volumes on host node-a", "still starting"}},
	} {
		got := errOf(call(c.method, c.req))
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s while starting: %q, want it to say %q", c.method, got, w)
			}
		}
	}

	// A request waiting when the driver becomes ready is served by it.
	d := &readyDriver{}
	s.wait = 5 * time.Second
	go func() {
		time.Sleep(50 * time.Millisecond)
		s.Ready(d)
	}()
	if got := call("VolumeDriver.List", struct{}{}); errOf(got) != "" || !strings.Contains(mustJSON(t, got), `"Name":"db"`) {
		t.Fatalf("list while becoming ready: %v", got)
	}
	if got := call("VolumeDriver.List", struct{}{}); errOf(got) != "" || d.lists != 2 {
		t.Fatalf("list once ready: %v (driver saw %d lists)", got, d.lists)
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestStartingAfterAFailedAttempt: once a start-up attempt failed, requests
// are refused at once with its reason (Docker makes several calls per
// command, and each would wait), until the driver is ready.
func TestStartingAfterAFailedAttempt(t *testing.T) {
	s := NewStarting("node-a", time.Hour, nil)
	s.Step("connecting to etcd at http://10.0.0.1:2379")
	s.Failed(errors.New("etcd at [http://10.0.0.1:2379] does not answer: context deadline exceeded"), 10*time.Second)
	answer := make(chan error, 1)
	go func() { answer <- s.Remove(&volume.RemoveRequest{Name: "db"}) }()
	var err error
	select {
	case err = <-answer:
	case <-time.After(30 * time.Second): // it would wait the hour
		t.Fatal("remove after a failed attempt waits for the start-up; want it refused at once")
	}
	if !errors.Is(err, ErrStarting) {
		t.Fatalf("remove after a failed attempt: %v, want ErrStarting", err)
	}
	for _, w := range []string{`cannot remove volume "db" on host node-a`, "its last attempt failed: etcd at [http://10.0.0.1:2379] does not answer", "tries again every 10s by itself"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("remove after a failed attempt: %q, want it to say %q", err, w)
		}
	}
	d := &readyDriver{}
	s.Ready(d)
	if r, err := s.List(); err != nil || len(r.Volumes) != 1 || d.lists != 1 {
		t.Fatalf("list once ready: %+v %v", r, err)
	}
}
