package config

import (
	"fmt"
	"net/url"

	"github.com/spf13/pflag"
)

// Client is what the relocvol CLI's API commands are configured with: which
// host's REST API they ask, with which token. Like the plugin's settings,
// each is a flag backed by a RELOCVOL_* variable (ApplyEnv); the token's is
// the plugin's own, RELOCVOL_API_TOKEN, so one environment serves both.
type Client struct {
	API   string
	Token string
	// CA is a PEM file of the authorities to trust for an https:// API
	// (besides the system's), e.g. the hosts' own.
	CA string
}

// ClientDefaults asks the API of this host.
func ClientDefaults() Client { return Client{API: "http://127.0.0.1:7480"} }

// Bind registers the CLI's flags on fs. Call ApplyEnv after parsing, then
// Complete.
func (c *Client) Bind(fs *pflag.FlagSet) {
	fs.StringVar(&c.API, "api", c.API, "URL of a host's relocvol API (env RELOCVOL_API)")
	fs.StringVar(&c.Token, "token", c.Token, "bearer token of the API, the host's --api-token (env RELOCVOL_API_TOKEN)")
	_ = fs.SetAnnotation("token", envAnnotation, []string{EnvName("api-token")})
	fs.StringVar(&c.CA, "api-ca", c.CA, "CA file (PEM) to verify an https:// API's certificate, besides the system's (env RELOCVOL_API_CA)")
}

// Complete checks the API's URL, naming the flag and its variable; an
// empty one (RELOCVOL_API set to nothing) means this host's.
func (c *Client) Complete() error {
	if c.API == "" {
		c.API = ClientDefaults().API
	}
	u, err := url.Parse(c.API)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--api (RELOCVOL_API) %q is not a URL of an API: use one such as http://10.0.0.1:7480", c.API)
	}
	if c.CA != "" && u.Scheme != "https" {
		return fmt.Errorf("--api-ca (RELOCVOL_API_CA) is set but --api %q is not https://: an API with a certificate answers at https://HOST:PORT", c.API)
	}
	return nil
}
