package api

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
)

// The API also answers on a unix socket in the host's state folder, mode
// 0600: only root connects to it, and only the plugin can be listening
// there, since only root can create it. The CLI run as root asks this
// socket by default, and sends the token file by itself only there: a TCP
// port on loopback is anyone's to take while the plugin is down (an
// upgrade, a boot), and a local user listening on it would receive the
// token.

type onSocketKey struct{}

// OnSocket marks the requests h serves as asked on the host's root-only
// unix socket (the API's socket, where only root connects): the requests
// that change the host's devices are served only there.
func OnSocket(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), onSocketKey{}, true)))
	})
}

// onSocket tells whether the request came through OnSocket.
func onSocket(ctx context.Context) bool {
	v, _ := ctx.Value(onSocketKey{}).(bool)
	return v
}

// UnixScheme prefixes an API address that is a unix socket's path.
const UnixScheme = "unix://"

// ListenUnix opens the API's unix socket at path, replacing a socket left
// by an earlier run (never a file of another kind), with mode 0600.
func ListenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("API socket %s: a file that is not a socket is there: remove it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("API socket %s: remove the earlier one: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("API socket %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("API socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("API socket %s: %w", path, err)
	}
	return ln, nil
}

// unixBase turns a unix:// address into a base URL and the transport that
// dials its socket ("" when base is not one).
func unixBase(base string) (string, *http.Transport) {
	path, ok := strings.CutPrefix(base, UnixScheme)
	if !ok {
		return base, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
	return "http://relocvol", tr
}
