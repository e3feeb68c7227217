package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// recorder stands in for *testing.T so the skip/fail policy can be observed
// without ending the real test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()           {}
func (r *recorder) Skip(args ...any)  { r.skipped = fmt.Sprint(args...) }
func (r *recorder) Fatal(args ...any) { r.failed = fmt.Sprint(args...) }
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}

func TestUnmetPolicy(t *testing.T) {
	tests := []struct {
		name               string
		ci                 bool
		wantSkip, wantFail bool
	}{
		{name: "developer machine skips", ci: false, wantSkip: true},
		{name: "CI fails", ci: true, wantFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{}
			unmet(r, tt.ci, "needs root")
			if (r.skipped != "") != tt.wantSkip || (r.failed != "") != tt.wantFail {
				t.Fatalf("skipped=%q failed=%q, want skip=%v fail=%v", r.skipped, r.failed, tt.wantSkip, tt.wantFail)
			}
			if !strings.Contains(r.skipped+r.failed, "needs root") {
				t.Errorf("reason lost: %q", r.skipped+r.failed)
			}
		})
	}
}

func TestRequireCommands(t *testing.T) {
	t.Setenv("CI", "true") // make a wrong result fail instead of skipping

	r := &recorder{}
	RequireCommands(r, "sh")
	if r.skipped != "" || r.failed != "" {
		t.Errorf("sh is present but got skipped=%q failed=%q", r.skipped, r.failed)
	}

	r = &recorder{}
	RequireCommands(r, "sh", "relocvol-no-such-command")
	if !strings.Contains(r.failed, "relocvol-no-such-command") || strings.Contains(r.failed, "sh,") {
		t.Errorf("failed=%q, want it to name only the missing command", r.failed)
	}
}

func TestRepoRoot(t *testing.T) {
	t.Setenv("RELOCVOL_REPO", "")
	root := RepoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "internal", "testenv", "repo.go")); err != nil {
		t.Fatalf("RepoRoot = %s, not this repository: %v", root, err)
	}
	t.Setenv("RELOCVOL_REPO", "/somewhere/else")
	if got := RepoRoot(t); got != "/somewhere/else" {
		t.Fatalf("RepoRoot = %s, want $RELOCVOL_REPO", got)
	}
	t.Setenv("RELOCVOL_REPO", "")
	t.Chdir(t.TempDir())
	r := &recorder{}
	if got := RepoRoot(r); got != "" || !strings.Contains(r.failed, "set RELOCVOL_REPO") {
		t.Fatalf("outside the repository: %q, failed %q", got, r.failed)
	}
}

func TestEventually(t *testing.T) {
	calls := 0
	Eventually(t, 5*time.Second, "third call", func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	r := &recorder{}
	Eventually(r, 300*time.Millisecond, "never", func() error { return errors.New("still no") })
	if r.failed != "never: not within 300ms: still no" {
		t.Fatalf("failure %q", r.failed)
	}
}

func TestFreePortsBelowTheEphemeralRange(t *testing.T) {
	for range 20 {
		p := FreePorts(t, 2)
		if p < 1024 || p+1 >= ephemeralLow() {
			t.Fatalf("FreePorts = %d: want both ports in 1024-%d, outside the ephemeral range", p, ephemeralLow()-1)
		}
		if !portsFree(p, 2) {
			t.Fatalf("FreePorts = %d, but %d-%d cannot be listened on", p, p, p+1)
		}
	}
	// A port someone listens on is never handed out.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if portsFree(l.Addr().(*net.TCPAddr).Port, 1) {
		t.Fatalf("port %d is listened on, yet portsFree says free", l.Addr().(*net.TCPAddr).Port)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []time.Duration
		want time.Duration
	}{{nil, 0}, {[]time.Duration{3}, 3}, {[]time.Duration{5, 1, 3}, 3}, {[]time.Duration{4, 1, 3, 2}, 3}} {
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
