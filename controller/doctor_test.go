package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/doctor"
	"github.com/relocvol/relocvol/internal/testenv"
)

// relocvol doctor on one host asks every live host through etcd: each
// host's controller answers with its own checks, the settings are compared
// across them, and a live host that does not answer is reported as such.
func TestDoctorAsksEveryLiveHost(t *testing.T) {
	st, ctx := testenv.Store(t, "/test")
	report := func(host, vg string, extra ...doctor.Check) Diagnoser {
		return func(context.Context) doctor.Report {
			return doctor.Report{Host: host, Settings: doctor.Settings{Backend: "lvm", VG: vg, Fencing: "scsi3", Prefix: "/test", Cluster: "c1", LeaseTTL: "3s", Version: "t"},
				Checks: append([]doctor.Check{doctor.Passed("etcd", "fine on %s", host)}, extra...)}
		}
	}
	hosts := map[string]Diagnoser{
		"a": report("a", "san"),
		"b": report("b", "san", doctor.Warned("clock", "run NTP", "+0.9s")),
		"c": report("c", "other"),
	}
	var ctls []*Controller
	var stops []context.CancelFunc
	for _, h := range []string{"a", "b", "c"} {
		hb := newHeartbeat(t, st, h)
		if err := hb.Start(ctx); err != nil {
			t.Fatal(err)
		}
		c := New(Options{Host: h, Store: st, Beat: hb, Fencer: &recordingFencer{}, Log: quietLog(), Diagnose: hosts[h]})
		rctx, cancel := context.WithCancel(ctx)
		t.Cleanup(cancel)
		go c.answerDoctor(rctx)
		ctls, stops = append(ctls, c), append(stops, cancel)
	}
	time.Sleep(200 * time.Millisecond) // the answerers watch from now on
	d, err := ctls[1].Doctor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != doctor.Fail || len(d.Hosts) != 3 {
		t.Fatalf("doctor: status %s, %d hosts: %+v", d.Status, len(d.Hosts), d.Hosts)
	}
	want := map[string][]string{
		"a": {"pass etcd: fine on a", "pass settings: the cluster's"},
		"b": {"pass etcd: fine on b", "warn clock: +0.9s", "pass settings: the cluster's"},
		"c": {"pass etcd: fine on c", `fail settings: VG is "other" here, "san" on most hosts`},
	}
	for _, r := range d.Hosts {
		var got []string
		for _, c := range r.Checks {
			got = append(got, string(c.Status)+" "+c.Name+": "+c.Detail)
		}
		if len(got) != len(want[r.Host]) {
			t.Fatalf("%s: %q, want %q", r.Host, got, want[r.Host])
		}
		for i, w := range want[r.Host] {
			if !strings.HasPrefix(got[i], w) {
				t.Errorf("%s check %d: %q, want %q", r.Host, i, got[i], w)
			}
		}
	}

	// c's controller stops answering; c stays alive (its lease).
	stops[2]()
	ctls[0].doctorWait = time.Second
	d, err = ctls[0].Doctor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var c doctor.Report
	for _, r := range d.Hosts {
		if r.Host == "c" {
			c = r
		}
	}
	if d.Status != doctor.Fail || len(c.Checks) == 0 || c.Checks[0].Name != "answer" || !strings.Contains(c.Checks[0].Detail, "host c is alive but sent no report within 1s") {
		t.Fatalf("a host that does not answer: status %s, its report %+v", d.Status, c)
	}
}
