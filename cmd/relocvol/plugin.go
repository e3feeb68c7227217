package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/client"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/term"

	"github.com/relocvol/relocvol/backends"
	"github.com/relocvol/relocvol/backends/loop"
	"github.com/relocvol/relocvol/backends/lvm"
	"github.com/relocvol/relocvol/controller"
	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/fencing/scsi3"
	"github.com/relocvol/relocvol/heartbeat"
	"github.com/relocvol/relocvol/internal/config"
	"github.com/relocvol/relocvol/internal/execx"
	"github.com/relocvol/relocvol/internal/failpoint"
	"github.com/relocvol/relocvol/internal/fsutil"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/plugin"
)

// What this binary wires together fits, checked at compile time: the
// driver is the heartbeat's storage side; the fencers are what the plugin
// and the leader fence with, with the optional abilities the plugin uses;
// the backends keep the cluster's mark (and lvm lists what is active).
var (
	_ heartbeat.Member           = (*plugin.Driver)(nil)
	_ heartbeat.Releaser         = (*plugin.Driver)(nil)
	_ plugin.KeyReleaser         = (*scsi3.Fencer)(nil)
	_ plugin.Fencer              = (*scsi3.Fencer)(nil)
	_ plugin.Fencer              = fencing.None{}
	_ plugin.FenceChecker        = (*scsi3.Fencer)(nil)
	_ plugin.RegistrationChecker = (*scsi3.Fencer)(nil)
	_ plugin.StorageJoiner       = (*scsi3.Fencer)(nil)
	_ plugin.ClusterMarker       = (*loop.Loop)(nil)
	_ plugin.ClusterMarker       = (*lvm.LVM)(nil)
	_ plugin.AppKeyKeeper        = (*loop.Loop)(nil)
	_ plugin.AppKeyKeeper        = (*lvm.LVM)(nil)
	_ plugin.ActiveLister        = (*lvm.LVM)(nil)
	_ storageDiagnoser           = (*lvm.LVM)(nil)
	_ storageDiagnoser           = (*loop.Loop)(nil)
	_ fencingDiagnoser           = (*scsi3.Fencer)(nil)
	_ fencingDiagnoser           = fencing.None{}
)

func pluginCmd() *cobra.Command {
	cfg := config.Defaults()
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "Run the host daemon: VolumeDriver socket, controller and REST API (the managed plugin's entrypoint)",
		Long: `Run relocvol on this host: serve the Docker VolumeDriver socket, keep the
host's lease in etcd, record and relocate containers labelled
relocvol.relocate=true through the local Docker engine (--docker-host), take
part in the leader election that fails dead hosts over, and serve the REST
API, Prometheus metrics (/metrics) and a status page (/) on --api-addr.

Write access to etcd is root on every host, so: the embedded etcd (no
--etcd-endpoints) answers only over TLS to its client certificate in
--state-dir/etcd-pki; the API always requires a token (--api-token, or the
cluster's, made once in etcd), kept in --state-dir/api-token for the CLI run
as root, with a read-only one in api-token-read; and the agent starts only
app records an agent of the cluster signed, with the app key kept on the
storage (the SAN folder's .relocvol-app-key, or a VG tag).

Every flag can also be set with its RELOCVOL_* environment variable (the
flag wins), e.g. --etcd-endpoints = RELOCVOL_ETCD_ENDPOINTS; in the managed
plugin: docker plugin set relocvol RELOCVOL_ETCD_ENDPOINTS=http://etcd1:2379

It runs mount, umount, mkfs.ext4 and mkfs.xfs, and losetup (--backend loop)
or the LVM commands, sg_persist and, for multipath maps, mpathpersist
(--backend lvm), and checks at start that they are on PATH. The managed
plugin carries them all; outside it, install them with
apt-get install lvm2 sg3-utils multipath-tools xfsprogs e2fsprogs`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := config.ApplyEnv(cmd.Flags()); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return runPlugin(ctx, cfg)
		},
	}
	cfg.Bind(cmd.Flags())
	return cmd
}

func newLogger(level string) *logrus.Logger {
	log := logrus.New()
	log.SetOutput(os.Stdout)
	lvl, _ := logrus.ParseLevel(level) // validated
	log.SetLevel(lvl)
	if !term.IsTerminal(int(os.Stdout.Fd())) {
		// Milliseconds: a takeover's steps are that close together.
		log.SetFormatter(&logrus.JSONFormatter{TimestampFormat: "2006-01-02T15:04:05.000Z07:00"})
	}
	return log
}

// startRetry is how long the plugin waits after a failed start-up attempt
// (etcd or the storage not answering, the host's name alive elsewhere)
// before the next.
const startRetry = 10 * time.Second

// runPlugin serves the VolumeDriver socket at once (plugin.Starting: Docker
// disables a plugin whose socket is not there within about 12 s), then
// starts the host, again every startRetry until it works or ctx ends.
func runPlugin(ctx context.Context, cfg config.Config) error {
	log := newLogger(cfg.LogLevel)
	if failpoint.Enabled {
		failpoint.Arm(cfg.StateDir)
		log.WithField("file", failpoint.Path(cfg.StateDir)).Warn("TEST BUILD: failpoints can kill this plugin; never run it in production")
	}
	for _, dir := range []string{cfg.StateDir, cfg.MountRoot} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	// The names of the cluster's volumes this host has seen: Docker's Get
	// must find them while etcd does not answer (plugin.Known).
	known, err := plugin.OpenKnown(filepath.Join(cfg.StateDir, "volumes"))
	if err != nil {
		return err
	}
	gate := plugin.NewStarting(cfg.Host, plugin.StartWait, known)
	served := make(chan error, 1)
	go func() { served <- plugin.Serve(ctx, cfg.Socket, gate) }()
	log.WithField("socket", cfg.Socket).Info("relocvol plugin starting: the socket answers, requests wait until the host is ready")
	for attempt := 1; ; attempt++ {
		err := runHost(ctx, cfg, log, gate, known, served)
		var se *startError
		if !errors.As(err, &se) {
			return err
		}
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		gate.Failed(se.err, startRetry)
		log.WithError(se.err).WithField("attempt", attempt).Errorf("relocvol cannot start; trying again in %s", startRetry)
		select {
		case <-ctx.Done():
			return nil
		case err := <-served:
			return err
		case <-time.After(startRetry):
		}
	}
}

// startError is a failure before the host was ready: runPlugin tries again.
type startError struct{ err error }

func (e *startError) Error() string { return e.err.Error() }
func (e *startError) Unwrap() error { return e.err }

// runHost assembles the daemon: etcd (embedded unless endpoints are set),
// the store, the backend, fencing, the host's liveness and recovery of the
// previous state; then it hands gate's requests to the driver and runs until
// ctx ends or the socket or the API fail. What fails before that is a
// *startError.
func runHost(ctx context.Context, cfg config.Config, log *logrus.Logger, gate *plugin.Starting, known *plugin.Known, served <-chan error) error {
	failed := func(err error) error { return &startError{err: err} }
	endpoints := cfg.EtcdEndpoints
	etcdTLS := store.TLSFiles{CA: cfg.EtcdCA, Cert: cfg.EtcdCert, Key: cfg.EtcdKey}
	if len(endpoints) == 0 {
		gate.Step("starting the embedded etcd in " + cfg.StateDir)
		srv, files, err := startEmbeddedEtcd(cfg, log)
		if err != nil {
			return failed(err)
		}
		defer srv.Close()
		etcdTLS = files
		for _, ep := range srv.Endpoints() {
			endpoints = append(endpoints, dialable(ep))
		}
		log.WithFields(logrus.Fields{"endpoints": endpoints, "dir": cfg.StateDir}).Info("started embedded etcd (TLS, for the client certificate of " + files.Cert + " only)")
	}
	gate.Step("connecting to etcd at " + strings.Join(endpoints, ","))
	cli, err := store.Dial(ctx, endpoints, etcdTLS)
	if err != nil {
		return failed(err)
	}
	defer func(cli *clientv3.Client) { _ = cli.Close() }(cli) // before the embedded server closes
	st := store.New(cli, cfg.EtcdPrefix)
	// Docker's List (every `docker volume` command) from memory; it runs
	// once the driver that hears of its changes is made.
	listing := st.NewVolumeCache()
	lctx, stopListing := context.WithCancel(ctx)
	defer stopListing() // before the client closes

	run := &execx.OS{Log: log}
	hb := heartbeat.New(st, cfg.Host, cfg.LeaseTTL, cfg.StateDir, version, log)
	gate.Step("checking the " + cfg.Backend + " backend's commands and storage")
	be, fencer, err := storage(ctx, cfg, run, st, hb, log)
	if err != nil {
		return failed(err)
	}
	if ok, why := fsutil.GrowsOnline("ext4"); !ok {
		log.WithField("reason", why).Warn("an ext4 volume grown while in use (relocvol volume grow) gets its new size when next mounted, not online; xfs grows online")
	}
	// One cluster per storage: refuse a SAN folder or VG another relocvol
	// cluster (another etcd, or another prefix) uses.
	gate.Step("checking that the storage is this cluster's")
	cl, err := st.Cluster(ctx, cfg.Host)
	if err != nil {
		return failed(err)
	}
	etcdName := strings.Join(endpoints, ",") + " prefix " + cfg.EtcdPrefix
	if err := plugin.CheckCluster(ctx, be, cl, etcdName); err != nil {
		return failed(err)
	}
	if cfg.DockerHost != "" {
		// Peers place apps only on hosts whose agent can start them.
		hb.Info = func(h *store.Host) { h.Agent = true }
	}
	var docker controller.Docker
	var engine plugin.Containers
	hd := &hostDoctor{cfg: cfg, st: st, beat: hb, backend: be, fencer: fencer, cluster: cl, endpoints: endpoints, etcdTLS: etcdTLS, etcdName: etcdName,
		timings: func() (time.Duration, time.Duration, time.Duration) {
			return hb.MaxRenewalGap(), hb.Timings().Cutoff(), hb.Timings().Renew
		}}
	if cfg.DockerHost != "" {
		dc, err := client.NewClientWithOpts(client.WithHost(cfg.DockerHost), client.WithAPIVersionNegotiation())
		if err != nil {
			return failed(fmt.Errorf("docker client for %s: %w", cfg.DockerHost, err))
		}
		defer func() { _ = dc.Close() }()
		docker, engine, hd.engine = dc, dc, dc
	}
	// The driver tells the controller each mount step (a relocation's
	// timeline); the controller counts and drops the driver's mounts.
	var ctl *controller.Controller
	drv := plugin.New(st, be, fsutil.FS{Run: run}, fencer, hb, plugin.Options{
		Host: cfg.Host, MountRoot: cfg.MountRoot, Defaults: cfg.SpecDefaults(), Log: log,
		Observe: func(volume, phase string, took time.Duration) { ctl.Observe(volume, phase, took) },
		Grace:   hb.Timings().Grace, Cluster: cl, Etcd: etcdName,
		Docker: engine, DockerName: cfg.DockerHost, Known: known, Listing: listing,
	})
	ctl = controller.New(controller.Options{
		Host: cfg.Host, Version: version, Store: st, Docker: docker, Beat: hb, Fencer: fencer, Log: log,
		Volumes: drv, Grower: drv, VG: drv, Diagnose: hd.Report,
		AppKey: func(ctx context.Context) ([]byte, error) { return plugin.ReadAppKey(ctx, be) },
	})
	hb.Member = drv
	// The cache tells the driver of volumes grown by other hosts: it grows
	// the filesystems of those it mounts (RunGrows, once joined).
	listing.OnChange = drv.VolumeChanged
	go listing.Run(lctx)
	apiToken, apiReadToken, err := apiTokens(ctx, st, cfg, log)
	if err != nil {
		return failed(err)
	}
	var ln net.Listener
	if cfg.APIAddr != "" {
		// Before the host joins: a taken port is a configuration error.
		if cfg.APICert != "" {
			ln, err = api.ListenTLS(cfg.APIAddr, cfg.APICert, cfg.APIKey)
		} else {
			ln, err = api.Listen(cfg.APIAddr)
		}
		if err != nil {
			return failed(err)
		}
		if cfg.APIPlainBeyondHost() {
			log.WithField("api", cfg.APIAddr).Warn("the API answers beyond this host over plain HTTP: its bearer token crosses the network in the clear; set RELOCVOL_API_CERT and RELOCVOL_API_KEY (--api-cert, --api-key) to serve HTTPS")
		}
	}
	gate.Step("joining the cluster as host " + cfg.Host + " (its lease in etcd, then its registration on the storage)")
	if err := hb.Start(ctx); err != nil {
		if ln != nil {
			_ = ln.Close()
		}
		return failed(err)
	}
	ctl.Run(ctx)
	go drv.RunGrows(ctx)
	go drv.RunVGOps(ctx)
	errc := make(chan error, 3)
	h := api.Handler(ctl, api.Options{Token: apiToken, ReadToken: apiReadToken, TokenFile: cfg.APITokenFile(), ReadTokenFile: cfg.APIReadTokenFile(),
		Metrics: ctl.Metrics(), Log: log})
	if ln != nil {
		go func() { errc <- api.Serve(ctx, ln, h) }()
	}
	// And on the root-only socket the CLI run as root asks (and alone
	// sends the token file to by itself). Without it the CLI still works
	// with --api and a token.
	if sock, err := api.ListenUnix(cfg.APISocket()); err != nil {
		log.WithError(err).Warn("the API's socket cannot be served: the relocvol CLI needs --api and --token on this host")
	} else {
		go func() { errc <- api.Serve(ctx, sock, api.OnSocket(h)) }()
	}
	go func() { errc <- <-served }()
	gate.Ready(drv)
	log.WithFields(logrus.Fields{
		"socket": cfg.Socket, "backend": be.Name(), "fencing": fencer.Name(), "etcd": endpoints, "version": version,
		"api": cfg.APIAddr, "docker": cfg.DockerHost,
	}).Info("relocvol plugin ready")
	err = <-errc
	if ctx.Err() != nil && cfg.StopMaintenance > 0 {
		// A clean stop (docker plugin disable -f, upgrade): the containers
		// keep running without the plugin, so peers must not fail this
		// host over while it is away.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		ctl.MaintainOnStop(sctx, cfg.StopMaintenance)
		cancel()
	}
	return err
}

// storage builds the configured backend and its fencing method, which acts
// on the storage outside the host's join only while hb says the host is
// alive. The commands they run are checked first, all at once, so that a
// missing one is named with its package at start-up rather than met as an
// exec error in the middle of a Mount.
// The lvm backend and scsi3 fencing offer what relocvol vg extend needs.
var (
	_ plugin.VGExtender  = (*lvm.LVM)(nil)
	_ plugin.PVJoiner    = (*scsi3.Fencer)(nil)
	_ plugin.KeyReleaser = (*scsi3.Fencer)(nil)
)

func storage(ctx context.Context, cfg config.Config, run execx.Runner, st *store.Store, hb *heartbeat.Heartbeat, log *logrus.Logger) (backends.Backend, plugin.Fencer, error) {
	switch cfg.Backend {
	case "lvm":
		// mpathpersist is checked once the PVs say whether it is needed.
		if err := execx.CheckTools(exec.LookPath, lvm.Tools, fsutil.Tools, []execx.Tool{scsi3.SGPersist}); err != nil {
			return nil, nil, fmt.Errorf("lvm backend: %w", err)
		}
		lv, err := lvm.New(cfg.LVMVG, run, st, lvm.WithLogger(log))
		if err != nil {
			return nil, nil, err
		}
		if err := lv.Check(ctx); err != nil {
			return nil, nil, err
		}
		opts := []scsi3.Option{scsi3.WithLogger(log)}
		if cfg.PRPreempt == "plain" {
			opts = append(opts, scsi3.WithPlainPreempt())
		}
		fencer := scsi3.New(run, cfg.Host, hb, lv.PVs, opts...)
		if err := fencer.CheckTools(ctx, exec.LookPath); err != nil {
			return nil, nil, fmt.Errorf("scsi3 fencing: %w", err)
		}
		return lv, fencer, nil
	default:
		if err := execx.CheckTools(exec.LookPath, loop.Tools, fsutil.Tools); err != nil {
			return nil, nil, fmt.Errorf("loop backend: %w", err)
		}
		lp, err := loop.New(cfg.SANDir, run, loop.WithLogger(log))
		if err != nil {
			return nil, nil, err
		}
		return lp, fencing.None{Log: log}, nil
	}
}
