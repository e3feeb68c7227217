package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// No request changes anything without a token: a handler given none (the
// old "loopback needs no token" rule) refuses every data request rather
// than serving it to anyone.
func TestNoTokenServesNoData(t *testing.T) {
	svc := &fakeService{}
	h := Handler(svc, Options{})
	for _, r := range []struct{ method, path, body string }{
		{"PUT", "/v1/hosts/a/maintenance", `{"for":"10m"}`},
		{"DELETE", "/v1/hosts/a/maintenance", ""},
		{"POST", "/v1/apps/db/move", `{"to":"b"}`},
		{"POST", "/v1/volumes/db/grow", `{"size":"2G"}`},
		{"GET", "/v1/status", ""},
		{"GET", "/metrics", ""},
	} {
		if code, body := do(t, h, r.method, r.path, "", r.body); code != 401 {
			t.Errorf("%s %s without a token: %d %s, want 401", r.method, r.path, code, body)
		}
	}
	if svc.changes != 0 || svc.grown != 0 || len(svc.moved) != 0 {
		t.Errorf("requests without a token changed the cluster: %d maintenance changes, %d grows, moves %v", svc.changes, svc.grown, svc.moved)
	}
}

// The full token does everything; the read-only token reads (the metrics,
// every GET of /v1, the event stream) and is refused with 403 on anything
// that changes the cluster; anything else is a 401 saying what to send and
// where the token is; the status page's files need none.
func TestTokens(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("relocvol_host_alive 1\n")) })
	opt := Options{Token: "full-token", ReadToken: "read-token", TokenFile: "/srv/state/api-token", ReadTokenFile: "/srv/state/api-token-read", Metrics: metrics}
	h := Handler(&fakeService{}, opt)
	const (
		full, read, wrong, none = "full-token", "read-token", "read-tokenX", ""
	)
	for _, tc := range []struct {
		method, path, token, body string
		code                      int
		says                      string
	}{
		{method: "GET", path: "/v1/status", token: full, code: 200},
		{method: "PUT", path: "/v1/hosts/a/maintenance", token: full, body: `{"for":"10m"}`, code: 200},
		{method: "POST", path: "/v1/apps/db/move", token: full, body: `{"to":"b"}`, code: 202},
		{method: "GET", path: "/metrics", token: full, code: 200},

		{method: "GET", path: "/v1/status", token: read, code: 200},
		{method: "GET", path: "/v1/hosts", token: read, code: 200},
		{method: "GET", path: "/v1/events?limit=5", token: read, code: 200},
		{method: "GET", path: "/v1/doctor", token: read, code: 403, says: "not the doctor, which runs commands on every host"},
		{method: "GET", path: "/v1/doctor", token: full, code: 200},
		{method: "GET", path: "/metrics", token: read, code: 200, says: "relocvol_host_alive 1"},
		{method: "PUT", path: "/v1/hosts/a/maintenance", token: read, body: `{"for":"10m"}`, code: 403, says: "the read-only token (/srv/state/api-token-read) only reads (GET, HEAD, but not the doctor, which runs commands on every host): PUT /v1/hosts/a/maintenance needs the API token of /srv/state/api-token"},
		{method: "DELETE", path: "/v1/hosts/a/maintenance", token: read, code: 403, says: "only reads"},
		{method: "POST", path: "/v1/apps/db/move", token: read, body: `{"to":"b"}`, code: 403, says: "only reads"},
		{method: "POST", path: "/v1/volumes/db/grow", token: read, body: `{"size":"2G"}`, code: 403, says: "only reads"},
		{method: "POST", path: "/v1/local/volumes/db/forget", token: read, code: 403, says: "only reads"},

		{method: "GET", path: "/v1/status", token: none, code: 401, says: "send Authorization: Bearer TOKEN with the API token, which a relocvol host keeps in /srv/state/api-token (readable by root)"},
		{method: "GET", path: "/v1/status", token: wrong, code: 401, says: "RELOCVOL_API_TOKEN"},
		{method: "PUT", path: "/v1/hosts/a/maintenance", token: wrong, body: `{"for":"10m"}`, code: 401, says: "missing or wrong bearer token"},
		{method: "GET", path: "/metrics", token: none, code: 401, says: "the read-only token of /srv/state/api-token-read"},
		{method: "GET", path: "/v1/../v1/status", token: none, code: 401},

		// The status page holds no data: it asks for the token itself.
		{method: "GET", path: "/", token: none, code: 200},
		{method: "GET", path: "/ui/status.js", token: none, code: 200},
		{method: "GET", path: "/", token: wrong, code: 200},
	} {
		code, body := do(t, h, tc.method, tc.path, tc.token, tc.body)
		if code != tc.code || !strings.Contains(body, tc.says) {
			t.Errorf("%s %s with token %q: %d %s\nwant %d saying %q", tc.method, tc.path, tc.token, code, body, tc.code, tc.says)
		}
		if code == 401 || code == 403 {
			var e ErrorBody
			if json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
				t.Errorf("%d body %s is not an error answer", code, body)
			}
		}
	}
	// An empty token matches nothing, not even an unset one.
	if code, _ := do(t, Handler(&fakeService{}, Options{Token: "t"}), "GET", "/v1/status", "", ""); code != 401 {
		t.Errorf("an empty bearer token: %d, want 401", code)
	}
}

// access is the one decision.
func TestAccess(t *testing.T) {
	opt := Options{Token: "f", ReadToken: "r"}
	for _, tc := range []struct {
		opt   Options
		token string
		want  Access
	}{
		{opt, "f", FullAccess}, {opt, "r", ReadAccess}, {opt, "x", NoAccess}, {opt, "", NoAccess},
		{Options{}, "", NoAccess}, {Options{Token: "f"}, "r", NoAccess}, {Options{ReadToken: "r"}, "", NoAccess},
	} {
		if got := access(tc.opt, tc.token); got != tc.want {
			t.Errorf("access(%+v, %q) = %v, want %v", tc.opt, tc.token, got, tc.want)
		}
	}
}
