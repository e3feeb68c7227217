package api

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// The status page is static: HTML, CSS and JavaScript embedded in the
// binary (ui/), which read the JSON API from the browser. The files hold
// no data, so they answer without the bearer token, and the page sends
// the token on each /v1 request itself (see docs/api.md). Nothing on the
// page comes from anywhere but this server: the Content-Security-Policy
// makes the browser refuse anything else, so the page works on a host
// without Internet access.

//go:embed ui
var uiFS embed.FS

// uiPrefix is where the page's assets are served; GET / is index.html.
const uiPrefix = "/ui/"

// pagePolicy allows the page only this server's own scripts, styles,
// images and API; no inline script, no framing (clickjacking), no form
// posts anywhere.
const pagePolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// uiTypes are the content types of the page's files: fixed here rather
// than read from the system's MIME tables, which differ between hosts
// (a script served as text/plain is refused under nosniff).
var uiTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

// uiAssets maps a file's name under ui/ to its content: a request is
// served from this map only, so no path can reach beyond it.
var uiAssets = func() map[string]asset {
	out := map[string]asset{}
	err := fs.WalkDir(uiFS, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := uiFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct, ok := uiTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("%s: no content type for %q files: add it to uiTypes", p, path.Ext(p))
		}
		out[strings.TrimPrefix(p, "ui/")] = asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("embedded status page: " + err.Error())
	}
	return out
}()

// needsToken tells whether a request must carry the bearer token: all
// but a GET of the page and its assets, which hold no data. A path that
// is not clean (.., //, a trailing /.) needs it too, so that no spelling of
// a data endpoint passes as an asset.
func needsToken(method, p string) bool {
	if method != http.MethodGet || path.Clean(p) != p {
		return true
	}
	return p != "/" && !(strings.HasPrefix(p, uiPrefix) && len(p) > len(uiPrefix))
}

// servePage answers GET / with the page.
func servePage(w http.ResponseWriter, req *http.Request) {
	serveAsset(w, req, "index.html")
}

// serveUI answers GET /ui/NAME with an embedded file.
func serveUI(w http.ResponseWriter, req *http.Request) {
	serveAsset(w, req, strings.TrimPrefix(req.URL.Path, uiPrefix))
}

func serveAsset(w http.ResponseWriter, req *http.Request, name string) {
	a, ok := uiAssets[name]
	if !ok {
		writeError(w, Errorf(ErrNotFound, "no file %s%s in the status page: open GET / for the page", uiPrefix, name))
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Content-Security-Policy", pagePolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// Revalidated on every load, so that a plugin upgrade shows its page
	// at once; unchanged files cost a 304.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	if req.Header.Get("If-None-Match") == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(a.body)
}
