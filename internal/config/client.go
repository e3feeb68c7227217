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
}

// ClientDefaults asks the API of this host.
func ClientDefaults() Client { return Client{API: "http://127.0.0.1:7480"} }

// Bind registers the CLI's flags on fs. Call ApplyEnv after parsing, then
// Complete.
func (c *Client) Bind(fs *pflag.FlagSet) {
	fs.StringVar(&c.API, "api", c.API, "URL of a host's relocvol API (env RELOCVOL_API)")
	fs.StringVar(&c.Token, "token", c.Token, "bearer token of the API, the host's --api-token (env RELOCVOL_API_TOKEN)")
	_ = fs.SetAnnotation("token", envAnnotation, []string{EnvName("api-token")})
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
	return nil
}
