package api

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// Only a GET of the page and its files answers without the token; every
// other spelling of a path needs it.
func TestNeedsToken(t *testing.T) {
	for _, tc := range []struct {
		name, method, path string
		want               bool
	}{
		{"the page", "GET", "/", false},
		{"a script", "GET", "/ui/status.js", false},
		{"a missing asset", "GET", "/ui/nosuch.css", false},
		{"the assets' folder", "GET", "/ui/", true},
		{"the assets' folder without slash", "GET", "/ui", true},
		{"a prefix look-alike", "GET", "/uix/status.js", true},
		{"status", "GET", "/v1/status", true},
		{"events", "GET", "/v1/events", true},
		{"metrics", "GET", "/metrics", true},
		{"a dot-dot out of the assets", "GET", "/ui/../v1/status", true},
		{"a double slash", "GET", "/ui//status.js", true},
		{"a trailing dot", "GET", "/ui/.", true},
		{"the page by POST", "POST", "/", true},
		{"an asset by PUT", "PUT", "/ui/status.js", true},
		{"the page by HEAD", "HEAD", "/", true},
		{"unknown", "GET", "/v2/x", true},
		{"empty", "GET", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := needsToken(tc.method, tc.path); got != tc.want {
				t.Errorf("needsToken(%s, %q) = %v, want %v", tc.method, tc.path, got, tc.want)
			}
		})
	}
}

// The page's files answer without the token, with their type and a policy
// that lets the browser load nothing from elsewhere; the data does not.
func TestStatusPageFiles(t *testing.T) {
	h := Handler(&fakeService{}, Options{Token: "s3cret"})
	for _, tc := range []struct {
		path, contentType, want string
	}{
		{"/", "text/html; charset=utf-8", `src="/ui/status.js"`},
		{"/ui/status.js", "text/javascript; charset=utf-8", "followEvents"},
		{"/ui/status.css", "text/css; charset=utf-8", ".tl-bar"},
		{"/ui/icon.svg", "image/svg+xml", "<svg"},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", tc.path, nil))
		if w.Code != 200 || w.Header().Get("Content-Type") != tc.contentType || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("GET %s without token: %d %s, want 200 %s containing %s", tc.path, w.Code, w.Header().Get("Content-Type"), tc.contentType, tc.want)
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", tc.path, csp)
		}
		// A reload revalidates: the same file is a 304.
		req := httptest.NewRequest("GET", tc.path, nil)
		req.Header.Set("If-None-Match", w.Header().Get("ETag"))
		w2 := httptest.NewRecorder()
		h.ServeHTTP(w2, req)
		if w2.Code != http.StatusNotModified || w2.Body.Len() != 0 {
			t.Errorf("GET %s with its ETag: %d %q, want 304", tc.path, w2.Code, w2.Body)
		}
	}
	if code, body := do(t, h, "GET", "/", "", ""); code != 200 || strings.Contains(body, "postgres") {
		t.Errorf("the page holds data: %d %s", code, body)
	}
	if code, body := do(t, h, "GET", "/ui/nosuch.js", "", ""); code != 404 || !strings.Contains(body, "no file /ui/nosuch.js in the status page: open GET / for the page") {
		t.Errorf("a missing asset: %d %s", code, body)
	}
	if code, _ := do(t, h, "GET", "/v1/apps", "", ""); code != 401 {
		t.Errorf("GET /v1/apps without the token: %d, want 401", code)
	}
}

// externalURL finds what could make a browser fetch from another origin:
// an absolute or protocol-relative URL, CSS imports, and url() that is not
// this server's path.
var externalURL = regexp.MustCompile(`(?i)(https?:)?//[a-z0-9-]+(\.[a-z0-9-]+)+|@import|url\(\s*['"]?[^'")/\s]|\bsrc\s*=\s*['"]?[a-z]+:|\bhref\s*=\s*['"]?[a-z]+:`)

// svgNS is SVG's namespace name: an identifier, never fetched.
const svgNS = "http://www.w3.org/2000/svg"

// The page works offline: no file of it names another origin (the browser
// test also records every request Chromium makes).
func TestStatusPageSelfContained(t *testing.T) {
	n := 0
	err := fs.WalkDir(uiFS, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, _ := uiFS.ReadFile(p)
		text := strings.ReplaceAll(string(b), svgNS, "")
		for _, m := range externalURL.FindAllStringIndex(text, -1) {
			line := strings.Count(text[:m[0]], "\n") + 1
			t.Errorf("%s:%d: %q may fetch from another origin: the page must load nothing but this server's own files", p, line, text[m[0]:m[1]])
		}
		return nil
	})
	if err != nil || n < 4 {
		t.Fatalf("walked %d embedded files: %v", n, err)
	}
	for _, bad := range []string{`<script src="https://cdn.example.com/x.js">`, `@import url(x.css)`, `src="//cdn.example.com/a.js"`, `background: url(http://x.io/a.png)`, `href="http://evil.example/"`} {
		if !externalURL.MatchString(bad) {
			t.Errorf("the check misses %s", bad)
		}
	}
	for _, good := range []string{`src="/ui/status.js"`, `// a comment`, `import { el } from './dom.js';`, `href="#rel-web"`} {
		if externalURL.MatchString(good) {
			t.Errorf("the check refuses %s", good)
		}
	}
}
