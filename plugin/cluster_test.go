package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/relocvol/relocvol/backends"
	"github.com/relocvol/relocvol/backends/loop"
	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/heartbeat"
	"github.com/relocvol/relocvol/internal/execx"
	"github.com/relocvol/relocvol/internal/fsutil"
	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
	"github.com/relocvol/relocvol/plugin"
)

// cluster is a real etcd and a real shared "SAN" folder that several test
// hosts use, each a Driver with its own host name, mount root and lease.
type cluster struct {
	t         *testing.T
	endpoints []string
	san       string
	be        *loop.Loop
	fs        fsutil.FS
}

type host struct {
	name  string
	drv   *plugin.Driver
	hb    *heartbeat.Heartbeat
	cli   *clientv3.Client
	st    *store.Store
	root  string
	stop  context.CancelFunc
	state string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "losetup", "mkfs.ext4", "mkfs.xfs", "mount", "umount")
	c := &cluster{t: t, endpoints: testenv.Etcd(t), san: t.TempDir()}
	log := logrus.New()
	log.SetOutput(testenv.LogWriter{T: t})
	run := &execx.OS{Log: log}
	be, err := loop.New(c.san, run)
	if err != nil {
		t.Fatal(err)
	}
	c.be, c.fs = be, fsutil.FS{Run: run}
	t.Cleanup(c.assertNoResidue)
	return c
}

// host starts a test host; root and state may be reused to restart one.
func (c *cluster) host(name, root, state string) *host {
	c.t.Helper()
	return c.hostWith(name, root, state, hostOpts{})
}

// hostOpts change a test host; zero values keep the defaults.
type hostOpts struct {
	fencer  plugin.Fencer     // default: fencing none
	grace   time.Duration     // the grace its takeovers wait
	backend backends.Backend  // default: the cluster's loop backend
	docker  plugin.Containers // default: no engine to ask
}

// hostWith is host with options.
func (c *cluster) hostWith(name, root, state string, o hostOpts) *host {
	t := c.t
	t.Helper()
	if root == "" {
		root = t.TempDir()
	}
	if state == "" {
		state = t.TempDir()
	}
	cli := testenv.EtcdClient(t, c.endpoints)
	st := store.New(cli, "/relocvol")
	log := logrus.New()
	log.SetOutput(testenv.LogWriter{T: t})
	log.SetLevel(logrus.DebugLevel)
	hb := heartbeat.New(st, name, 3*time.Second, state, "test", log)
	if o.fencer == nil {
		o.fencer = fencing.None{Log: log}
	}
	if o.backend == nil {
		o.backend = c.be
	}
	drv := plugin.New(st, o.backend, c.fs, o.fencer, hb, plugin.Options{
		Host: name, MountRoot: root, Defaults: spec.Defaults{Size: 64 << 20, FS: "ext4"}, Timeout: 20 * time.Second, Log: log,
		Grace: o.grace, Docker: o.docker, DockerName: "unix:///test/docker.sock",
	})
	hb.Member = drv
	ctx, cancel := context.WithCancel(context.Background())
	if err := hb.Start(ctx); err != nil {
		cancel()
		t.Fatalf("start host %s: %v", name, err)
	}
	// As runHost does: the volume cache tells the driver of grown volumes.
	cache := st.NewVolumeCache()
	cache.OnChange = drv.VolumeChanged
	go cache.Run(ctx)
	go drv.RunGrows(ctx)
	h := &host{name: name, drv: drv, hb: hb, cli: cli, st: st, root: root, stop: cancel, state: state}
	t.Cleanup(func() {
		h.stop()
		// Leave nothing mounted or attached behind, whatever the test did.
		mounts, _ := fsutil.Mounts(root)
		for mp := range mounts {
			_ = c.fs.Unmount(context.Background(), mp)
		}
	})
	return h
}

// kill makes h dead for its peers at once, as if its power was cut: its
// lease is revoked and it stops renewing.
func (h *host) kill(t *testing.T) {
	t.Helper()
	h.stop()
	hs, err := h.st.HostState(context.Background(), h.name)
	if err != nil {
		t.Fatal(err)
	}
	if hs.Alive {
		if _, err := h.cli.Revoke(context.Background(), clientv3.LeaseID(hs.Info.Lease)); err != nil {
			t.Fatal(err)
		}
	}
}

func (c *cluster) assertNoResidue() {
	t := c.t
	entries, _ := os.ReadDir(c.san)
	ctx := context.Background()
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".img")
		if !ok {
			continue // the cluster's mark
		}
		if dev, err := c.be.Device(ctx, name); err != nil || dev != "" {
			t.Errorf("residue: volume %s still attached to %q (err %v)", name, dev, err)
			_ = c.be.Deactivate(ctx, name)
		}
	}
}

func mustCreate(t *testing.T, h *host, name string, opts map[string]string) {
	t.Helper()
	if err := h.drv.Create(&volume.CreateRequest{Name: name, Options: opts}); err != nil {
		t.Fatalf("create %s on %s: %v", name, h.name, err)
	}
}

func mustMount(t *testing.T, h *host, name, id string) string {
	t.Helper()
	r, err := h.drv.Mount(&volume.MountRequest{Name: name, ID: id})
	if err != nil {
		t.Fatalf("mount %s/%s on %s: %v", name, id, h.name, err)
	}
	return r.Mountpoint
}

func mustUnmount(t *testing.T, h *host, name, id string) {
	t.Helper()
	if err := h.drv.Unmount(&volume.UnmountRequest{Name: name, ID: id}); err != nil {
		t.Fatalf("unmount %s/%s on %s: %v", name, id, h.name, err)
	}
}

func claimOf(t *testing.T, h *host, name string) store.Claim {
	t.Helper()
	c, _, err := h.st.GetClaim(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeFile(t *testing.T, dir, name, data string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func wantErr(t *testing.T, err error, kind error, contains ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", kind)
	}
	if kind != nil && !errors.Is(err, kind) {
		t.Fatalf("error %q is not %v", err, kind)
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not say %q", err, s)
		}
	}
}

func newHeartbeatOnly(t *testing.T, c *cluster, name string) *heartbeat.Heartbeat {
	cli := testenv.EtcdClient(t, c.endpoints)
	log := logrus.New()
	log.SetOutput(testenv.LogWriter{T: t})
	return heartbeat.New(store.New(cli, "/relocvol"), name, 3*time.Second, t.TempDir(), "test", log)
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %w: %s", name, args, err, out)
	}
	return nil
}
