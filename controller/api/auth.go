package api

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// Access is what a request's bearer token allows.
type Access int

// The kinds of access, from none to all.
const (
	NoAccess Access = iota
	ReadAccess
	FullAccess
)

// access is the access token gives: the full token everything, the
// read-only one reads (GET, HEAD), anything else (an empty one too,
// whatever was configured) nothing. Compared in constant time.
func access(opt Options, token string) Access {
	switch {
	case token == "":
		return NoAccess
	case opt.Token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(opt.Token)) == 1:
		return FullAccess
	case opt.ReadToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(opt.ReadToken)) == 1:
		return ReadAccess
	}
	return NoAccess
}

// readOnly tells whether the read-only token may make a request: a safe
// method (GET, HEAD) on anything but the doctor, whose every request makes
// each host run its storage commands (PR reads and writes, LVM under its
// locks): a scrape token must not be able to load them.
func readOnly(method, path string) bool {
	return (method == http.MethodGet || method == http.MethodHead) && path != "/v1/doctor"
}

// authorize lets through a request that need says needs no token (the
// status page's files), one with the full token, and a safe one with the
// read-only token; it answers the others 401 (no token, or not one of
// ours) or 403 (the read-only token on a request that changes something),
// saying what to send and where the tokens are.
func authorize(opt Options, need func(method, path string) bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if !need(req.Method, req.URL.Path) {
				next.ServeHTTP(w, req)
				return
			}
			token, _ := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
			switch access(opt, token) {
			case FullAccess:
				next.ServeHTTP(w, req)
				return
			case ReadAccess:
				if readOnly(req.Method, req.URL.Path) {
					next.ServeHTTP(w, req)
					return
				}
				writeError(w, Errorf(ErrForbidden, "the read-only token (%s) only reads (GET, HEAD, but not the doctor, which runs commands on every host): %s %s needs the API token of %s instead (the relocvol CLI run as root reads it itself)",
					opt.readTokenFile(), req.Method, req.URL.Path, opt.tokenFile()))
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="relocvol"`)
			writeError(w, Errorf(ErrUnauthorized, "missing or wrong bearer token: send Authorization: Bearer TOKEN with the API token, which a relocvol host keeps in %s (readable by root), or the host's --api-token; "+
				"the relocvol CLI run as root reads that file itself, else give it --token or RELOCVOL_API_TOKEN; for reads only (Prometheus), the read-only token of %s",
				opt.tokenFile(), opt.readTokenFile()))
		})
	}
}
