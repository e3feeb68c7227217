package doctor

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEtcd(t *testing.T) {
	renew := 833 * time.Millisecond
	for _, tc := range []struct {
		name    string
		latency time.Duration
		err     error
		want    Status
		says    string
	}{
		{name: "fast", latency: 2 * time.Millisecond, want: Pass, says: "answers in 2ms"},
		{name: "slow", latency: 500 * time.Millisecond, want: Warn, says: "over half a lease renewal's 833ms"},
		{name: "too slow", latency: 900 * time.Millisecond, want: Fail, says: "longer than a lease renewal may take"},
		{name: "down", err: errors.New("context deadline exceeded"), want: Fail, says: "does not answer: context deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Etcd("http://e1:2379", tc.latency, tc.err, renew)
			check(t, c, tc.want, tc.says)
		})
	}
}

func TestLeaseSlack(t *testing.T) {
	cutoff, renew := 3250*time.Millisecond, 833*time.Millisecond
	for _, tc := range []struct {
		name   string
		alive  bool
		maxGap time.Duration
		want   Status
		says   string
	}{
		{name: "healthy", alive: true, maxGap: 900 * time.Millisecond, want: Pass, says: "2.35s of slack left to the 3.25s cut-off"},
		{name: "close", alive: true, maxGap: 2500 * time.Millisecond, want: Warn, says: "750ms of slack left"},
		{name: "crossed", alive: true, maxGap: 4 * time.Second, want: Fail, says: "passed the 3.25s cut-off"},
		{name: "cut off now", alive: false, maxGap: time.Second, want: Fail, says: "no current lease"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check(t, LeaseSlack(tc.alive, tc.maxGap, cutoff, renew), tc.want, tc.says)
		})
	}
}

func TestClock(t *testing.T) {
	for _, tc := range []struct {
		name        string
		offset, unc time.Duration
		err         error
		want        Status
		says        string
	}{
		{name: "in step", offset: 20 * time.Millisecond, unc: 5 * time.Millisecond, want: Pass, says: "+0.020s off etcd's (±0.005s)"},
		{name: "behind a little", offset: -300 * time.Millisecond, unc: 5 * time.Millisecond, want: Pass},
		{name: "maybe within: the uncertainty counts for the host", offset: 600 * time.Millisecond, unc: 200 * time.Millisecond, want: Pass},
		{name: "off", offset: -2 * time.Second, unc: 10 * time.Millisecond, want: Warn, says: "-2.000s off etcd's"},
		{name: "far off", offset: time.Minute, unc: 10 * time.Millisecond, want: Fail, says: "maintenance deadlines end that much early or late"},
		{name: "cannot tell", err: errors.New("no Date header"), want: Warn, says: "cannot compare this host's clock with etcd's: no Date header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check(t, Clock(tc.offset, tc.unc, tc.err), tc.want, tc.says)
		})
	}
}

func TestDocker(t *testing.T) {
	check(t, Docker("", "", nil), Pass, "serves volumes but runs no relocated apps")
	check(t, Docker("unix:///run/docker.sock", "20.10.24", nil), Pass, "engine 20.10.24 answers at unix:///run/docker.sock")
	check(t, Docker("unix:///run/docker.sock", "", errors.New("connection refused")), Fail, "does not answer: connection refused")
}

func TestWorstAndExitCode(t *testing.T) {
	for _, tc := range []struct {
		checks []Check
		want   Status
		code   int
	}{
		{nil, Pass, 0},
		{[]Check{{Status: Pass}, {Status: Pass}}, Pass, 0},
		{[]Check{{Status: Pass}, {Status: Warn}}, Warn, 2},
		{[]Check{{Status: Fail}, {Status: Warn}, {Status: Pass}}, Fail, 1},
	} {
		if got := Worst(tc.checks); got != tc.want || ExitCode(got) != tc.code {
			t.Errorf("Worst(%v) = %s (exit %d), want %s (exit %d)", tc.checks, got, ExitCode(got), tc.want, tc.code)
		}
	}
}

func TestConsistency(t *testing.T) {
	base := Settings{Backend: "lvm", VG: "san", Fencing: "scsi3", Prefix: "/relocvol", Cluster: "c1", LeaseTTL: "5s", Version: "1.0"}
	with := func(host string, f func(*Settings)) Report {
		s := base
		if f != nil {
			f(&s)
		}
		return Report{Host: host, Settings: s}
	}
	reports := []Report{
		with("a", nil),
		with("b", func(s *Settings) { s.VG = "other"; s.Version = "1.1" }),
		with("c", nil),
		with("d", func(s *Settings) { s.Cluster = "c2" }),
	}
	Consistency(reports)
	want := map[string][]string{
		"a": {"pass: the cluster's: backend lvm, fencing scsi3, etcd prefix /relocvol, lease TTL 5s, version 1.0 (4 host(s) compared)"},
		"b": {`fail: VG is "other" here, "san" on most hosts`, `warn: version is "1.1" here, "1.0" on most hosts`},
		"c": {"pass: the cluster's"},
		"d": {`fail: cluster identity is "c2" here, "c1" on most hosts`},
	}
	for _, r := range reports {
		var got []string
		for _, c := range r.Checks {
			got = append(got, string(c.Status)+": "+c.Detail)
		}
		if len(got) != len(want[r.Host]) {
			t.Fatalf("%s: checks %q, want %q", r.Host, got, want[r.Host])
		}
		for i, w := range want[r.Host] {
			if !strings.HasPrefix(got[i], w) {
				t.Errorf("%s: check %d is %q, want %q", r.Host, i, got[i], w)
			}
		}
	}
	// A host that did not answer has no settings: left out of the comparison.
	silent := []Report{with("a", nil), {Host: "z", Checks: []Check{Failed("answer", "look", "no report")}}}
	Consistency(silent)
	if len(silent[1].Checks) != 1 || silent[0].Checks[0].Status != Pass || !strings.Contains(silent[0].Checks[0].Detail, "(1 host(s) compared)") {
		t.Errorf("a silent host: %+v / %+v", silent[0].Checks, silent[1].Checks)
	}
	// Two hosts that differ: the first one's settings are the cluster's.
	two := []Report{with("b", func(s *Settings) { s.Backend = "loop" }), with("a", nil)}
	Consistency(two)
	if two[0].Checks[0].Status != Fail || two[1].Checks[0].Status != Pass {
		t.Errorf("a tie goes to the first host by name: %+v / %+v", two[0].Checks, two[1].Checks)
	}
}

func check(t *testing.T, c Check, want Status, says string) {
	t.Helper()
	if c.Status != want || !strings.Contains(c.Detail, says) {
		t.Fatalf("check %+v, want %s saying %q", c, want, says)
	}
	if want != Pass && c.Fix == "" {
		t.Fatalf("check %+v: a %s without what to do", c, want)
	}
}
