package pki

import (
	"crypto/x509"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func mustIssue(t *testing.T, name string, ca *Cert, from, to time.Time, hosts ...string) *Cert {
	t.Helper()
	c, err := Issue(name, ca, from, to, hosts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// renewal decides what Ensure makes again.
func TestRenewal(t *testing.T) {
	year := now.Add(365 * 24 * time.Hour)
	ca := mustIssue(t, "ca", nil, now.Add(-time.Hour), year)
	other := mustIssue(t, "other ca", nil, now.Add(-time.Hour), year)
	good := mustIssue(t, "server", ca, now.Add(-time.Hour), year, "127.0.0.1", "localhost")
	for _, tc := range []struct {
		name  string
		c     *Cert
		err   error
		ca    *Cert
		hosts []string
		want  string
	}{
		{name: "a good CA", c: ca, want: ""},
		{name: "a good leaf", c: good, ca: ca, hosts: []string{"127.0.0.1", "localhost"}, want: ""},
		{name: "missing", err: fs.ErrNotExist, want: "missing"},
		{name: "unreadable", err: errors.New("no PEM certificate"), want: "unreadable (no PEM certificate)"},
		{name: "a leaf where the CA should be", c: good, want: "not a CA"},
		{name: "signed by another CA", c: good, ca: other, want: "not signed by the CA"},
		{name: "expiring within 30 days", c: mustIssue(t, "s", ca, now.Add(-time.Hour), now.Add(29*24*time.Hour)), ca: ca, want: "expires 2026-06-30"},
		{name: "expired", c: mustIssue(t, "s", ca, now.Add(-48*time.Hour), now.Add(-time.Hour)), ca: ca, want: "expires 2026-06-01T11"},
		{name: "31 days left", c: mustIssue(t, "s", ca, now.Add(-time.Hour), now.Add(31*24*time.Hour)), ca: ca, want: ""},
		{name: "not yet valid", c: mustIssue(t, "s", ca, now.Add(time.Hour), year), ca: ca, want: "not valid before"},
		{name: "another address configured", c: good, ca: ca, hosts: []string{"127.0.0.1", "10.0.0.5"}, want: "not valid for 10.0.0.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var caCert *x509.Certificate
			if tc.ca != nil {
				caCert = tc.ca.Cert
			}
			got := renewal(tc.c, tc.err, caCert, tc.hosts, now)
			if (tc.want == "") != (got == "") || !strings.HasPrefix(got, tc.want) {
				t.Errorf("renewal = %q, want %q", got, tc.want)
			}
		})
	}
}
