// Package doctor is relocvol's self-check (`relocvol doctor`, GET
// /v1/doctor): the verdicts on what each host finds about its etcd, its
// liveness, its clock, its storage and fencing, its Docker engine and its
// settings, each a pass, a warning or a failure with what to do. The
// verdicts are pure functions of what was measured; the packages that own
// the storage (backends/lvm, fencing/scsi3) judge their own findings with
// this package's types, and the plugin gathers the measurements.
package doctor

import (
	"fmt"
	"sort"
	"time"
)

// Status is a check's verdict.
type Status string

// The verdicts, from best to worst.
const (
	Pass Status = "pass"
	Warn Status = "warn"
	Fail Status = "fail"
)

// rank orders the verdicts, worst last.
func (s Status) rank() int {
	switch s {
	case Pass:
		return 0
	case Warn:
		return 1
	}
	return 2
}

// Check is one finding about one host: Fix says what to do about a
// warning or a failure.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Passed, Warned and Failed make checks.
func Passed(name, detail string, a ...any) Check {
	return Check{Name: name, Status: Pass, Detail: fmt.Sprintf(detail, a...)}
}

// Warned is a warning with what to do.
func Warned(name, fix, detail string, a ...any) Check {
	return Check{Name: name, Status: Warn, Detail: fmt.Sprintf(detail, a...), Fix: fix}
}

// Failed is a failure with what to do.
func Failed(name, fix, detail string, a ...any) Check {
	return Check{Name: name, Status: Fail, Detail: fmt.Sprintf(detail, a...), Fix: fix}
}

// Settings are the plugin settings every host of a cluster must share
// (and its version, which should be the same).
type Settings struct {
	Backend  string `json:"backend"`
	VG       string `json:"vg,omitempty"`
	Fencing  string `json:"fencing"`
	Prefix   string `json:"etcdPrefix"`
	Cluster  string `json:"cluster"`
	LeaseTTL string `json:"leaseTTL"`
	Version  string `json:"version"`
}

// Report is one host's checks.
type Report struct {
	Host     string    `json:"host"`
	At       time.Time `json:"at"`
	Settings Settings  `json:"settings"`
	Checks   []Check   `json:"checks"`
}

// Worst is the worst verdict of checks (Pass for none).
func Worst(checks []Check) Status {
	w := Pass
	for _, c := range checks {
		if c.Status.rank() > w.rank() {
			w = c.Status
		}
	}
	return w
}

// ExitCode is `relocvol doctor`'s exit status for a verdict: 0 only when
// everything passed, 2 for warnings only, 1 for any failure.
func ExitCode(s Status) int {
	switch s {
	case Pass:
		return 0
	case Warn:
		return 2
	}
	return 1
}

// Consistency adds to each report a check that its host's settings are
// the cluster's: the same backend, VG, fencing, etcd prefix, cluster
// identity and lease TTL as most hosts (ties: the first host's in name
// order), and the same version (a warning only: an upgrade goes host by
// host). A report without settings (a host that did not answer) is left
// out.
func Consistency(reports []Report) {
	var sorted []Report
	for _, r := range reports {
		if r.Settings != (Settings{}) {
			sorted = append(sorted, r)
		}
	}
	if len(sorted) == 0 {
		return
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Host < sorted[j].Host })
	fields := []struct {
		name, fix string
		get       func(Settings) string
		status    Status
	}{
		{"backend", "set RELOCVOL_BACKEND the same on every host (docker plugin set relocvol RELOCVOL_BACKEND=...)", func(s Settings) string { return s.Backend }, Fail},
		{"VG", "set RELOCVOL_LVM_VG to the shared VG on every host", func(s Settings) string { return s.VG }, Fail},
		{"fencing", "use the same fencing on every host (scsi3 with lvm)", func(s Settings) string { return s.Fencing }, Fail},
		{"etcd prefix", "set RELOCVOL_ETCD_PREFIX the same on every host", func(s Settings) string { return s.Prefix }, Fail},
		{"cluster identity", "every host must use the same etcd and storage: a host with another cluster's identity was set up against another etcd; point it at this cluster's", func(s Settings) string { return s.Cluster }, Fail},
		{"lease TTL", "set RELOCVOL_LEASE_TTL the same on every host: the grace peers wait is derived from their own", func(s Settings) string { return s.LeaseTTL }, Fail},
		{"version", "upgrade every host to the same relocvol (docker plugin upgrade), one at a time", func(s Settings) string { return s.Version }, Warn},
	}
	for i := range reports {
		if reports[i].Settings == (Settings{}) {
			continue
		}
		var diffs []Check
		for _, f := range fields {
			want := majority(sorted, f.get)
			if got := f.get(reports[i].Settings); got != want {
				c := Check{Name: "settings", Status: f.status, Fix: f.fix,
					Detail: fmt.Sprintf("%s is %q here, %q on most hosts", f.name, got, want)}
				diffs = append(diffs, c)
			}
		}
		if len(diffs) == 0 {
			s := reports[i].Settings
			reports[i].Checks = append(reports[i].Checks, Passed("settings", "the cluster's: backend %s, fencing %s, etcd prefix %s, lease TTL %s, version %s (%d host(s) compared)",
				s.Backend, s.Fencing, s.Prefix, s.LeaseTTL, s.Version, len(sorted)))
		}
		reports[i].Checks = append(reports[i].Checks, diffs...)
	}
}

// majority is the value of get most reports have; ties go to the first
// report's (in the order given) among the most common.
func majority(reports []Report, get func(Settings) string) string {
	count := map[string]int{}
	best, n := "", 0
	for _, r := range reports {
		v := get(r.Settings)
		count[v]++
		if count[v] > n {
			best, n = v, count[v]
		}
	}
	return best
}
