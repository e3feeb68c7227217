package config

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(*Config)
		wantErr []string
	}{
		{name: "defaults are valid", change: func(*Config) {}},
		{name: "external etcd", change: func(c *Config) { c.EtcdEndpoints = []string{"http://10.0.0.1:2379", "https://e2:2379"} }},
		{name: "empty host", change: func(c *Config) { c.Host = "" }, wantErr: []string{"--host (RELOCVOL_HOST): empty"}},
		{name: "bad host", change: func(c *Config) { c.Host = "a/b" }, wantErr: []string{`"a/b" is not a usable host name`}},
		{name: "endpoint not a URL", change: func(c *Config) { c.EtcdEndpoints = []string{"etcd1:2379"} }, wantErr: []string{`RELOCVOL_ETCD_ENDPOINTS): "etcd1:2379" is not a URL`}},
		{name: "cert without key", change: func(c *Config) {
			c.EtcdEndpoints = []string{"https://e:2379"}
			c.EtcdCert = "/nonexistent/cert.pem"
		}, wantErr: []string{"--etcd-cert and --etcd-key go together", "cannot read /nonexistent/cert.pem"}},
		{name: "TLS without endpoints", change: func(c *Config) { c.EtcdCA = "/etc/hostname" }, wantErr: []string{"TLS applies to an external etcd only"}},
		{name: "prefix", change: func(c *Config) { c.EtcdPrefix = "relocvol/" }, wantErr: []string{"must start with / and not end with one"}},
		{name: "backend", change: func(c *Config) { c.Backend = "zfs" }, wantErr: []string{`unknown backend "zfs": use loop or lvm`}},
		{name: "lvm with scsi3", change: func(c *Config) { c.Backend, c.LVMVG, c.Fencing = "lvm", "san", "scsi3" }},
		{name: "lvm without VG", change: func(c *Config) { c.Backend, c.Fencing = "lvm", "scsi3" }, wantErr: []string{"--lvm-vg (RELOCVOL_LVM_VG): empty"}},
		{name: "lvm bad VG", change: func(c *Config) { c.Backend, c.LVMVG, c.Fencing = "lvm", "a/b", "scsi3" }, wantErr: []string{`"a/b" is not a volume group name`}},
		{name: "lvm without fencing", change: func(c *Config) { c.Backend, c.LVMVG = "lvm", "san" }, wantErr: []string{"the lvm backend needs --fencing scsi3"}},
		{name: "loop with scsi3", change: func(c *Config) { c.Fencing = "scsi3" }, wantErr: []string{"use it with --backend lvm"}},
		{name: "preempt mode", change: func(c *Config) { c.PRPreempt = "hard" }, wantErr: []string{`--pr-preempt (RELOCVOL_PR_PREEMPT): "hard": use abort or plain`}},
		{name: "relative dir", change: func(c *Config) { c.SANDir = "san" }, wantErr: []string{`--san-dir (RELOCVOL_SAN_DIR): "san" must be an absolute path`}},
		{name: "fencing", change: func(c *Config) { c.Fencing = "stonith" }, wantErr: []string{`unknown fencing method "stonith": use none or scsi3`}},
		{name: "no API", change: func(c *Config) { c.APIAddr = "" }},
		{name: "API on all addresses with a token", change: func(c *Config) { c.APIAddr, c.APIToken = "0.0.0.0:7480", "s3cret" }},
		{name: "API on all addresses without a token (the cluster's)", change: func(c *Config) { c.APIAddr = ":7480" }},
		{name: "API certificate without key", change: func(c *Config) { c.APICert = "/etc/relocvol/cert.pem" }, wantErr: []string{"--api-cert (RELOCVOL_API_CERT): --api-cert and --api-key go together: set both (HTTPS) or neither (HTTP)"}},
		{name: "API key without certificate", change: func(c *Config) { c.APIKey = "/etc/relocvol/key.pem" }, wantErr: []string{"--api-cert and --api-key go together"}},
		{name: "API certificate unreadable", change: func(c *Config) { c.APICert, c.APIKey = "/nonexistent/cert.pem", "/nonexistent/key.pem" }, wantErr: []string{"--api-cert (RELOCVOL_API_CERT): cannot use /nonexistent/cert.pem with key /nonexistent/key.pem", "give PEM files"}},
		{name: "API certificate without an API", change: func(c *Config) { c.APIAddr, c.APICert, c.APIKey = "", "/x/cert.pem", "/x/key.pem" }, wantErr: []string{"TLS files are set but --api-addr is empty"}},
		{name: "API address", change: func(c *Config) { c.APIAddr = "7480" }, wantErr: []string{`--api-addr (RELOCVOL_API_ADDR): "7480" is not host:port`}},
		{name: "docker host", change: func(c *Config) { c.DockerHost = "/var/run/docker.sock" }, wantErr: []string{`--docker-host (RELOCVOL_DOCKER_HOST): "/var/run/docker.sock": use unix://`}},
		{name: "short ttl", change: func(c *Config) { c.LeaseTTL = time.Second }, wantErr: []string{"from 2s"}},
		{name: "long ttl", change: func(c *Config) { c.LeaseTTL = 121 * time.Second }, wantErr: []string{"to 2m0s"}},
		{name: "fractional ttl", change: func(c *Config) { c.LeaseTTL = 2500 * time.Millisecond }, wantErr: []string{"use whole seconds"}},
		{name: "default size", change: func(c *Config) { c.DefaultSize = "lots" }, wantErr: []string{`--default-size (RELOCVOL_DEFAULT_SIZE): invalid size "lots"`}},
		{name: "default fs", change: func(c *Config) { c.DefaultFS = "ntfs" }, wantErr: []string{`"ntfs": use ext4 or xfs`}},
		{name: "log level", change: func(c *Config) { c.LogLevel = "loud" }, wantErr: []string{`"loud": use debug, info, warn or error`}},
		{name: "every error at once", change: func(c *Config) {
			c.Backend, c.Fencing, c.LogLevel = "x", "y", "z"
		}, wantErr: []string{"unknown backend", "unknown fencing", "log-level"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults()
			c.Host = "node-1"
			tc.change(&c)
			err := c.Validate()
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// fromEnv parses args with env set, as `relocvol plugin` does.
func fromEnv(t *testing.T, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	c := Defaults()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	c.Bind(fs)
	for k, v := range env {
		t.Setenv(k, v)
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return c, ApplyEnv(fs)
}

// ThisHost is the plugin's host name without --host: RELOCVOL_HOST, else
// the hostname.
func TestThisHost(t *testing.T) {
	hostname, _ := os.Hostname()
	for _, tc := range []struct {
		name string
		env  *string
		want string
	}{
		{name: "hostname", want: hostname},
		{name: "RELOCVOL_HOST", env: ptr("node-7"), want: "node-7"},
		{name: "empty RELOCVOL_HOST", env: ptr(""), want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("RELOCVOL_HOST", "")
			if tc.env == nil {
				os.Unsetenv("RELOCVOL_HOST")
			} else {
				t.Setenv("RELOCVOL_HOST", *tc.env)
			}
			if got := ThisHost(); got != tc.want {
				t.Errorf("ThisHost() = %q, want %q", got, tc.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// ValidateHost is --host's rule, and says what a usable name is.
func TestValidateHost(t *testing.T) {
	for _, tc := range []struct {
		host string
		want string // "" when valid
	}{
		{host: "node-1"},
		{host: "db01.example.com"},
		{host: "", want: "empty: set a host name"},
		{host: "a", want: `"a" is not a usable host name: use 2 to 96 letters`},
		{host: "a/b", want: `"a/b" is not a usable host name`},
		{host: "a..b", want: `"a..b" is not a usable host name`},
		{host: "-x", want: "starting with a letter or digit"},
		{host: "node 1", want: `"node 1" is not a usable host name`},
	} {
		t.Run(tc.host, func(t *testing.T) {
			err := ValidateHost(tc.host)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestEnvFallback(t *testing.T) {
	c, err := fromEnv(t, map[string]string{
		"RELOCVOL_HOST":           "from-env",
		"RELOCVOL_ETCD_ENDPOINTS": "http://a:2379, http://b:2379",
		"RELOCVOL_LEASE_TTL":      "7s",
		"RELOCVOL_LOG_LEVEL":      "debug",
	}, "--log-level=warn")
	if err != nil {
		t.Fatal(err)
	}
	if c.Host != "from-env" || c.LeaseTTL != 7*time.Second {
		t.Fatalf("env not applied: host %q ttl %s", c.Host, c.LeaseTTL)
	}
	if strings.Join(c.EtcdEndpoints, ",") != "http://a:2379,http://b:2379" {
		t.Fatalf("endpoints %q", c.EtcdEndpoints)
	}
	if c.LogLevel != "warn" {
		t.Fatalf("the flag must win over the environment: log level %q", c.LogLevel)
	}
}

func TestEnvEmptyEndpointsMeansEmbedded(t *testing.T) {
	c, err := fromEnv(t, map[string]string{"RELOCVOL_ETCD_ENDPOINTS": ""})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.EtcdEndpoints) != 0 {
		t.Fatalf("empty variable gave endpoints %q", c.EtcdEndpoints)
	}
}

func TestEnvBadValueNamed(t *testing.T) {
	_, err := fromEnv(t, map[string]string{"RELOCVOL_LEASE_TTL": "five"})
	if err == nil || !strings.Contains(err.Error(), `RELOCVOL_LEASE_TTL="five"`) {
		t.Fatalf("err = %v", err)
	}
}

// Every flag must be settable in the managed plugin under the same name.
func TestEnvNames(t *testing.T) {
	if got := EnvName("etcd-endpoints"); got != "RELOCVOL_ETCD_ENDPOINTS" {
		t.Fatal(got)
	}
}

func TestBeyondHost(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:7480": false, "localhost:1": false, "[::1]:2": false, "0.0.0.0:7480": true, ":7480": true, "10.1.2.3:80": true, "api.example.com:80": true, "x": false, "": false} {
		if beyondHost(addr) != want {
			t.Errorf("beyondHost(%q) = %v", addr, !want)
		}
	}
}

// A warning is due when the API answers beyond loopback without TLS.
func TestAPIPlainBeyondHost(t *testing.T) {
	for _, tc := range []struct {
		addr, cert string
		want       bool
	}{
		{"127.0.0.1:7480", "", false},
		{"localhost:7480", "", false},
		{"[::1]:7480", "", false},
		{"", "", false},
		{"0.0.0.0:7480", "", true},
		{":7480", "", true},
		{"10.0.0.1:7480", "", true},
		{"10.0.0.1:7480", "/etc/relocvol/cert.pem", false},
	} {
		c := Config{APIAddr: tc.addr, APICert: tc.cert}
		if got := c.APIPlainBeyondHost(); got != tc.want {
			t.Errorf("APIAddr %q, APICert %q: plain beyond the host %v, want %v", tc.addr, tc.cert, got, tc.want)
		}
	}
}
