package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"testing"
	"time"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/internal/store"
)

// moveService answers a move and then streams its timeline as it is
// written, one step arriving late (written after a newer one).
type moveService struct{}

func (*moveService) Local(context.Context) (api.Local, error)   { return api.Local{}, nil }
func (*moveService) ForgetMounts(context.Context, string) error { return nil }
func (*moveService) SetMaintenance(context.Context, string, time.Duration, string) (api.Maintenance, error) {
	return api.Maintenance{}, nil
}
func (*moveService) EndMaintenance(context.Context, string) error { return nil }
func (*moveService) Doctor(context.Context) (api.Doctor, error)   { return doctorAnswer, nil }
func (*moveService) GrowVolume(context.Context, string, string) (api.Grow, error) {
	return api.Grow{}, nil
}
func (*moveService) ExtendVG(_ context.Context, devs []string) (api.VGExtend, error) {
	return api.VGExtend{VG: "san", Devices: devs, Host: "n1"}, nil
}

func (m *moveService) Status(context.Context) (api.Status, error) { return api.Status{}, nil }
func (m *moveService) Hosts(context.Context) ([]api.Host, error) {
	return []api.Host{{Name: "n1", Alive: true, Leader: true, Agent: true, LeaseAgeSeconds: 0.4, Apps: 1}, {Name: "n2", Fenced: true, FencedBy: "n1"}}, nil
}
func (m *moveService) Volumes(context.Context) ([]api.Volume, error) { return nil, nil }
func (m *moveService) Apps(context.Context) ([]api.App, error)       { return nil, nil }
func (m *moveService) Move(_ context.Context, app, to string) (api.Relocation, error) {
	return api.Relocation{ID: app + "-1", Kind: store.KindMove, From: "n1", To: to}, nil
}

// timeline is the move's steps in the order they are written: "claimed"
// (n2) before n1's "stopped" and "released", which land late.
func timeline(rel string) []api.Event {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ev := []api.Event{
		{At: at(0), Phase: "requested", Host: "n1"},
		{At: at(500), Phase: "claimed", Host: "n2"},
		{At: at(300), Phase: "stopped", Host: "n1", TookMS: 290},
		{At: at(400), Phase: "released", Host: "n1"},
		{At: at(700), Phase: "started", Host: "n2"},
		{At: at(710), Phase: "done", Host: "n2", TookMS: 710, App: "db"},
	}
	for i := range ev {
		ev[i].Relocation, ev[i].App, ev[i].Kind, ev[i].From, ev[i].To = rel, "db", store.KindMove, "n1", "n2"
	}
	return ev
}

func (m *moveService) Events(_ context.Context, f api.EventFilter) ([]api.Event, error) {
	return timeline(f.Relocation), nil
}

// FollowEvents lists the first step, then sends the others a few
// milliseconds apart, as the hosts write them, and then waits.
func (m *moveService) FollowEvents(ctx context.Context, f api.EventFilter, listed func() error, fn func(api.Event) error) error {
	for i, e := range timeline(f.Relocation) {
		if i == 1 {
			if err := listed(); err != nil {
				return err
			}
		}
		if i > 0 {
			time.Sleep(5 * time.Millisecond)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

func TestMoveFollowsTheTimeline(t *testing.T) {
	srv := httptest.NewServer(api.Handler(&moveService{}, api.Options{Token: "tok"}))
	defer srv.Close()
	f := &clientFlags{}
	cmd := moveCmd(f)
	f.bind(cmd)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"db", "--to", "n2", "--api", srv.URL, "--token", "tok"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, phase := range []string{"requested", "stopped", "released", "claimed", "started", "done"} {
		if n := strings.Count(got, "  "+phase+" "); n != 1 {
			t.Errorf("step %s printed %d times:\n%s", phase, n, got)
		}
	}
	if !strings.HasPrefix(got, "moving db from n1 to n2 (relocation db-1)\n") || !strings.HasSuffix(got, "moved db from n1 to n2 in 710ms\n") {
		t.Errorf("output:\n%s", got)
	}
}

func TestMoveNeedsTarget(t *testing.T) {
	cmd := moveCmd(&clientFlags{})
	cmd.SetArgs([]string{"db"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--to is required: name the host to move db to") {
		t.Fatalf("err = %v", err)
	}
}

func TestHostsTable(t *testing.T) {
	srv := httptest.NewServer(api.Handler(&moveService{}, api.Options{Token: "tok"}))
	defer srv.Close()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"hosts", "--api", srv.URL, "--token", "tok"}, []string{
			"HOST  STATE         LEASE RENEWED  LEADER  AGENT  APPS  VOLUMES  VERSION",
			"n1    alive         0.4s ago       yes     yes    1     0        -",
			"n2    fenced by n1  -              -       -      0     0        -"}},
		{[]string{"hosts", "--api", srv.URL, "--token", "tok", "--json"}, []string{`"fencedBy": "n1"`}},
	} {
		cmd := apiCmds()[1] // hosts
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs(tc.args[1:])
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("relocvol %v printed:\n%s\nwant a line %q", tc.args, out.String(), w)
			}
		}
	}
	cmd := apiCmds()[1]
	cmd.SetArgs([]string{"--api", srv.URL})
	cmd.SetOut(&bytes.Buffer{})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "missing or wrong bearer token") {
		t.Fatalf("without the token: %v", err)
	}
}

// TestClientEnvironment: the API commands read RELOCVOL_API and the
// plugin's RELOCVOL_API_TOKEN as the plugin reads its settings (flags
// win), and nothing else of the environment.
func TestClientEnvironment(t *testing.T) {
	srv := httptest.NewServer(api.Handler(&moveService{}, api.Options{Token: "tok"}))
	defer srv.Close()
	run := func(args ...string) (string, error) {
		cmd := apiCmds()[1] // hosts
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs(args)
		err := cmd.Execute()
		return out.String(), err
	}
	t.Setenv("RELOCVOL_API", srv.URL)
	t.Setenv("RELOCVOL_API_TOKEN", "tok")
	t.Setenv("RELOCVOL_JSON", "true") // not a setting of the CLI
	if out, err := run(); err != nil || !strings.Contains(out, "n2    fenced by n1") {
		t.Fatalf("from the environment: %v\n%s", err, out)
	}
	if _, err := run("--token", "wrong"); err == nil || !strings.Contains(err.Error(), "missing or wrong bearer token") {
		t.Fatalf("a flag must win over RELOCVOL_API_TOKEN: %v", err)
	}
	t.Setenv("RELOCVOL_API", "10.0.0.1:7480")
	if _, err := run(); err == nil || !strings.Contains(err.Error(), `--api (RELOCVOL_API) "10.0.0.1:7480" is not a URL of an API: use one such as http://10.0.0.1:7480`) {
		t.Fatalf("a bad RELOCVOL_API: %v", err)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in, want, err string
	}{
		{in: "", want: "0001-01-01T00:00:00Z"},
		{in: "10m", want: "2026-12-03T17:50:00Z"},
		{in: "2h", want: "2026-12-03T16:00:00Z"},
		{in: "2026-12-03T12:30:00Z", want: "2026-12-03T12:30:00Z"},
		{in: "2026-12-03T12:30:00.5+01:00", want: "2026-12-03T11:30:00.5Z"},
		{in: "-5m", err: "--since -5m: give a duration ago without a sign"},
		{in: "yesterday", err: `--since "yesterday": give a duration ago (10m, 2h) or a time`},
		{in: "2026-12-03", err: `--since "2026-12-03": give a duration ago`},
	} {
		got, err := parseSince(c.in, now)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("parseSince(%q): %v, want an error saying %q", c.in, err, c.err)
		case c.err == "" && (err != nil || got.UTC().Format(time.RFC3339Nano) != c.want):
			t.Errorf("parseSince(%q) = %s, %v; want %s", c.in, got.UTC().Format(time.RFC3339Nano), err, c.want)
		}
	}
}

// events --follow prints each event as the stream brings it, one line
// each, from --since on, until interrupted; --json one object a line.
func TestEventsFollow(t *testing.T) {
	srv := httptest.NewServer(api.Handler(&moveService{}, api.Options{Token: "tok", ReadToken: "read"}))
	defer srv.Close()
	for _, asJSON := range []bool{false, true} {
		f := &clientFlags{}
		cmd := eventsCmd(f)
		f.bind(cmd)
		var out bytes.Buffer
		cmd.SetOut(&out)
		args := []string{"--follow", "--since", "2026-11-22T12:00:00.350Z", "--relocation", "db-1", "--api", srv.URL, "--token", "read"} // the read-only token streams too
		if asJSON {
			args = append(args, "--json")
		}
		cmd.SetArgs(args)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond) // the interrupt
		err := cmd.ExecuteContext(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		var phases []string
		for _, l := range lines {
			if asJSON {
				var e api.Event
				if err := json.Unmarshal([]byte(l), &e); err != nil {
					t.Fatalf("--json line %q: %v", l, err)
				}
				phases = append(phases, e.Phase)
				continue
			}
			m := regexp.MustCompile(`^\S+  db  move n1->n2  \S+  (\w+) +on `).FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("line %q: want DATE  APP  KIND FROM->TO  TIME  PHASE on HOST …", l)
			}
			phases = append(phases, m[1])
		}
		// requested (12:00:00.000) and stopped (.300) are before --since.
		if got := strings.Join(phases, ","); got != "claimed,released,started,done" {
			t.Errorf("json %v: followed %s, want claimed,released,started,done:\n%s", asJSON, got, out.String())
		}
	}
}

// Without --token the CLI reads the token file (--token-file,
// RELOCVOL_API_TOKEN_FILE; by default the plugin's, root's): a refusal says
// which token was sent, or why there was none.
func TestTokenFile(t *testing.T) {
	srv := httptest.NewServer(api.Handler(&moveService{}, api.Options{Token: "tok", ReadToken: "read", TokenFile: "/state/api-token"}))
	defer srv.Close()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	full, read := write("api-token", "tok\n"), write("api-token-read", "read\n")
	run := func(args ...string) (string, error) {
		root := rootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(append(args, "--api", srv.URL))
		err := root.Execute()
		return out.String(), err
	}
	if out, err := run("hosts", "--token-file", full); err != nil || !strings.Contains(out, "n2    fenced by n1") {
		t.Fatalf("hosts with the token file: %v\n%s", err, out)
	}
	t.Setenv("RELOCVOL_API_TOKEN_FILE", read)
	if out, err := run("hosts"); err != nil || !strings.Contains(out, "n1") {
		t.Fatalf("hosts with RELOCVOL_API_TOKEN_FILE of the read-only token: %v\n%s", err, out)
	}
	_, err := run("maintenance", "on", "n1", "--for", "1m")
	if want := "the API at " + srv.URL + " refused the token of " + read + ": the read-only token"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("a change with the read-only token: %v, want %q", err, want)
	}
	if _, err := run("maintenance", "on", "n1", "--for", "1m", "--token", "tok"); err != nil {
		t.Fatalf("--token wins over the file: %v", err)
	}
	for file, says := range map[string]string{
		filepath.Join(dir, "none"): "does not exist: the plugin writes it when it starts on this host",
		dir:                        "no API token: read " + dir,
		write("empty", "\n"):       "is empty",
	} {
		_, err := run("hosts", "--token-file", file)
		if want := "the API at " + srv.URL + " needs a token, and this command has none: "; err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), says) {
			t.Errorf("--token-file %s: %v, want %q and %q", file, err, want, says)
		}
	}
}
