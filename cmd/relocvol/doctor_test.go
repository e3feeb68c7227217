package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/internal/doctor"
)

// doctorAnswer is what moveService's cluster says of itself.
var doctorAnswer = api.Doctor{Status: doctor.Fail, Hosts: []doctor.Report{
	{Host: "n1", Settings: doctor.Settings{Backend: "lvm", Fencing: "scsi3", Version: "1.0"}, Checks: []doctor.Check{
		doctor.Passed("etcd", "http://e1:2379 answers in 2ms"),
		doctor.Failed("vg auto-activation", "vgchange --setautoactivation n san", "san has auto-activation on"),
	}},
	{Host: "n2", Settings: doctor.Settings{Backend: "lvm", Fencing: "scsi3", Version: "1.0"}, Checks: []doctor.Check{
		doctor.Warned("clock", "run NTP", "+0.900s off etcd's"),
	}},
}}

// relocvol doctor prints each host's checks with what to do, then a
// summary, and exits 1 on a failure; --json prints the API's answer.
func TestDoctorCommand(t *testing.T) {
	srv := httptest.NewServer(api.Handler(&moveService{}, api.Options{Token: "tok"}))
	defer srv.Close()
	run := func(args ...string) (string, error) {
		root := rootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(append(args, "--api", srv.URL, "--token", "tok"))
		err := root.Execute()
		return out.String(), err
	}
	out, err := run("doctor")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 || ee.msg != "" {
		t.Fatalf("relocvol doctor with a failure: err %v, want exit 1 and no extra message", err)
	}
	for _, want := range []string{
		"HOST n1 (lvm, scsi3 fencing, relocvol 1.0)",
		"  PASS  etcd                http://e1:2379 answers in 2ms",
		"  FAIL  vg auto-activation  san has auto-activation on",
		"fix: vgchange --setautoactivation n san",
		"  WARN  clock  +0.900s off etcd's",
		"2 host(s), 3 check(s): 1 passed, 1 warning(s), 1 failure(s): FAIL",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("relocvol doctor printed\n%s\nwant a line with %q", out, want)
		}
	}
	out, err = run("doctor", "--json")
	var d api.Doctor
	if !errors.As(err, &ee) || ee.code != 1 || json.Unmarshal([]byte(out), &d) != nil || len(d.Hosts) != 2 || d.Status != doctor.Fail {
		t.Fatalf("relocvol doctor --json: %v\n%s", err, out)
	}
}
