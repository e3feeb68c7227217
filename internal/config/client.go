package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// Client is what the relocvol CLI's API commands are configured with: which
// host's REST API they ask, with which token. Like the plugin's settings,
// each is a flag backed by a RELOCVOL_* variable (ApplyEnv); the token's is
// the plugin's own, RELOCVOL_API_TOKEN, so one environment serves both.
// Without one, the token is read from the file the plugin keeps it in on
// its host (LoadToken), which only root reads.
type Client struct {
	API   string
	Token string
	// TokenFile is read for the token when Token is empty: by default the
	// file the plugin keeps its token in on this host (root only), and
	// then only for this host's API socket (LoadToken).
	TokenFile string
	// TokenFileGiven: TokenFile was set (flag or variable), so it is sent
	// to any API; the default one only to this host's socket.
	TokenFileGiven bool
	// CA is a PEM file of the authorities to trust for an https:// API
	// (besides the system's), e.g. the hosts' own.
	CA string
}

// ClientDefaults asks the API of this host (Complete picks its socket or
// its loopback port), with the token the plugin keeps in its state folder.
func ClientDefaults() Client {
	d := Defaults()
	return Client{TokenFile: d.APITokenFile()}
}

// localAPI is this host's API: its root-only socket where it is there and
// this process may connect to it (root), else its default loopback
// address.
func localAPI() string {
	d := Defaults()
	if fi, err := os.Stat(d.APISocket()); err == nil && fi.Mode()&fs.ModeSocket != 0 && unix.Access(d.APISocket(), unix.W_OK) == nil {
		return "unix://" + d.APISocket()
	}
	return "http://127.0.0.1:7480"
}

// Bind registers the CLI's flags on fs. Call ApplyEnv after parsing, then
// Complete.
func (c *Client) Bind(fs *pflag.FlagSet) {
	fs.StringVar(&c.API, "api", c.API, "a host's relocvol API: http(s)://HOST:PORT, or unix:///PATH of its socket (env RELOCVOL_API); empty: this host's, at its root-only socket /var/lib/relocvol/api.sock (else http://127.0.0.1:7480)")
	fs.StringVar(&c.Token, "token", c.Token, "bearer token of the API (env RELOCVOL_API_TOKEN); empty: read from --token-file")
	_ = fs.SetAnnotation("token", envAnnotation, []string{EnvName("api-token")})
	fs.StringVar(&c.TokenFile, "token-file", c.TokenFile, "file to read the token from when --token is empty: the plugin keeps its API token there on each host, readable by root (env RELOCVOL_API_TOKEN_FILE); the default one is sent only to this host's socket, a file given here to any --api")
	_ = fs.SetAnnotation("token-file", envAnnotation, []string{EnvName("api-token-file")})
	fs.StringVar(&c.CA, "api-ca", c.CA, "CA file (PEM) to verify an https:// API's certificate, besides the system's (env RELOCVOL_API_CA)")
}

// Complete checks the API's URL, naming the flag and its variable; an
// empty one (RELOCVOL_API set to nothing) means this host's.
func (c *Client) Complete() error {
	if c.API == "" {
		c.API = localAPI()
	}
	u, err := url.Parse(c.API)
	switch {
	case err == nil && u.Scheme == "unix" && u.Host == "" && strings.HasPrefix(u.Path, "/"):
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("--api (RELOCVOL_API) %q is not a URL of an API: use one such as http://10.0.0.1:7480, or unix:///var/lib/relocvol/api.sock", c.API)
	}
	if c.CA != "" && u.Scheme != "https" {
		return fmt.Errorf("--api-ca (RELOCVOL_API_CA) is set but --api %q is not https://: an API with a certificate answers at https://HOST:PORT", c.API)
	}
	return nil
}

// LoadToken reads TokenFile when Token is empty (the flag and its variable
// win), and says what to do when it cannot: the plugin's file is root's.
func (c *Client) LoadToken() error {
	if c.Token != "" {
		return nil
	}
	if c.TokenFile == "" {
		return errors.New("no API token: give --token (RELOCVOL_API_TOKEN) or --token-file (RELOCVOL_API_TOKEN_FILE)")
	}
	if d := Defaults(); !c.TokenFileGiven && c.API != "unix://"+d.APISocket() {
		// Whoever listens on a TCP port (on loopback, anyone, while the
		// plugin is down) would receive root's token: only the socket,
		// which only root can have made, gets it unasked.
		return fmt.Errorf("no API token: this CLI sends the plugin's token file (%s) by itself only to this host's root-only socket, not to %s: give --token (RELOCVOL_API_TOKEN) or --token-file (RELOCVOL_API_TOKEN_FILE)", c.TokenFile, c.API)
	}
	b, err := os.ReadFile(c.TokenFile)
	switch {
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("no API token: --token (RELOCVOL_API_TOKEN) is empty and %s cannot be read (%v): run relocvol as root, who alone reads the plugin's token, or give --token (the host's api-token file, or its --api-token)", c.TokenFile, err)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no API token: --token (RELOCVOL_API_TOKEN) is empty and %s does not exist: the plugin writes it when it starts on this host (is it enabled? is its state folder elsewhere? then --token-file); from another machine, give --token", c.TokenFile)
	case err != nil:
		return fmt.Errorf("no API token: read %s: %w (give --token, RELOCVOL_API_TOKEN, or --token-file)", c.TokenFile, err)
	}
	if c.Token = strings.TrimSpace(string(b)); c.Token == "" {
		return fmt.Errorf("no API token: %s is empty: restart the plugin (it writes the token there), or give --token", c.TokenFile)
	}
	return nil
}
