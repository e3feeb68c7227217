// Package config holds relocvol's one typed configuration. Every field has a
// command-line flag and a RELOCVOL_* environment variable of the same name,
// which is also how the managed plugin is configured (`docker plugin set
// relocvol RELOCVOL_...`, the settable env of config.json). Validate reports
// every problem at once, naming the setting and what to do.
package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/relocvol/relocvol/internal/liveness"
	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
)

// Config is the whole configuration of a relocvol host.
type Config struct {
	Host          string        // this host's name in the cluster
	EtcdEndpoints []string      // empty: start an embedded single-member etcd
	EtcdCA        string        // TLS: CA bundle to verify the etcd servers
	EtcdCert      string        // TLS: client certificate
	EtcdKey       string        // TLS: client key
	EtcdPrefix    string        // key prefix, so one etcd can serve several clusters
	EmbeddedEtcd  string        // client address of the embedded etcd
	Backend       string        // "loop" or "lvm"
	SANDir        string        // loop backend: the shared folder holding the images
	LVMVG         string        // lvm backend: the shared volume group
	StateDir      string        // host-local state (embedded etcd data, lease file, known volumes)
	MountRoot     string        // where volumes are mounted (the plugin's propagatedMount)
	Socket        string        // the VolumeDriver socket
	Fencing       string        // "none" or "scsi3"
	PRPreempt     string        // scsi3: "abort" (PREEMPT AND ABORT) or "plain" (PREEMPT)
	LeaseTTL      time.Duration // host liveness lease
	DefaultSize   string        // size of a volume created without -o size
	DefaultFS     string        // fs of a volume created without -o fs
	LogLevel      string
	DockerHost    string // the local Docker engine the agent drives
	APIAddr       string // REST API address (host:port), "" for none
	APIToken      string // bearer token the API requires ("": the cluster's, in etcd)
	APICert       string // TLS: the API's certificate (PEM), with APIKey
	APIKey        string // TLS: the API's private key (PEM)
	// StopMaintenance is the maintenance a plugin that stops cleanly with
	// volumes mounted announces, so that peers do not fail the host over
	// while its containers keep running without it (0: none).
	StopMaintenance time.Duration
}

// Defaults returns the configuration a one-host development setup works with.
func Defaults() Config {
	host, _ := os.Hostname()
	return Config{
		Host:            host,
		EtcdPrefix:      "/relocvol",
		EmbeddedEtcd:    "127.0.0.1:12379",
		Backend:         "loop",
		SANDir:          "/var/lib/relocvol/san",
		StateDir:        "/var/lib/relocvol",
		MountRoot:       "/mnt/volumes",
		Socket:          "/run/docker/plugins/relocvol.sock",
		Fencing:         "none",
		PRPreempt:       "abort",
		LeaseTTL:        5 * time.Second,
		DefaultSize:     "1G",
		DefaultFS:       "ext4",
		LogLevel:        "info",
		DockerHost:      "unix:///var/run/docker.sock",
		APIAddr:         "127.0.0.1:7480",
		StopMaintenance: 10 * time.Minute,
	}
}

// ThisHost is the name the plugin gives this host when --host is not on
// its command line: RELOCVOL_HOST, else the machine's hostname. It goes
// through Defaults, Bind and ApplyEnv as the plugin does, so that a command
// run outside the plugin (relocvol host key) cannot come to another name.
// A managed plugin reads RELOCVOL_HOST from its own settings (docker plugin
// set), not from the shell this runs in.
func ThisHost() string {
	c := Defaults()
	fs := pflag.NewFlagSet("host", pflag.ContinueOnError)
	c.Bind(fs)
	_ = ApplyEnv(fs, "host") // a string flag takes any value
	return c.Host
}

// EnvName is the environment variable that backs a flag of that name.
func EnvName(flag string) string {
	return "RELOCVOL_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// envAnnotation names, on a flag, a variable other than EnvName's.
const envAnnotation = "relocvol-env"

// FlagEnv is the environment variable that backs f.
func FlagEnv(f *pflag.Flag) string {
	if a := f.Annotations[envAnnotation]; len(a) == 1 {
		return a[0]
	}
	return EnvName(f.Name)
}

// Bind registers every setting as a flag on fs. Call ApplyEnv after parsing.
func (c *Config) Bind(fs *pflag.FlagSet) {
	fs.StringVar(&c.Host, "host", c.Host, "this host's name in the cluster, unique among its hosts (default: the machine's hostname)")
	fs.StringSliceVar(&c.EtcdEndpoints, "etcd-endpoints", c.EtcdEndpoints, "etcd client URLs, comma-separated; empty starts an embedded single-member etcd under --state-dir. Write access to etcd is root on every host: use https:// with --etcd-cert")
	fs.StringVar(&c.EtcdCA, "etcd-ca", c.EtcdCA, "CA file to verify the etcd servers (TLS)")
	fs.StringVar(&c.EtcdCert, "etcd-cert", c.EtcdCert, "client certificate file for etcd (TLS)")
	fs.StringVar(&c.EtcdKey, "etcd-key", c.EtcdKey, "client key file for etcd (TLS)")
	fs.StringVar(&c.EtcdPrefix, "etcd-prefix", c.EtcdPrefix, "prefix of every relocvol key in etcd, so that one etcd can serve several clusters")
	fs.StringVar(&c.EmbeddedEtcd, "embedded-etcd", c.EmbeddedEtcd, "client address (host:port) of the embedded etcd, used when --etcd-endpoints is empty; it and its peer port (the next) answer over TLS only, to the client certificate in --state-dir's etcd-pki (root only)")
	fs.StringVar(&c.Backend, "backend", c.Backend, "storage backend: loop (image files in a shared folder) or lvm (LVs in a shared volume group)")
	fs.StringVar(&c.SANDir, "san-dir", c.SANDir, "loop backend: shared folder that holds one image file per volume (<name>.img, a link to <name>.img.<ID>, the image the create with that identity made)")
	fs.StringVar(&c.LVMVG, "lvm-vg", c.LVMVG, "lvm backend: the volume group on the SAN LUN(s) that every host sees")
	fs.StringVar(&c.StateDir, "state-dir", c.StateDir, "host-local state folder (embedded etcd data and certificates, lease, API tokens, the names of the volumes this host has seen)")
	fs.StringVar(&c.MountRoot, "mount-root", c.MountRoot, "folder under which volumes are mounted (the plugin's propagatedMount)")
	fs.StringVar(&c.Socket, "socket", c.Socket, "path of the VolumeDriver unix socket")
	fs.StringVar(&c.Fencing, "fencing", c.Fencing, "fencing method: none (loop backend) or scsi3 (SCSI-3 persistent reservations, lvm backend)")
	fs.StringVar(&c.PRPreempt, "pr-preempt", c.PRPreempt, "scsi3: how a dead host's key is removed: abort (PREEMPT AND ABORT) or plain (PREEMPT, for targets that mishandle the abort)")
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", c.LeaseTTL, "host liveness lease TTL (whole seconds, 2s to 120s); every other liveness timing derives from it (docs/safety.md)")
	fs.StringVar(&c.DefaultSize, "default-size", c.DefaultSize, "size of a volume created without -o size")
	fs.StringVar(&c.DefaultFS, "default-fs", c.DefaultFS, "filesystem of a volume created without -o fs: ext4 or xfs")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	fs.StringVar(&c.DockerHost, "docker-host", c.DockerHost, "the local Docker engine the controller records and starts relocatable containers with, and the plugin asks whether a second Swarm task would share a volume; empty: no agent on this host")
	fs.StringVar(&c.APIAddr, "api-addr", c.APIAddr, "address (host:port) of the REST API, metrics and status page; empty: none over TCP (the root-only socket api.sock in --state-dir answers anyway). It always requires a token (--api-token)")
	fs.StringVar(&c.APIToken, "api-token", c.APIToken, "bearer token the REST API requires (Authorization: Bearer TOKEN); empty: the cluster's, made once in etcd; either way kept in --state-dir's api-token (mode 0600) for the CLI run as root, and a read-only token for GET requests (/metrics) in api-token-read")
	fs.StringVar(&c.APICert, "api-cert", c.APICert, "certificate file (PEM) of the REST API: with --api-key, it serves HTTPS only")
	fs.StringVar(&c.APIKey, "api-key", c.APIKey, "private key file (PEM) of --api-cert")
	fs.DurationVar(&c.StopMaintenance, "stop-maintenance", c.StopMaintenance, "maintenance announced when the plugin stops cleanly with volumes mounted (disable, set, enable; upgrade): peers do not fail the host over before it ends; 0: none")
}

// ApplyEnv sets every flag not given on the command line from its
// RELOCVOL_* variable, so flags win over the environment; with only, just
// the flags of those names.
func ApplyEnv(fs *pflag.FlagSet, only ...string) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if len(only) > 0 && !slices.Contains(only, f.Name) {
			return
		}
		v, ok := os.LookupEnv(FlagEnv(f))
		if !ok || f.Changed {
			return
		}
		if sv, isSlice := f.Value.(pflag.SliceValue); isSlice {
			// An empty variable means "none", not one empty element.
			var items []string
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					items = append(items, s)
				}
			}
			if err := sv.Replace(items); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", FlagEnv(f), v, err))
			}
			return
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", FlagEnv(f), v, err))
		}
	})
	return errors.Join(errs...)
}

// ValidateHost says what is wrong with a host name, if anything. It is
// the plugin's rule for --host, shared with the commands that take a host
// name before any plugin runs (relocvol host key): a name it refuses would
// never hold a lease or register a key. The name is a segment of etcd keys
// (<prefix>/fenced/<host>), hence no '/' and no "..".
func ValidateHost(name string) error {
	if name == "" {
		return errors.New("empty: set a host name unique in the cluster")
	}
	if err := spec.ValidateName(name); err != nil || strings.Contains(name, "..") {
		return fmt.Errorf("%q is not a usable host name: use 2 to %d letters, digits, '.', '_' and '-', starting with a letter or digit, without \"..\"", spec.Shorten(name), spec.MaxNameLen)
	}
	return nil
}

// Validate reports every invalid setting.
func (c *Config) Validate() error {
	var errs []error
	bad := func(flag, format string, a ...any) {
		errs = append(errs, fmt.Errorf("--%s (%s): %s", flag, EnvName(flag), fmt.Sprintf(format, a...)))
	}
	if err := ValidateHost(c.Host); err != nil {
		bad("host", "%v", err)
	}
	for _, ep := range c.EtcdEndpoints {
		if !strings.HasPrefix(ep, "http://") && !strings.HasPrefix(ep, "https://") {
			bad("etcd-endpoints", "%q is not a URL: use http://host:2379 or https://host:2379", ep)
		}
	}
	etcdTLS := 0
	for flag, f := range map[string]string{"etcd-ca": c.EtcdCA, "etcd-cert": c.EtcdCert, "etcd-key": c.EtcdKey} {
		if f == "" {
			continue
		}
		etcdTLS++
		if _, err := os.Stat(f); err != nil {
			bad(flag, "cannot read %s: %v", f, err)
		}
	}
	if (c.EtcdCert == "") != (c.EtcdKey == "") {
		bad("etcd-cert", "--etcd-cert and --etcd-key go together: set both or neither")
	}
	if etcdTLS > 0 && len(c.EtcdEndpoints) == 0 {
		bad("etcd-endpoints", "TLS files are set but no endpoints: TLS applies to an external etcd only")
	}
	if !strings.HasPrefix(c.EtcdPrefix, "/") || strings.HasSuffix(c.EtcdPrefix, "/") {
		bad("etcd-prefix", "%q must start with / and not end with one, e.g. /relocvol", c.EtcdPrefix)
	}
	if len(c.EtcdEndpoints) == 0 && !strings.Contains(c.EmbeddedEtcd, ":") {
		bad("embedded-etcd", "%q is not host:port", c.EmbeddedEtcd)
	}
	switch c.Backend {
	case "loop":
		if c.Fencing == "scsi3" {
			bad("fencing", "scsi3 fences the LUNs of an LVM volume group: use it with --backend lvm, or --fencing none with loop")
		}
	case "lvm":
		if c.LVMVG == "" {
			bad("lvm-vg", "empty: name the shared volume group, e.g. --lvm-vg san-vg")
		} else if strings.ContainsAny(c.LVMVG, "/ ") || strings.HasPrefix(c.LVMVG, "-") {
			bad("lvm-vg", "%q is not a volume group name", c.LVMVG)
		}
		if c.Fencing == "none" {
			bad("fencing", "the lvm backend needs --fencing scsi3: a dead host's writes to the SAN must be cut off before another host takes its volumes")
		}
	default:
		bad("backend", "unknown backend %q: use loop or lvm", c.Backend)
	}
	for flag, dir := range map[string]string{"san-dir": c.SANDir, "state-dir": c.StateDir, "mount-root": c.MountRoot, "socket": c.Socket} {
		if !filepath.IsAbs(dir) {
			bad(flag, "%q must be an absolute path", dir)
		}
	}
	if c.Fencing != "none" && c.Fencing != "scsi3" {
		bad("fencing", "unknown fencing method %q: use none or scsi3", c.Fencing)
	}
	if c.PRPreempt != "abort" && c.PRPreempt != "plain" {
		bad("pr-preempt", "%q: use abort or plain", c.PRPreempt)
	}
	if c.LeaseTTL < liveness.MinTTL || c.LeaseTTL > liveness.MaxTTL || c.LeaseTTL%time.Second != 0 {
		bad("lease-ttl", "%s: use whole seconds from %s (etcd grants no shorter lease) to %s", c.LeaseTTL, liveness.MinTTL, liveness.MaxTTL)
	} else if err := liveness.For(c.LeaseTTL).Check(); err != nil {
		bad("lease-ttl", "%v", err)
	}
	if c.StopMaintenance != 0 {
		if err := store.ValidateMaintenance(c.StopMaintenance); err != nil {
			bad("stop-maintenance", "%v, or 0 for none", err)
		}
	}
	if _, err := spec.ParseSize(c.DefaultSize); err != nil {
		bad("default-size", "%v", err)
	}
	if _, ok := spec.Filesystems[c.DefaultFS]; !ok {
		bad("default-fs", "%q: use ext4 or xfs", c.DefaultFS)
	}
	if c.DockerHost != "" && !strings.HasPrefix(c.DockerHost, "unix://") && !strings.HasPrefix(c.DockerHost, "tcp://") {
		bad("docker-host", "%q: use unix:///var/run/docker.sock or tcp://HOST:PORT", c.DockerHost)
	}
	if c.APIAddr != "" {
		_, port, err := net.SplitHostPort(c.APIAddr)
		if err != nil || port == "" {
			bad("api-addr", "%q is not host:port, e.g. 127.0.0.1:7480", c.APIAddr)
		}
	}
	switch {
	case (c.APICert == "") != (c.APIKey == ""):
		bad("api-cert", "--api-cert and --api-key go together: set both (HTTPS) or neither (HTTP)")
	case c.APICert != "" && c.APIAddr == "":
		bad("api-cert", "TLS files are set but --api-addr is empty (no API): set an address or drop --api-cert and --api-key")
	case c.APICert != "":
		if _, err := tls.LoadX509KeyPair(c.APICert, c.APIKey); err != nil {
			bad("api-cert", "cannot use %s with key %s: %v (give PEM files of one certificate and its key)", c.APICert, c.APIKey, err)
		}
	}
	if _, err := logrus.ParseLevel(c.LogLevel); err != nil {
		bad("log-level", "%q: use debug, info, warn or error", c.LogLevel)
	}
	return errors.Join(errs...)
}

// APIPlainBeyondHost reports whether the API answers beyond this host
// without TLS: its bearer token would cross the network in the clear.
func (c *Config) APIPlainBeyondHost() bool {
	return c.APICert == "" && beyondHost(c.APIAddr)
}

// beyondHost reports whether a listen address (host:port) answers beyond
// this host: anything but localhost and loopback addresses; false for what
// is not host:port.
func beyondHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// APITokenFile is where the host keeps its API token for the CLI run as
// root (mode 0600); APIReadTokenFile the read-only one (scrapes of
// /metrics and other reads).
func (c *Config) APITokenFile() string { return filepath.Join(c.StateDir, "api-token") }

// APISocket is the API's unix socket (mode 0600: root only), which the
// CLI run as root asks by default.
func (c *Config) APISocket() string { return filepath.Join(c.StateDir, "api.sock") }

// APIReadTokenFile is the read-only token's file (see APITokenFile).
func (c *Config) APIReadTokenFile() string { return filepath.Join(c.StateDir, "api-token-read") }

// SpecDefaults returns the defaults for volume options. Call after Validate.
func (c *Config) SpecDefaults() spec.Defaults {
	size, _ := spec.ParseSize(c.DefaultSize)
	return spec.Defaults{Size: size, FS: c.DefaultFS}
}
