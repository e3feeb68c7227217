package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to a host's API.
type Client struct {
	Base  string // e.g. http://127.0.0.1:7480
	Token string
	// TokenFrom says where Token came from (a flag, a file), and NoToken
	// why there is none, for the message of a refused request.
	TokenFrom string
	NoToken   error
	HTTP      *http.Client
	// Where names the API in messages: Base, or the unix socket asked.
	Where string
}

// NewClient returns a client for base: an http:// or https:// URL, or
// unix:///path of a host's API socket.
func NewClient(base, token string) *Client {
	c := &Client{Base: strings.TrimSuffix(base, "/"), Token: token, HTTP: &http.Client{Timeout: 30 * time.Second}}
	c.Where = c.Base
	if url, tr := unixBase(c.Base); tr != nil {
		c.Base, c.HTTP.Transport = url, tr
	}
	return c
}

// where names the API asked, for messages.
func (c *Client) where() string {
	if c.Where != "" {
		return c.Where
	}
	return c.Base
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	return c.doWith(ctx, c.HTTP, method, path, body, out)
}

// doWith is do with hc.
func (c *Client) doWith(ctx context.Context, hc *http.Client, method, path string, body, out any) error {
	resp, err := c.send(ctx, hc, method, path, body)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read the API's answer: %w", err)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode the API's answer to %s: %w", path, err)
		}
	}
	return nil
}

// send makes the request (JSON body, bearer token) with hc and returns a
// successful answer, its body for the caller to read and close; an error
// answer comes back as the API's error, with its kind.
func (c *Client) send(ctx context.Context, hc *http.Client, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("API address %q: %w", c.where(), err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the relocvol API at %s: %w (is the plugin enabled on this host? its socket answers root only; set --api or RELOCVOL_API)", c.where(), err)
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read the API's answer: %w", err)
	}
	var e ErrorBody
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			e.Error = c.refused(e.Error)
		}
		return nil, received(resp.StatusCode, e.Error)
	}
	return nil, received(resp.StatusCode, fmt.Sprintf("%s %s: %s", method, path, resp.Status))
}

// refused is the message of a 401 or 403 answer, msg, with what this
// client sent: which token, or why it had none.
func (c *Client) refused(msg string) string {
	switch {
	case c.Token == "" && c.NoToken != nil:
		return fmt.Sprintf("the API at %s needs a token, and this command has none: %v (the API says: %s)", c.where(), c.NoToken, msg)
	case c.Token != "" && c.TokenFrom != "":
		return fmt.Sprintf("the API at %s refused the token of %s: %s", c.where(), c.TokenFrom, msg)
	}
	return msg
}

// Raw returns the JSON the API answers to GET path, as is.
func (c *Client) Raw(ctx context.Context, path string) (json.RawMessage, error) {
	var m json.RawMessage
	err := c.do(ctx, http.MethodGet, path, nil, &m)
	return m, err
}

// Status returns the cluster at a glance.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// Hosts lists the hosts.
func (c *Client) Hosts(ctx context.Context) ([]Host, error) {
	var h []Host
	return h, c.do(ctx, http.MethodGet, "/v1/hosts", nil, &h)
}

// Volumes lists the volumes.
func (c *Client) Volumes(ctx context.Context) ([]Volume, error) {
	var v []Volume
	return v, c.do(ctx, http.MethodGet, "/v1/volumes", nil, &v)
}

// Apps lists the apps.
func (c *Client) Apps(ctx context.Context) ([]App, error) {
	var a []App
	return a, c.do(ctx, http.MethodGet, "/v1/apps", nil, &a)
}

// Events returns the timeline, oldest first.
func (c *Client) Events(ctx context.Context, f EventFilter) ([]Event, error) {
	var ev []Event
	return ev, c.do(ctx, http.MethodGet, "/v1/events?"+eventQuery(f).Encode(), nil, &ev)
}

// Move asks for a planned move of app to host.
func (c *Client) Move(ctx context.Context, app, to string) (Relocation, error) {
	var r Relocation
	return r, c.do(ctx, http.MethodPost, "/v1/apps/"+url.PathEscape(app)+"/move", MoveRequest{To: to}, &r)
}

// Local is GET /v1/local.
func (c *Client) Local(ctx context.Context) (Local, error) {
	var out Local
	err := c.do(ctx, http.MethodGet, "/v1/local", nil, &out)
	return out, err
}

// ForgetMounts is POST /v1/local/volumes/{name}/forget.
func (c *Client) ForgetMounts(ctx context.Context, volume string) error {
	return c.do(ctx, http.MethodPost, "/v1/local/volumes/"+url.PathEscape(volume)+"/forget", nil, nil)
}

// SetMaintenance is PUT /v1/hosts/{name}/maintenance.
func (c *Client) SetMaintenance(ctx context.Context, host string, d time.Duration, reason string) (Maintenance, error) {
	var out Maintenance
	err := c.do(ctx, http.MethodPut, "/v1/hosts/"+url.PathEscape(host)+"/maintenance", MaintenanceRequest{For: d.String(), Reason: reason}, &out)
	return out, err
}

// EndMaintenance is DELETE /v1/hosts/{name}/maintenance.
func (c *Client) EndMaintenance(ctx context.Context, host string) error {
	return c.do(ctx, http.MethodDelete, "/v1/hosts/"+url.PathEscape(host)+"/maintenance", nil, nil)
}

// GrowVolume is POST /v1/volumes/{name}/grow.
func (c *Client) GrowVolume(ctx context.Context, volume, size string) (Grow, error) {
	var out Grow
	err := c.do(ctx, http.MethodPost, "/v1/volumes/"+url.PathEscape(volume)+"/grow", GrowRequest{Size: size}, &out)
	return out, err
}

// ExtendVGTimeout bounds POST /v1/vg/extend: every live host's part, and
// another extend's before it, take longer than other requests.
const ExtendVGTimeout = 5 * time.Minute

// ExtendVG is POST /v1/vg/extend.
func (c *Client) ExtendVG(ctx context.Context, devices []string) (VGExtend, error) {
	var out VGExtend
	hc := *c.HTTP
	hc.Timeout = ExtendVGTimeout
	err := c.doWith(ctx, &hc, http.MethodPost, "/v1/vg/extend", VGExtendRequest{Devices: devices}, &out)
	return out, err
}

// Doctor is GET /v1/doctor.
func (c *Client) Doctor(ctx context.Context) (Doctor, error) {
	var out Doctor
	err := c.do(ctx, http.MethodGet, "/v1/doctor", nil, &out)
	return out, err
}
