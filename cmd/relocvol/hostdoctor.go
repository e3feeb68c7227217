package main

import (
	"context"
	"strings"
	"time"

	"github.com/docker/docker/api/types"

	"github.com/relocvol/relocvol/internal/config"
	"github.com/relocvol/relocvol/internal/doctor"
	"github.com/relocvol/relocvol/internal/fsutil"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/plugin"
)

// The doctor's checks the storage parts make of themselves: the backend's
// of its storage (lvm.LVM, loop.Loop), the fencing method's of its
// registrations, given the live hosts (scsi3.Fencer, fencing.None).
type (
	storageDiagnoser interface {
		Diagnose(ctx context.Context) []doctor.Check
	}
	fencingDiagnoser interface {
		Diagnose(ctx context.Context, live []string) []doctor.Check
	}
	engineVersion interface {
		ServerVersion(ctx context.Context) (types.Version, error)
	}
)

// hostDoctor runs this host's checks for relocvol doctor, from what runHost
// assembled.
type hostDoctor struct {
	cfg       config.Config
	st        *store.Store
	beat      interface{ Alive() bool }
	timings   func() (maxGap, cutoff, renew time.Duration)
	backend   any
	fencer    any
	engine    engineVersion // nil: no agent
	cluster   store.Cluster
	endpoints []string
	etcdTLS   store.TLSFiles // what this host dials etcd with
	etcdName  string
}

// Report runs every check, each with a deadline of its own within ctx's.
func (h *hostDoctor) Report(ctx context.Context) doctor.Report {
	cl := h.cluster.ID
	r := doctor.Report{Host: h.cfg.Host, At: time.Now().UTC(), Settings: doctor.Settings{
		Backend: h.cfg.Backend, Fencing: h.cfg.Fencing, Prefix: h.cfg.EtcdPrefix, Cluster: cl,
		LeaseTTL: h.cfg.LeaseTTL.String(), Version: version,
	}}
	if h.cfg.Backend == "lvm" {
		r.Settings.VG = h.cfg.LVMVG
	}
	add := func(c ...doctor.Check) { r.Checks = append(r.Checks, c...) }
	step := func(d time.Duration) (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, d) }

	maxGap, cutoff, renew := h.timings()
	sctx, cancel := step(10 * time.Second)
	lat, err := h.st.Latency(sctx, 3)
	cancel()
	add(doctor.Etcd(strings.Join(h.endpoints, ","), lat, err, renew))
	sctx, cancel = step(5 * time.Second)
	add(doctor.Access(h.etcdAccess(sctx)))
	cancel()
	add(doctor.LeaseSlack(h.beat.Alive(), maxGap, cutoff, renew))
	sctx, cancel = step(5 * time.Second)
	add(doctor.Clock(h.clock(sctx)))
	cancel()

	sctx, cancel = step(20 * time.Second)
	defer cancel()
	if err := plugin.CheckCluster(sctx, h.backend, h.cluster, h.etcdName); err != nil {
		add(doctor.Failed("storage identity", "see the message: one storage serves one relocvol cluster", "%v", err))
	} else {
		add(doctor.Passed("storage identity", "the storage is relocvol cluster %s's, as etcd says", cl))
	}
	if d, ok := h.backend.(storageDiagnoser); ok {
		add(d.Diagnose(sctx)...)
	}
	if d, ok := h.fencer.(fencingDiagnoser); ok {
		hosts, err := h.st.ListHosts(sctx)
		if err != nil {
			add(doctor.Failed("fencing", "see the etcd check", "cannot list the live hosts whose keys must be registered: %v", err))
		} else {
			live := make([]string, 0, len(hosts))
			for name := range hosts {
				live = append(live, name)
			}
			add(d.Diagnose(sctx, live)...)
		}
	}
	if ok, why := fsutil.GrowsOnline("ext4"); ok {
		add(doctor.Passed("online grow", "ext4 and xfs volumes grow online (relocvol volume grow)"))
	} else {
		add(doctor.Warned("online grow", "give the plugin CAP_SYS_RESOURCE (install it where the Docker engine can grant it), or use xfs for volumes that must grow in use",
			"xfs volumes grow online, ext4 ones at their next mount: %s", why))
	}
	engineVer, err := h.engineVersion(sctx)
	add(doctor.Docker(h.cfg.DockerHost, engineVer, err))
	return r
}

// clock is this host's clock against the first etcd endpoint's.
func (h *hostDoctor) clock(ctx context.Context) (offset, uncertainty time.Duration, err error) {
	tlsCfg, err := h.etcdTLS.Config()
	if err != nil {
		return 0, 0, err
	}
	return store.ServerClock(ctx, h.endpoints[0], tlsCfg)
}

// etcdAccess is what this host knows of who may write its etcd: how it is
// reached, and, over TLS, whether it answers a client without a
// certificate (asked of the first endpoint, as anyone could).
func (h *hostDoctor) etcdAccess(ctx context.Context) doctor.EtcdAccess {
	a := doctor.EtcdAccess{Endpoints: h.endpoints, Embedded: len(h.cfg.EtcdEndpoints) == 0, ClientCert: h.etcdTLS.Cert != ""}
	for _, ep := range h.endpoints {
		if !strings.HasPrefix(ep, "https://") {
			return a // plain HTTP: nothing to ask
		}
	}
	caOnly, err := store.TLSFiles{CA: h.etcdTLS.CA}.Config()
	if err != nil {
		a.ProbeErr = err
		return a
	}
	open, err := store.AnswersWithoutCert(ctx, h.endpoints[0], caOnly)
	if err != nil {
		a.ProbeErr = err
		return a
	}
	a.OpenToAnyone = &open
	return a
}

// engineVersion is the version of the Docker engine the agent uses ("",
// nil where there is none).
func (h *hostDoctor) engineVersion(ctx context.Context) (string, error) {
	if h.engine == nil {
		return "", nil
	}
	v, err := h.engine.ServerVersion(ctx)
	return v.Version, err
}
