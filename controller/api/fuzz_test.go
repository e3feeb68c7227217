package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzHandler sends the API whatever a client may: any method, path and
// body, with and without the token. Whatever it is, the answer is never a
// server error, an error is JSON that says what is wrong, and only an
// accepted move request moves an app. `go test` runs the seeds and any
// failing input kept under testdata/fuzz; scripts/test.sh fuzzes briefly.
func FuzzHandler(f *testing.F) {
	for _, s := range []struct {
		method, path, body string
		token              bool
	}{
		{"GET", "/v1/status", "", true},
		{"GET", "/v1/status", "", false},
		{"POST", "/v1/apps/db/move", `{"to": "b"}`, true},
		{"POST", "/v1/apps/db/move", `{"to": "b"} {"to": "c"}`, true},
		{"POST", "/v1/apps/db/move", `{"to": ""}`, true},
		{"POST", "/v1/apps/db/move", `{"to": "b", "force": true}`, true},
		{"POST", "/v1/apps/nope/move", `{"to": "b"}`, true},
		{"POST", "/v1/apps/db/move", `[`, true},
		{"PUT", "/v1/hosts/b/maintenance", `{"for": "10m", "reason": "disk"}`, true},
		{"PUT", "/v1/hosts/b/maintenance", `{"for": "ten minutes"}`, true},
		{"DELETE", "/v1/hosts/b/maintenance", "", true},
		{"GET", "/v1/events?limit=0", "", true},
		{"GET", "/v1/events?limit=abc&follow=1", "", true},
		{"GET", "/v1/apps/%00", "", true},
		{"PATCH", "/v1/apps/db", "", true},
		{"POST", "/v1/local/volumes/db/forget", "", true},
		{"GET", "/../../etc/passwd", "", true},
	} {
		f.Add(s.method, s.path, []byte(s.body), s.token)
	}
	f.Fuzz(func(t *testing.T, method, path string, body []byte, token bool) {
		if method == "" || strings.ContainsAny(method, " \t\r\n()<>@,;:\\\"/[]?={}") || !strings.HasPrefix(path, "/") {
			return // not an HTTP request line at all
		}
		u, err := url.ParseRequestURI(path)
		if err != nil {
			return
		}
		svc := &fakeService{}
		h := Handler(svc, Options{Token: "s3cret"})
		req := httptest.NewRequest(http.MethodGet, "/", strings.NewReader(string(body)))
		req.Method, req.URL, req.RequestURI = method, u, path
		if token {
			req.Header.Set("Authorization", "Bearer s3cret")
		}
		rec := httptest.NewRecorder()
		if method == http.MethodGet && strings.Contains(u.RawQuery, "follow") {
			return // a stream that lasts: TestFollowEvents
		}
		h.ServeHTTP(rec, req)
		code := rec.Code
		if code >= 500 {
			t.Fatalf("%s %s %q: %d %s", method, path, body, code, rec.Body)
		}
		if code >= 400 && !(method == http.MethodHead) {
			var e ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%s %s %q: %d with %q, not a JSON error", method, path, body, code, rec.Body)
			}
		}
		if len(svc.moved) > 0 && (code != http.StatusAccepted || !token) {
			t.Fatalf("%s %s %q: moved %v, answered %d", method, path, body, svc.moved, code)
		}
	})
}
