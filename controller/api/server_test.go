package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/doctor"
)

// fakeService is a fixed cluster for the handler tests.
type fakeService struct {
	moved [][2]string
	// changes counts accepted maintenance changes, grown the grows.
	changes, grown int
	// follow feeds FollowEvents; failFirst fails it before any event,
	// failLater once follow is closed.
	follow               chan Event
	failFirst, failLater error
}

func (f *fakeService) Local(context.Context) (Local, error) { return Local{Host: "a"}, nil }
func (f *fakeService) ForgetMounts(_ context.Context, v string) error {
	return Errorf(ErrNotFound, "host a counts no mount of volume %q", v)
}

func (f *fakeService) SetMaintenance(_ context.Context, h string, d time.Duration, r string) (Maintenance, error) {
	if h != "a" && h != "b" {
		return Maintenance{}, Errorf(ErrNotFound, "no host %q", h)
	}
	if d < 10*time.Second || d > 24*time.Hour {
		return Maintenance{}, Errorf(ErrInvalid, "maintenance of %s: use from 10s to 24h0m0s (e.g. 10m)", d)
	}
	f.changes++
	return Maintenance{Host: h, Until: time.Unix(0, 0).Add(d), By: "operator", Reason: r}, nil
}
func (f *fakeService) Doctor(context.Context) (Doctor, error) {
	return Doctor{Status: doctor.Warn, Hosts: []doctor.Report{{Host: "a", Checks: []doctor.Check{doctor.Warned("clock", "run NTP", "+0.900s off etcd's")}}}}, nil
}

func (f *fakeService) ExtendVG(_ context.Context, devs []string) (VGExtend, error) {
	if devs[0] != "/dev/mapper/mpathb" {
		return VGExtend{}, Errorf(ErrInvalid, "device %q refused", devs[0])
	}
	f.changes++
	return VGExtend{VG: "san", Devices: devs, Host: "a"}, nil
}

func (f *fakeService) GrowVolume(_ context.Context, v, size string) (Grow, error) {
	switch {
	case v != "db":
		return Grow{}, Errorf(ErrNotFound, "volume %q not found", v)
	case size == "1G":
		return Grow{Volume: v, Size: 2 << 30, SizeHuman: "2G", From: 1 << 30, FromHuman: "1G", By: "a", Filesystem: FSGrowing, Host: "b"}, nil
	case size != "2G":
		return Grow{}, Errorf(ErrInvalid, "grow volume %q: invalid size %q", v, size)
	}
	f.grown++
	return Grow{Volume: v, Size: 2 << 30, SizeHuman: "2G", From: 1 << 30, FromHuman: "1G", By: "a", Filesystem: FSGrown, Host: "a"}, nil
}

func (f *fakeService) EndMaintenance(_ context.Context, h string) error {
	if h != "a" && h != "b" {
		return Errorf(ErrNotFound, "no host %q", h)
	}
	f.changes++
	return nil
}

func (f *fakeService) Status(context.Context) (Status, error) {
	return Status{Host: "a", Leader: "a", Hosts: 2, HostsAlive: 1, Volumes: 1, Apps: 1}, nil
}
func (f *fakeService) Hosts(context.Context) ([]Host, error) {
	return []Host{{Name: "a", Alive: true, Leader: true}, {Name: "b", Fenced: true, FencedBy: "a"}}, nil
}
func (f *fakeService) Volumes(context.Context) ([]Volume, error) {
	return []Volume{{Name: "db", Owner: "a", OwnerAlive: true, Epoch: 4, SizeHuman: "1G"}}, nil
}
func (f *fakeService) Apps(context.Context) ([]App, error) {
	return []App{{Name: "db", Image: "postgres", Volumes: []string{"db"}, DesiredHost: "a", ActualHost: "a"}}, nil
}
func (f *fakeService) Events(_ context.Context, ef EventFilter) ([]Event, error) {
	return []Event{{App: "db", Phase: "done", Relocation: ef.Relocation, TookMS: int64(ef.Limit)}}, nil
}

// FollowEvents sends the listed event, then those a test feeds into
// follow (a nil channel: none), then what fail says, if anything.
func (f *fakeService) FollowEvents(ctx context.Context, ef EventFilter, listed func() error, fn func(Event) error) error {
	if f.failFirst != nil {
		return f.failFirst
	}
	ev, _ := f.Events(ctx, ef)
	for _, e := range ev {
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := listed(); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-f.follow:
			if !ok {
				return f.failLater
			}
			if err := fn(e); err != nil {
				return err
			}
		}
	}
}

func (f *fakeService) Move(_ context.Context, app, to string) (Relocation, error) {
	if app != "db" {
		return Relocation{}, Errorf(ErrNotFound, "no app %q", app)
	}
	if to == "dead" {
		return Relocation{}, Errorf(ErrInvalid, "host %q is not alive", to)
	}
	f.moved = append(f.moved, [2]string{app, to})
	return Relocation{ID: "db-1", Kind: "move", From: "a", To: to, Started: time.Unix(0, 0)}, nil
}

func do(t *testing.T, h http.Handler, method, path, token, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

func TestHandler(t *testing.T) {
	svc := &fakeService{}
	h := OnSocket(Handler(svc, Options{Token: "t"}))
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{name: "status", method: "GET", path: "/v1/status", code: 200, want: `"leader": "a"`},
		{name: "hosts", method: "GET", path: "/v1/hosts", code: 200, want: `"fencedBy": "a"`},
		{name: "volumes", method: "GET", path: "/v1/volumes", code: 200, want: `"epoch": 4`},
		{name: "apps", method: "GET", path: "/v1/apps", code: 200, want: `"actualHost": "a"`},
		{name: "one app", method: "GET", path: "/v1/apps/db", code: 200, want: `"desiredHost": "a"`},
		{name: "unknown app", method: "GET", path: "/v1/apps/web", code: 404, want: `"error": "no app \"web\"`},
		{name: "events with filter", method: "GET", path: "/v1/events?relocation=db-1&limit=7", code: 200, want: `"tookMs": 7`},
		{name: "events bad limit", method: "GET", path: "/v1/events?limit=lots", code: 400, want: `invalid limit \"lots\": use a number from 1 to 10000`},
		{name: "move", method: "POST", path: "/v1/apps/db/move", body: `{"to":"b"}`, code: 202, want: `"id": "db-1"`},
		{name: "move to a dead host", method: "POST", path: "/v1/apps/db/move", body: `{"to":"dead"}`, code: 400, want: `host \"dead\" is not alive`},
		{name: "move of an unknown app", method: "POST", path: "/v1/apps/web/move", body: `{"to":"b"}`, code: 404, want: `no app \"web\"`},
		{name: "move without target", method: "POST", path: "/v1/apps/db/move", body: `{}`, code: 400, want: `\"to\" is empty`},
		{name: "move with a typo", method: "POST", path: "/v1/apps/db/move", body: `{"host":"b"}`, code: 400, want: `unknown field \"host\"`},
		{name: "move not JSON", method: "POST", path: "/v1/apps/db/move", body: `b`, code: 400, want: `invalid move request`},
		{name: "doctor", method: "GET", path: "/v1/doctor", code: 200, want: `"status": "warn"`},
		{name: "grow", method: "POST", path: "/v1/volumes/db/grow", body: `{"size":"2G"}`, code: 200, want: `"filesystem": "grown"`},
		{name: "vg extend", method: "POST", path: "/v1/vg/extend", body: `{"devices":["/dev/mapper/mpathb"]}`, code: 200, want: `"vg": "san"`},
		{name: "grow, the filesystem follows", method: "POST", path: "/v1/volumes/db/grow", body: `{"size":"1G"}`, code: 202, want: `"filesystem": "growing"`},
		{name: "wrong method", method: "DELETE", path: "/v1/apps", code: 405, want: `method DELETE not allowed on /v1/apps`},
		{name: "unknown path", method: "GET", path: "/v2/x", code: 404, want: `no such endpoint GET /v2/x`},
		{name: "status page", method: "GET", path: "/", code: 200, want: `<title>relocvol</title>`},
		{name: "status page script", method: "GET", path: "/ui/api.js", code: 200, want: `/v1/events?follow=true`},
		{name: "missing page file", method: "GET", path: "/ui/app.js", code: 404, want: `no file /ui/app.js in the status page`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, h, tc.method, tc.path, "t", tc.body)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("%s %s: %d %s\nwant %d containing %s", tc.method, tc.path, code, body, tc.code, tc.want)
			}
			var e ErrorBody
			if code >= 400 && (json.Unmarshal([]byte(body), &e) != nil || e.Error == "") {
				t.Errorf("error body is not {\"error\": ...}: %s", body)
			}
		})
	}
	if len(svc.moved) != 1 || svc.moved[0] != [2]string{"db", "b"} {
		t.Errorf("moves %v, want exactly db to b", svc.moved)
	}
}

// The client turns the API's JSON errors back into their message.
func TestClientAgainstHandler(t *testing.T) {
	srv := httptest.NewServer(Handler(&fakeService{}, Options{Token: "t"}))
	defer srv.Close()
	ctx := context.Background()
	c := NewClient(srv.URL, "t")
	if s, err := c.Status(ctx); err != nil || s.Leader != "a" {
		t.Fatalf("status %+v %v", s, err)
	}
	if r, err := c.Move(ctx, "db", "b"); err != nil || r.To != "b" {
		t.Fatalf("move %+v %v", r, err)
	}
	_, err := c.Move(ctx, "db", "dead")
	if e, ok := err.(*Error); !ok || e.Code != 400 || !errors.Is(err, ErrInvalid) || e.Msg != `host "dead" is not alive` {
		t.Fatalf("move to a dead host: %#v", err)
	}
	if _, err := NewClient(srv.URL, "").Hosts(ctx); err == nil || !strings.Contains(err.Error(), "bearer token") {
		t.Fatalf("no token: %v", err)
	}
	if _, err := NewClient("http://127.0.0.1:1", "").Hosts(ctx); err == nil || !strings.Contains(err.Error(), "cannot reach the relocvol API at http://127.0.0.1:1") {
		t.Fatalf("unreachable: %v", err)
	}
}

// GET /v1/events?follow=true streams: the listed events at once, each new
// one as the service sends it, over one request; errors before the first
// event are ordinary error answers, later ones end the stream with one.
func TestFollowEvents(t *testing.T) {
	svc := &fakeService{follow: make(chan Event)}
	srv := httptest.NewServer(Handler(svc, Options{Token: "t"}))
	defer srv.Close()
	c := NewClient(srv.URL, "t")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan Event)
	errc := make(chan error, 1)
	go func() {
		errc <- c.FollowEvents(ctx, EventFilter{Relocation: "db-1"}, func(e Event) error {
			got <- e
			return nil
		})
	}()
	next := func() Event {
		t.Helper()
		select {
		case e := <-got:
			return e
		case err := <-errc:
			t.Fatalf("the stream ended: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("no event streamed in 10s")
		}
		return Event{}
	}
	if e := next(); e.Phase != "done" || e.Relocation != "db-1" {
		t.Fatalf("first (listed) event %+v", e)
	}
	for _, phase := range []string{"claimed", "started"} {
		svc.follow <- Event{Phase: phase, Relocation: "db-1", Error: "step " + phase}
		if e := next(); e.Phase != phase || e.Error != "step "+phase {
			t.Fatalf("streamed %+v, want phase %s with its step error", e, phase)
		}
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("a follower that stops: %v", err)
	}

	// An error later in the stream is its last line.
	svc = &fakeService{follow: make(chan Event), failLater: errors.New("etcd: compacted")}
	srv2 := httptest.NewServer(Handler(svc, Options{Token: "t"}))
	defer srv2.Close()
	close(svc.follow)
	err := NewClient(srv2.URL, "t").FollowEvents(context.Background(), EventFilter{}, func(Event) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "the event stream of "+srv2.URL+" failed: etcd: compacted") {
		t.Fatalf("a stream that fails: %v", err)
	}

	// Before the first event: the error's own status and kind.
	svc = &fakeService{failFirst: Errorf(ErrUnavailable, "etcd is unreachable")}
	srv3 := httptest.NewServer(Handler(svc, Options{Token: "t"}))
	defer srv3.Close()
	err = NewClient(srv3.URL, "t").FollowEvents(context.Background(), EventFilter{}, func(Event) error { return nil })
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "etcd is unreachable") {
		t.Fatalf("a stream that cannot start: %v", err)
	}
	if code, body := do(t, Handler(svc, Options{Token: "t"}), "GET", "/v1/events?follow=maybe", "t", ""); code != http.StatusBadRequest || !strings.Contains(body, `invalid follow \"maybe\"`) {
		t.Fatalf("follow=maybe: %d %s", code, body)
	}
}

// listsNothing is a cluster whose timeline is empty: its follow lists
// nothing, then waits for new events that do not come.
type listsNothing struct{ fakeService }

func (l *listsNothing) FollowEvents(ctx context.Context, _ EventFilter, listed func() error, _ func(Event) error) error {
	if err := listed(); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// A follower of an empty timeline gets the stream's headers at once (the
// status page shows it live), not when the first event comes.
func TestFollowAnEmptyTimelineAnswersAtOnce(t *testing.T) {
	srv := httptest.NewServer(Handler(&listsNothing{}, Options{Token: "t"}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/events?follow=true", nil)
	req.Header.Set("Authorization", "Bearer t")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("no answer to a follow of an empty timeline within 3s: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("answer %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
}

// vg extend writes to a device of the host: only the root-only socket
// serves it, not the network.
func TestExtendVGOnlyOnTheSocket(t *testing.T) {
	svc := &fakeService{}
	code, body := do(t, Handler(svc, Options{Token: "t"}), "POST", "/v1/vg/extend", "t", `{"devices":["/dev/mapper/mpathb"]}`)
	if code != http.StatusNotImplemented || !strings.Contains(body, "served only on the host's root-only API socket") || svc.changes != 0 {
		t.Fatalf("vg extend over the network: %d %s (changes %d); want 501 naming the socket, nothing done", code, body, svc.changes)
	}
}
