package controller

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/internal/store"
)

// Docker is what the agent needs of the local engine
// (github.com/docker/docker/client.Client has it).
type Docker interface {
	ContainerList(ctx context.Context, opts container.ListOptions) ([]container.Summary, error)
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
	ContainerCreate(ctx context.Context, cfg *container.Config, hc *container.HostConfig, nc *network.NetworkingConfig, p *ocispec.Platform, name string) (container.CreateResponse, error)
	ContainerStart(ctx context.Context, id string, opts container.StartOptions) error
	ContainerStop(ctx context.Context, id string, opts container.StopOptions) error
	ContainerRemove(ctx context.Context, id string, opts container.RemoveOptions) error
	ImagePull(ctx context.Context, ref string, opts image.PullOptions) (io.ReadCloser, error)
	Events(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error)
}

// Agent runs on every host. It records the host's relocatable containers
// (label relocvol.relocate=true, using relocvol volumes) as apps in etcd,
// runs the apps etcd places on this host, removes its copies of apps placed
// elsewhere, and stops every relocatable container, and every container
// using a relocvol volume mounted here, as soon as the host cannot prove its
// lease is current. Swarm tasks are Swarm's (swarm.go): stopped by
// self-fencing like the others, never adopted or started again.
type Agent struct {
	st     AgentStore
	docker Docker
	host   string
	hb     Liveness
	rec    *Recorder
	m      *Metrics
	log    logrus.FieldLogger

	kick chan struct{}

	// keySrc reads the cluster's app key (on the storage, not in etcd);
	// key is what it read, kept: records are signed and checked with it.
	keySrc AppKeySource
	key    []byte

	// vols are the plugin's counts of the volumes mounted here (nil: only
	// labelled containers are stopped when the lease is lost).
	vols LocalVolumes
	// orphanEvery is how often mount IDs are checked against the engine.
	orphanEvery time.Duration

	mu sync.Mutex
	// sf is the state of the current (or last) self-fencing episode.
	sf api.SelfFencing
	// selfStopped are containers this agent stopped when it lost its lease
	// (Swarm tasks left out): restarted if etcd still places them here,
	// removed otherwise.
	selfStopped map[string]bool
	// busy are apps with a start, stop or removal in progress here, which
	// Docker events about them must not be mistaken for the user's doing.
	busy map[string]bool
	// pending maps a volume to the relocation being started here, so that
	// the plugin's mount steps land in that relocation's timeline.
	pending map[string]*store.App
	// reported avoids repeating the same waiting/failure event every tick.
	reported map[string]string
}

// NewAgent returns an agent for host; vols are the plugin's counts of the
// volumes mounted here (nil: only labelled containers are stopped when the
// lease is lost, and no mount ID is collected); key reads the cluster's
// app key, which signs the records this agent writes and checks those it
// starts from.
func NewAgent(st AgentStore, d Docker, hb Liveness, rec *Recorder, m *Metrics, host string, vols LocalVolumes, key AppKeySource, log logrus.FieldLogger) *Agent {
	return &Agent{
		st: st, docker: d, host: host, hb: hb, rec: rec, m: m, log: log.WithField("host", host), vols: vols, keySrc: key,
		orphanEvery: orphanEvery,
		kick:        make(chan struct{}, 1), selfStopped: map[string]bool{}, busy: map[string]bool{},
		pending: map[string]*store.App{}, reported: map[string]string{},
	}
}

// Run works until ctx ends.
func (a *Agent) Run(ctx context.Context) {
	go a.watchLease(ctx)
	go a.collectOrphans(ctx)
	go a.watchDocker(ctx)
	go a.watchApps(ctx)
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		a.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.kick:
		}
	}
}

// Kick asks for a reconciliation now.
func (a *Agent) Kick() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Observe is the plugin's mount hook: steps of a mount for an app being
// started here join that app's relocation timeline.
func (a *Agent) Observe(volume, phase string, took time.Duration) {
	a.mu.Lock()
	app := a.pending[volume]
	a.mu.Unlock()
	if app == nil || app.Relocation == nil {
		return
	}
	a.rec.Step(*app, phase, took, "volume "+volume, nil)
}

// spawn runs f for app name in the background unless something already
// runs for it, so that one slow app never holds up the others.
func (a *Agent) spawn(name string, f func()) {
	a.mu.Lock()
	if a.busy[name] {
		a.mu.Unlock()
		return
	}
	a.busy[name] = true
	a.mu.Unlock()
	go func() {
		defer a.done(name)
		f()
	}()
}

func (a *Agent) done(name string) {
	a.mu.Lock()
	delete(a.busy, name)
	a.mu.Unlock()
}

// report runs f once per (app, what) until what changes.
func (a *Agent) report(app, what string, f func()) {
	a.mu.Lock()
	seen := a.reported[app] == what
	a.reported[app] = what
	a.mu.Unlock()
	if !seen {
		f()
	}
}
