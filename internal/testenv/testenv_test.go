package testenv

import (
	"fmt"
	"strings"
	"testing"
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
