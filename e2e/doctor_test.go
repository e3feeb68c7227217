package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/internal/doctor"
	"github.com/relocvol/relocvol/internal/testenv"
	"github.com/relocvol/relocvol/internal/testenv/browser"
)

// checkDoctor runs relocvol doctor against the managed plugin's API (base):
// both hosts of the test answer (host B, a relocvol without an API, through
// etcd), with the checks a loop cluster on one machine warrants (fencing
// none is no production setup: a warning), and one failure the doctor must
// find: host B runs with a lease TTL of 3s, the managed plugin with 5s.
func checkDoctor(t *testing.T, bin, base string) {
	t.Helper()
	out, err := exec.Command(bin, "doctor", "--json", "--api", base).Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("relocvol doctor: %v, want exit status 1 (a failure)\n%s", err, out)
	}
	var d api.Doctor
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("relocvol doctor --json: %v\n%s", err, out)
	}
	if d.Status != doctor.Fail || len(d.Hosts) != 2 || d.Hosts[0].Host != "e2e-host-a" || d.Hosts[1].Host != "e2e-host-b" {
		t.Fatalf("relocvol doctor: status %s, hosts %+v", d.Status, d.Hosts)
	}
	for _, r := range d.Hosts {
		got := map[string]doctor.Check{}
		settings := doctor.Pass
		for _, c := range r.Checks {
			if c.Name == "settings" {
				settings = c.Status
				if r.Host == "e2e-host-b" && (c.Status != doctor.Fail || !strings.Contains(c.Detail, `lease TTL is "3s" here, "5s" on most hosts`)) {
					t.Errorf("%s: settings check %+v, want the lease TTL found different", r.Host, c)
				}
				continue
			}
			if c.Status == doctor.Fail {
				t.Errorf("%s: failed check %+v", r.Host, c)
			}
			got[c.Name] = c
		}
		if want := map[string]doctor.Status{"e2e-host-a": doctor.Pass, "e2e-host-b": doctor.Fail}[r.Host]; settings != want {
			t.Errorf("%s: settings %s, want %s", r.Host, settings, want)
		}
		for name, want := range map[string]doctor.Status{
			"etcd": doctor.Pass, "etcd access": doctor.Pass, "lease": doctor.Pass, "clock": doctor.Pass, "storage identity": doctor.Pass,
			"san folder": doctor.Pass, "fencing": doctor.Warn, "docker": doctor.Pass,
		} {
			if c, ok := got[name]; !ok || c.Status != want {
				t.Errorf("%s: check %s = %+v, want %s", r.Host, name, c, want)
			}
		}
		if r.Settings.Backend != "loop" || r.Settings.Fencing != "none" || r.Settings.Cluster == "" {
			t.Errorf("%s: settings %+v", r.Host, r.Settings)
		}
	}
	human, _ := exec.Command(bin, "doctor", "--api", base).CombinedOutput()
	if !strings.Contains(string(human), "HOST e2e-host-a (loop, none fencing") || !strings.Contains(string(human), "fix: in production use the lvm backend with scsi3 fencing") {
		t.Errorf("relocvol doctor printed:\n%s", human)
	}
	t.Logf("relocvol doctor:\n%s", human)
}

// checkStatusPage opens the managed plugin's status page (base) in headless
// Chromium, as an operator's browser does (the token in the address's
// fragment): it shows both hosts and the volume in use, loads nothing from
// elsewhere, and its screenshot is kept.
func checkStatusPage(t *testing.T, base, token string) {
	t.Helper()
	testenv.RequireCommands(t, "chromium")
	b := browser.New(t, base)
	browser.Navigate(t, b.Ctx, base+"/#token="+token) // as docs/api.md tells operators
	testenv.Eventually(t, 30*time.Second, "the status page shows the cluster", func() error {
		text, err := browser.Eval[string](b.Ctx, `[...document.querySelectorAll('tr[data-host], tr[data-volume]')].map(r => r.innerText.replace(/\s+/g, ' ')).join('\n')`)
		if err != nil {
			return err
		}
		// Live: the event stream is open, although no relocation happened.
		conn, err := browser.Eval[string](b.Ctx, `document.getElementById('conn').textContent`)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(conn, "live ·") {
			return fmt.Errorf("the page says %q, not live", conn)
		}
		// Nothing unset printed as such.
		if page, err := browser.Eval[string](b.Ctx, `document.body.innerText`); err != nil || strings.Contains(page, "null") || strings.Contains(page, "undefined") {
			return fmt.Errorf("the page prints an unset value (%v):\n%s", err, page)
		}
		for _, want := range []string{"e2e-host-a", "e2e-host-b", "e2e-db e2e-host-a"} {
			if !strings.Contains(text, want) {
				return fmt.Errorf("the page shows %q, not %q", text, want)
			}
		}
		return nil
	})
	browser.Screenshot(t, b.Ctx, "status-page-managed-plugin.png")
	for _, u := range b.Requests() {
		if !browser.SameOrigin(u, base) {
			t.Errorf("the page requested %s", u)
		}
	}
	// Chromium's start takes both cores a while: host B, at a 3 s lease,
	// may have missed its renewals meanwhile and be rejoining; the test
	// goes on once both hosts are alive.
	cl := api.NewClient(base, token)
	testenv.Eventually(t, 30*time.Second, "both hosts alive after the browser", func() error {
		hosts, err := cl.Hosts(context.Background())
		if err != nil {
			return err
		}
		for _, h := range hosts {
			if !h.Alive {
				return fmt.Errorf("host %s not alive", h.Name)
			}
		}
		return nil
	})
}
