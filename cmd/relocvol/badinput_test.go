package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
)

// strictService refuses as the controller does and counts what it
// accepted: a bad request must leave it at zero.
type strictService struct {
	moveService
	changes int
}

func (s *strictService) Move(_ context.Context, app, to string) (api.Relocation, error) {
	if app != "db" {
		return api.Relocation{}, api.Errorf(api.ErrNotFound, "no app %q: relocvol moves containers labelled relocvol.relocate=true that use relocvol volumes (see relocvol apps)", app)
	}
	if to != "n2" {
		return api.Relocation{}, api.Errorf(api.ErrInvalid, "host %q is not alive (no lease in etcd): pick one of the live hosts [n1 n2]", to)
	}
	s.changes++
	return api.Relocation{ID: "db-1", Kind: store.KindMove, From: "n1", To: to}, nil
}

func (s *strictService) SetMaintenance(_ context.Context, h string, d time.Duration, _ string) (api.Maintenance, error) {
	if err := store.ValidateMaintenance(d); err != nil {
		return api.Maintenance{}, api.Errorf(api.ErrInvalid, "%v", err)
	}
	if h != "n1" && h != "n2" {
		return api.Maintenance{}, api.Errorf(api.ErrNotFound, "no host %q: see relocvol hosts", h)
	}
	s.changes++
	return api.Maintenance{Host: h}, nil
}

func (s *strictService) ExtendVG(_ context.Context, devs []string) (api.VGExtend, error) {
	for _, d := range devs {
		if !strings.HasPrefix(d, "/dev/") {
			return api.VGExtend{}, api.Errorf(api.ErrInvalid, "device %q: give the absolute path of the LUN or multipath map under /dev (e.g. /dev/mapper/mpathb)", d)
		}
	}
	s.changes++
	return api.VGExtend{VG: "san", Devices: devs, Host: "n1"}, nil
}

func (s *strictService) GrowVolume(_ context.Context, v, size string) (api.Grow, error) {
	if v != "db" {
		return api.Grow{}, api.Errorf(api.ErrNotFound, "volume %q not found: create it with `docker volume create -d relocvol %s`", v, v)
	}
	n, _, err := spec.GrowTo(v, 1<<30, size)
	if err != nil {
		return api.Grow{}, api.Errorf(api.ErrInvalid, "%v", err)
	}
	s.changes++
	return api.Grow{Volume: v, Size: n, From: 1 << 30, By: "n1", Filesystem: api.FSGrown, Host: "n1"}, nil
}

func (s *strictService) ForgetMounts(_ context.Context, v string) error {
	return api.Errorf(api.ErrNotFound, "host n1 counts no mount of volume %q: nothing to forget", v)
}

// TestCLIBadInput runs the relocvol command line as a user would, with
// wrong commands, arguments, flags and values: each fails with an error
// that names what is wrong and says what to do, and nothing changes.
func TestCLIBadInput(t *testing.T) {
	svc := &strictService{}
	srv := httptest.NewServer(api.Handler(svc, api.Options{Token: "s3cret"}))
	defer srv.Close()
	dir := t.TempDir()
	noCert := filepath.Join(dir, "none.pem")
	apiFlags := []string{"--api", srv.URL, "--token", "s3cret"}
	with := func(a ...string) []string { return append(a, apiFlags...) }
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"unknown command", []string{"mvoe", "db"}, []string{`unknown command "mvoe"`}},
		{"move: no app", with("move"), []string{"relocvol move takes 1 argument(s), got 0", "use relocvol move APP --to HOST"}},
		{"move: two apps", with("move", "db", "web", "--to", "n2"), []string{"takes 1 argument(s), got 2"}},
		{"move: no target", with("move", "db"), []string{"--to is required: name the host to move db to"}},
		{"move: unknown app", with("move", "web", "--to", "n2"), []string{`no app "web"`, "see relocvol apps"}},
		{"move: dead host", with("move", "db", "--to", "n9"), []string{`host "n9" is not alive`, "pick one of the live hosts"}},
		{"move: bad timeout", with("move", "db", "--to", "n2", "--timeout", "soon"), []string{`invalid argument "soon" for "--timeout"`, "see relocvol move --help"}},
		{"move: unknown flag", with("move", "db", "--to", "n2", "--force"), []string{"unknown flag: --force", "see relocvol move --help"}},
		{"wrong token", []string{"move", "db", "--to", "n2", "--api", srv.URL, "--token", "guess"}, []string{"missing or wrong bearer token", "--token or RELOCVOL_API_TOKEN"}},
		{"no token", []string{"hosts", "--api", srv.URL}, []string{"missing or wrong bearer token"}},
		{"API not a URL", []string{"hosts", "--api", "10.0.0.1:7480"}, []string{`--api (RELOCVOL_API) "10.0.0.1:7480" is not a URL of an API`, "http://10.0.0.1:7480"}},
		{"API unreachable", []string{"hosts", "--api", "http://127.0.0.1:1"}, []string{"cannot reach the relocvol API at http://127.0.0.1:1", "is the plugin enabled on this host?"}},
		{"CA without https", []string{"hosts", "--api", srv.URL, "--api-ca", noCert}, []string{"--api-ca (RELOCVOL_API_CA) is set but --api", "is not https://"}},
		{"CA file missing", []string{"hosts", "--api", "https://127.0.0.1:7480", "--api-ca", noCert}, []string{"--api-ca (RELOCVOL_API_CA)", noCert}},
		{"hosts: extra argument", with("hosts", "n1"), []string{`unknown command "n1" for "relocvol hosts"`}},
		{"events: limit zero", with("events", "--limit", "0"), []string{"--limit 0: give a number of events from 1 to 10000"}},
		{"events: limit too large", with("events", "--limit", "20000"), []string{"--limit 20000: give a number of events from 1 to 10000"}},
		{"events: limit not a number", with("events", "--limit", "many"), []string{`invalid argument "many" for "--limit"`, "see relocvol events --help"}},
		{"events: since not a time", with("events", "--since", "yesterday"), []string{`--since "yesterday": give a duration ago (10m, 2h) or a time`}},
		{"events: since a negative duration", with("events", "--since", "-5m", "--follow"), []string{"--since -5m: give a duration ago without a sign"}},
		{"maintenance: no host", with("maintenance", "on"), []string{"takes 2 argument(s), got 1", "use relocvol maintenance on|off HOST"}},
		{"maintenance: unknown action", with("maintenance", "sideways", "n1"), []string{`unknown action "sideways"`, "relocvol maintenance on HOST --for 10m"}},
		{"maintenance: too short", with("maintenance", "on", "n1", "--for", "5s"), []string{"maintenance of 5s: use from 10s to 24h0m0s"}},
		{"maintenance: too long", with("maintenance", "on", "n1", "--for", "48h"), []string{"maintenance of 48h0m0s: use from 10s to 24h0m0s"}},
		{"maintenance: unknown host", with("maintenance", "on", "n7", "--for", "10m"), []string{`no host "n7"`}},
		{"maintenance: bad duration", with("maintenance", "on", "n1", "--for", "a while"), []string{`invalid argument "a while" for "--for"`}},
		{"forget-mounts: no volume", with("forget-mounts"), []string{"takes 1 argument(s), got 0"}},
		{"forget-mounts: unknown volume", with("forget-mounts", "nosuch"), []string{`no mount of volume "nosuch"`}},
		{"volume: no subcommand", with("volume"), []string{"relocvol volume needs a subcommand: relocvol volume grow NAME SIZE"}},
		{"volume grow: no size", with("volume", "grow", "db"), []string{"relocvol volume grow takes 2 argument(s), got 1", "use relocvol volume grow NAME SIZE"}},
		{"volume grow: smaller", with("volume", "grow", "db", "512M"), []string{`grow volume "db" to 512M: it is 1G already`, "relocvol only grows volumes", "create a smaller volume and copy the data"}},
		{"volume grow: not a size", with("volume", "grow", "db", "12QB"), []string{`grow volume "db": invalid size "12QB"`, "use a positive number with K, M, G or T"}},
		{"volume grow: unknown volume", with("volume", "grow", "nosuch", "2G"), []string{`volume "nosuch" not found`}},
		{"vg: no subcommand", with("vg"), []string{"relocvol vg needs a subcommand: relocvol vg extend DEVICE..."}},
		{"vg extend: no device", with("vg", "extend"), []string{"relocvol vg extend takes at least 1 device", "e.g. /dev/mapper/mpathb"}},
		{"vg extend: over the network", with("vg", "extend", "/dev/mapper/mpathb"), []string{"vg extend is served only on the host's root-only API socket", "run relocvol vg extend as root on a host"}},
		{"host: no subcommand", []string{"host"}, []string{"relocvol host needs a subcommand: relocvol host key [HOST]"}},
		{"host key: two hosts", []string{"host", "key", "n1", "n2"}, []string{"relocvol host key takes at most 1 argument, got 2", "use relocvol host key [HOST]"}},
		{"host key: empty host", []string{"host", "key", ""}, []string{"HOST: empty: set a host name"}},
		{"host key: bad host", []string{"host", "key", "a/b"}, []string{`HOST: "a/b" is not a usable host name`, "use 2 to 96 letters, digits"}},
		{"host key: unknown flag", []string{"host", "key", "--api", srv.URL}, []string{"unknown flag: --api", "see relocvol host key --help"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := rootCmd()
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs(tc.args)
			err := root.Execute()
			if err == nil {
				t.Fatalf("relocvol %v: accepted\n%s", tc.args, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("relocvol %v: %q does not say %q", tc.args, err, w)
				}
			}
			if svc.changes != 0 {
				t.Fatalf("relocvol %v changed the cluster", tc.args)
			}
		})
	}
}

// TestPluginBadConfiguration starts `relocvol plugin` with bad settings,
// as flags, environment variables and `docker plugin set` values (which
// reach it as environment variables): it refuses before it makes anything,
// naming the setting and its variable.
func TestPluginBadConfiguration(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"unknown backend", []string{"--backend", "zfs"}, nil, []string{`--backend (RELOCVOL_BACKEND)`, `"zfs"`}},
		{"lvm without a VG", []string{"--backend", "lvm", "--fencing", "scsi3"}, nil, []string{"--lvm-vg (RELOCVOL_LVM_VG)"}},
		{"unknown fencing", []string{"--fencing", "stonith"}, nil, []string{`unknown fencing method "stonith": use none or scsi3`}},
		{"lease too short", []string{"--lease-ttl", "1s"}, nil, []string{"--lease-ttl (RELOCVOL_LEASE_TTL)", "from 2s"}},
		{"lease not a duration", []string{"--lease-ttl", "long"}, nil, []string{`invalid argument "long" for "--lease-ttl"`}},
		{"default size", []string{"--default-size", "lots"}, nil, []string{`--default-size (RELOCVOL_DEFAULT_SIZE): invalid size "lots"`}},
		{"API certificate without key", []string{"--api-cert", "/x/cert.pem"}, nil, []string{"--api-cert and --api-key go together"}},
		{"etcd endpoint not a URL", []string{"--etcd-endpoints", "10.0.0.1:2379"}, nil, []string{`"10.0.0.1:2379" is not a URL: use http://host:2379`}},
		{"bad variable", nil, map[string]string{"RELOCVOL_LEASE_TTL": "forever"}, []string{"RELOCVOL_LEASE_TTL", "forever"}},
		{"docker plugin set value", nil, map[string]string{"RELOCVOL_DEFAULT_FS": "ntfs"}, []string{`--default-fs (RELOCVOL_DEFAULT_FS): "ntfs": use ext4 or xfs`}},
		{"log level", nil, map[string]string{"RELOCVOL_LOG_LEVEL": "loud"}, []string{`"loud": use debug, info, warn or error`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			sock := filepath.Join(dir, "run", "relocvol.sock")
			state := filepath.Join(dir, "state")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			root := rootCmd()
			root.SetArgs(append([]string{"plugin", "--host", "n1", "--socket", sock, "--state-dir", state}, tc.args...))
			err := root.Execute()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
			for _, p := range []string{filepath.Dir(sock), state} {
				if _, err := os.Stat(p); !os.IsNotExist(err) {
					t.Errorf("a refused start made %s", p)
				}
			}
		})
	}
}
