package sanlab

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/e2e/vmlab"
	"github.com/relocvol/relocvol/fencing/scsi3"
	"github.com/relocvol/relocvol/internal/doctor"
	"github.com/relocvol/relocvol/internal/testenv"
)

// doctorOn runs `relocvol doctor --json` on vm (through its plugin's API,
// which asks the other host through etcd) and returns its answer and exit
// status.
func (d *dockerLab) doctorOn(t *testing.T, vm string) (api.Doctor, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := d.lab.Exec(ctx, vm, "relocvol doctor --json")
	if err != nil {
		t.Fatalf("relocvol doctor on %s: %v", vm, err)
	}
	var out api.Doctor
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
		t.Fatalf("relocvol doctor --json on %s: exit %d, %v:\n%s", vm, r.ExitCode, err, r.Combined())
	}
	return out, r.ExitCode
}

// findings lists a doctor answer's checks, one line each, for the log and
// for the assertions: "HOST STATUS NAME: DETAIL".
func findings(d api.Doctor) []string {
	var out []string
	for _, r := range d.Hosts {
		for _, c := range r.Checks {
			out = append(out, fmt.Sprintf("%s %s %s: %s", r.Host, c.Status, c.Name, c.Detail))
		}
	}
	return out
}

// wantFinding fails t unless a line of findings starts with prefix and
// holds every fragment.
func wantFinding(t *testing.T, lines []string, prefix string, fragments ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		ok := true
		for _, f := range fragments {
			ok = ok && strings.Contains(l, f)
		}
		if ok {
			return
		}
	}
	t.Errorf("no finding %q with %q in:\n%s", prefix, fragments, strings.Join(lines, "\n"))
}

// syncClocks sets each host VM's clock from the physical machine's, which
// etcd's is, as NTP keeps a host's (the VMs start from their RTC, in whole
// seconds, and an emulated clock drifts; a date set over ssh is off by the
// second ssh takes under emulation): a loop in the VM, in bash alone,
// reads the Date of the HTTP answers of the test's registry (etcd answers
// TLS only) until its second changes and sets the clock to it then, within
// a poll or two of the tick.
func (d *dockerLab) syncClocks(t *testing.T) {
	t.Helper()
	script := fmt.Sprintf(`get() {
	exec 3<>/dev/tcp/%s/%s || return 1
	printf 'GET /v2/ HTTP/1.0\r\nHost: registry\r\n\r\n' >&3
	DATE=
	local line
	while IFS= read -r line <&3; do
		line=${line%%$'\r'}
		[[ $line == Date:* ]] && DATE=${line#Date: }
		[[ -z $line ]] && break
	done
	exec 3<&-
}
get; first=$DATE
for i in $(seq 1000); do
	get
	if [[ -n $DATE && $DATE != "$first" ]]; then date -s "$DATE" >/dev/null; exit 0; fi
done
exit 1`, vmlab.HostGateway, d.regPort)
	for _, h := range d.lab.Hosts {
		d.lab.MustRun(t, h, script)
	}
}

// doctorSteps runs relocvol doctor through the plugins on the two host VMs
// against the correct setup, then against three broken ones, each undone
// after: a VG with auto-activation on, a host not registered, multipathd
// without the reservation key. The VG must be quiet: no plugin changes its
// metadata meanwhile.
func doctorSteps(t *testing.T, d *dockerLab, step func(string, func(*testing.T))) {
	a, b := "hostA", "hostB"
	healthy := d.healthy

	step("doctor: the correct setup passes", func(t *testing.T) {
		healthy(t, a)
	})

	step("doctor: a VG with auto-activation on", func(t *testing.T) {
		d.lab.MustRun(t, a, "vgchange --setautoactivation y "+dockerVG)
		doc, code := d.doctorOn(t, b)
		lines := findings(doc)
		if code != 1 || doc.Status != doctor.Fail {
			t.Errorf("relocvol doctor on %s: exit %d, %s; want 1, fail", b, code, doc.Status)
		}
		for _, h := range []string{a, b} {
			wantFinding(t, lines, h+" fail vg auto-activation: ", dockerVG+" has auto-activation on")
		}
		d.lab.MustRun(t, a, "vgchange --setautoactivation n "+dockerVG)
	})

	// B's key removed from the LUN by hand: B's own doctor finds it at once
	// (its plugin notices within 5 s and rejoins through its clean-up,
	// which registers it again: the test reads the doctor in that window,
	// and tries again should it have missed it).
	step("doctor: a host not registered", func(t *testing.T) {
		keyB := fmt.Sprintf("0x%x", scsi3.KeyFor(b))
		lun := d.lab.LUN(t, b)
		found := false
		for attempt := 1; attempt <= 5 && !found; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			// Through every path of B's map (mpathpersist), as a storage
			// admin clearing B's registrations would.
			r, err := d.lab.Exec(ctx, b, fmt.Sprintf("mpathpersist --out --register --param-rk=%s --param-sark=0 %s >/dev/null && relocvol doctor --json", keyB, lun))
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			var doc api.Doctor
			if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil {
				t.Fatalf("attempt %d: %v\n%s", attempt, err, r.Combined())
			}
			lines := findings(doc)
			t.Logf("attempt %d: exit %d:\n%s", attempt, r.ExitCode, strings.Join(lines, "\n"))
			for _, l := range lines {
				// B's own check, or its peer's (whichever ran in the
				// seconds before B registered again: through multipath
				// B's plugin rejoins within one check period).
				found = found || (strings.HasPrefix(l, b+" fail pr /dev/") && strings.Contains(l, "this host's key "+keyB+" is not registered on this path")) ||
					(strings.HasPrefix(l, a+" fail pr /dev/") && strings.Contains(l, "live host(s) hostB ("+keyB+") not registered on this path"))
			}
			if found && (r.ExitCode != 1 || doc.Status != doctor.Fail) {
				t.Errorf("exit %d, %s; want 1, fail", r.ExitCode, doc.Status)
			}
			// B registers again by itself.
			testenv.Eventually(t, 3*time.Minute, "hostB registered again", func() error {
				if !slices.Contains(keysOn(t, d.lab, a), scsi3.KeyFor(b)) {
					return fmt.Errorf("hostB's key not on the LUN")
				}
				return nil
			})
		}
		if !found {
			t.Fatal("in 5 attempts, no doctor check found hostB's key missing")
		}
		// Its key gone, hostB self-fenced and rejoined: by design, and not
		// what the test's last step looks for.
		d.fencedOnPurpose[b] = time.Now()
		healthy(t, b)
	})

	// multipathd without a reservation_key (the line `relocvol host key`
	// prints taken out of A's /etc/multipath.conf): a path it adds later
	// would not be registered. The doctor fails saying what to write; with
	// the line back, multipathd has the key again (its prkeys file).
	step("doctor: multipathd without the reservation key", func(t *testing.T) {
		d.lab.MustRun(t, a, "cp /etc/multipath.conf /root/multipath.conf.orig && sed -i '/reservation_key/d' /etc/multipath.conf && multipathd reconfigure")
		restored := false
		restore := func() {
			if !restored {
				restored = true
				d.lab.MustRun(t, a, "cp /root/multipath.conf.orig /etc/multipath.conf && multipathd reconfigure")
			}
		}
		t.Cleanup(restore)
		doc, code := d.doctorOn(t, a)
		lines := findings(doc)
		t.Logf("relocvol doctor on %s, exit %d:\n%s", a, code, strings.Join(lines, "\n"))
		if code != 1 || doc.Status != doctor.Fail {
			t.Errorf("exit %d, %s; want 1, fail", code, doc.Status)
		}
		wantFinding(t, lines, a+" fail multipath: ", "multipathd has no reservation key for /dev/dm-")
		for _, r := range doc.Hosts {
			for _, c := range r.Checks {
				if r.Host == a && c.Name == "multipath" && (!strings.Contains(c.Fix, "reservation_key file") || !strings.Contains(c.Fix, "relocvol host key")) {
					t.Errorf("the multipath check's fix on %s does not say what to write: %q", a, c.Fix)
				}
			}
		}
		wantFinding(t, lines, b+" pass multipath")
		restore()
	})

	step("doctor: healthy again", func(t *testing.T) { healthy(t, a) })
}

// healthy waits (2 minutes at most) until relocvol doctor asked on vm
// passes, every check of both hosts there.
func (d *dockerLab) healthy(t *testing.T, vm string) {
	a, b := "hostA", "hostB"
	t.Helper()
	var doc api.Doctor
	var code int
	// A host that rejoined a moment ago may still be settling.
	var took time.Duration
	// The host VMs' clocks drift under emulation: set them as NTP would
	// (the doctor warns past half a second; a filtered run skips the
	// earlier steps).
	d.syncClocks(t)
	testenv.Eventually(t, 2*time.Minute, "relocvol doctor passes on "+vm, func() error {
		start := time.Now()
		doc, code = d.doctorOn(t, vm)
		took = time.Since(start)
		if code != 0 || doc.Status != doctor.Pass {
			return fmt.Errorf("exit %d, %s:\n%s", code, doc.Status, strings.Join(findings(doc), "\n"))
		}
		return nil
	})
	lines := findings(doc)
	t.Logf("BENCHMARK relocvol doctor on the VM lab (2 hosts, lvm + scsi3, asked on %s): %s", vm, took.Round(10*time.Millisecond))
	t.Logf("relocvol doctor on %s:\n%s", vm, strings.Join(lines, "\n"))
	for _, h := range []string{a, b} {
		for _, name := range []string{"etcd", "etcd access", "lease", "clock", "storage identity", "vg", "vg auto-activation", "pv /dev/", "lvm devices", "pr /dev/", "multipath", "online grow", "docker", "settings"} {
			wantFinding(t, lines, h+" pass "+name)
		}
	}
	// Each host once per path (I_T nexus) of its map, or more: a path
	// that came back as a new iSCSI session leaves its old nexus's
	// registration behind (the same key) until the host is fenced.
	wantFinding(t, lines, a+" pass pr /dev/", "registered: hostA, hostA", "hostB, hostB", "type 5 reservation held", "APTPL on", "PERSISTENT RESERVE IN and OUT answered")
}
