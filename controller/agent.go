package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/pkg/jsonmessage"
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
	st     *store.Store
	docker Docker
	host   string
	hb     *Heartbeat
	rec    *Recorder
	m      *Metrics
	log    logrus.FieldLogger

	kick chan struct{}

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
// lease is lost, and no mount ID is collected).
func NewAgent(st *store.Store, d Docker, hb *Heartbeat, rec *Recorder, m *Metrics, host string, vols LocalVolumes, log logrus.FieldLogger) *Agent {
	return &Agent{
		st: st, docker: d, host: host, hb: hb, rec: rec, m: m, log: log.WithField("host", host), vols: vols,
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

// restartPlain starts again the containers without relocvol.relocate that
// self-fencing stopped: they are not apps, so they never move, and they
// come back where they were once the lease is (if a peer took their volume
// meanwhile, the plugin refuses the mount and they stay stopped).
func (a *Agent) restartPlain(ctx context.Context, isApp map[string]bool) {
	a.mu.Lock()
	var names []string
	for name := range a.selfStopped {
		if !isApp[name] && !a.busy[name] {
			names = append(names, name)
		}
	}
	a.mu.Unlock()
	for _, name := range names {
		a.mu.Lock()
		delete(a.selfStopped, name)
		a.mu.Unlock()
		log := a.log.WithField("container", name)
		if err := a.docker.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
			log.WithError(err).Warn("cannot restart a container stopped while the lease was lost")
			continue
		}
		log.Info("restarted a container stopped while the lease was lost")
	}
}

// watchApps reconciles as soon as etcd places or moves an app, rather
// than at the next tick: a relocation's start waits for nothing else.
func (a *Agent) watchApps(ctx context.Context) {
	for ctx.Err() == nil {
		for resp := range a.st.WatchApps(ctx) {
			if resp.Err() != nil {
				break
			}
			a.Kick()
		}
		sleep(ctx, time.Second)
	}
}

// ---- Docker events ----

// watchDocker reacts to containers started, stopped or removed by the user.
func (a *Agent) watchDocker(ctx context.Context) {
	for ctx.Err() == nil {
		f := filters.NewArgs(filters.Arg("type", "container"), filters.Arg("label", LabelRelocate))
		msgs, errs := a.docker.Events(ctx, events.ListOptions{Filters: f})
	loop:
		for {
			select {
			case <-ctx.Done():
				return
			case err := <-errs:
				if ctx.Err() == nil {
					a.log.WithError(err).Debug("docker events stream ended; reconnecting")
				}
				break loop
			case m := <-msgs:
				a.dockerEvent(ctx, m)
			}
		}
		sleep(ctx, time.Second)
	}
}

func (a *Agent) dockerEvent(ctx context.Context, m events.Message) {
	name := m.Actor.Attributes["name"]
	if name == "" || !relocatable(m.Actor.Attributes) {
		return
	}
	a.mu.Lock()
	ours := a.busy[name] || a.sf.Active
	a.mu.Unlock()
	switch m.Action {
	case events.ActionStop, events.ActionDestroy, events.ActionStart:
	default:
		return
	}
	if !ours && a.hb.Alive() {
		a.userAction(ctx, name, m.Action)
	}
	a.Kick()
}

// userAction records what the user did to an app placed here: a stopped
// container is not started by a relocation, a removed one is forgotten.
func (a *Agent) userAction(ctx context.Context, name string, action events.Action) {
	app, rev, err := a.st.GetApp(ctx, name)
	if err != nil || app.Host != a.host {
		return
	}
	log := a.log.WithField("app", name)
	switch action {
	case events.ActionDestroy:
		if err := a.st.DeleteApp(ctx, name, rev); err != nil {
			log.WithError(err).Warn("cannot forget the removed app")
			return
		}
		_ = a.st.ClearRunning(ctx, name, a.host)
		log.Info("container removed: app forgotten")
	case events.ActionStop, events.ActionStart:
		stopped := action == events.ActionStop
		if app.Stopped == stopped {
			return
		}
		app.Stopped = stopped
		if _, err := a.st.PutApp(ctx, app, rev); err != nil {
			log.WithError(err).Debug("cannot record the app's state; next reconcile will")
		}
	}
}

// ---- reconciliation ----

func containerName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return strings.TrimPrefix(names[0], "/")
}

// reconcile brings this host in line with etcd; it does nothing while the
// host's lease is not current.
func (a *Agent) reconcile(ctx context.Context) {
	if !a.hb.Alive() {
		return
	}
	list, err := a.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelRelocate))})
	if err != nil {
		a.report("", "docker: "+err.Error(), func() {
			a.log.WithError(err).Warn("cannot list Docker containers; retrying (relocation of this host's containers waits for the engine)")
		})
		return
	}
	a.report("", "docker ok", func() {}) // so that the next failure is logged again
	apps, err := a.st.ListApps(ctx)
	if err != nil {
		a.log.WithError(err).Warn("cannot read apps; retrying")
		return
	}
	running, err := a.st.ListRunning(ctx)
	if err != nil {
		a.log.WithError(err).Warn("cannot read running apps; retrying")
		return
	}
	local := map[string]container.Summary{}
	nrunning := 0
	for _, c := range list {
		if !relocatable(c.Labels) {
			continue
		}
		name := containerName(c.Names)
		local[name] = c
		if a.isBusy(name) {
			continue
		}
		app, known := apps[name]
		switch {
		case !known:
			a.adopt(ctx, c)
		case app.Value.Host == a.host:
			if c.State == "running" {
				nrunning++
				a.markRunning(ctx, name, running)
				if app.Value.Relocation != nil {
					a.finish(ctx, name)
				}
				continue
			}
			a.mu.Lock()
			restart := a.selfStopped[name]
			a.mu.Unlock()
			if app.Value.Relocation != nil && app.Value.Stopped {
				a.finish(ctx, name) // relocated as the user left it: stopped
			} else if restart || app.Value.Relocation != nil {
				a.spawn(name, func() { a.startExisting(ctx, c.ID, app.Value, restart) })
			} else if running[name] == a.host {
				_ = a.st.ClearRunning(ctx, name, a.host)
			}
		default:
			a.spawn(name, func() { a.removeCopy(ctx, c, app.Value) })
		}
	}
	if a.m != nil {
		a.m.appsRunning.Set(float64(nrunning))
	}
	isApp := make(map[string]bool, len(apps))
	for name := range apps {
		isApp[name] = true
	}
	a.restartPlain(ctx, isApp)
	for name, app := range apps {
		if app.Value.Host != a.host {
			continue
		}
		if _, ok := local[name]; ok || a.isBusy(name) {
			continue
		}
		if app.Value.Relocation == nil {
			// Placed here and settled, but the container is gone: the user
			// removed it while no event reached this agent.
			if err := a.st.DeleteApp(ctx, name, app.Rev); err == nil {
				a.log.WithField("app", name).Info("container no longer exists here: app forgotten")
			}
			continue
		}
		v := app.Value
		a.spawn(name, func() { a.startNew(ctx, v) })
	}
}

func (a *Agent) isBusy(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.busy[name]
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

func (a *Agent) markRunning(ctx context.Context, name string, running map[string]string) {
	if running[name] == a.host {
		return
	}
	if err := a.st.SetRunning(ctx, name, a.host, a.hb.Lease()); err != nil {
		a.log.WithError(err).WithField("app", name).Debug("cannot record the app as running")
	}
}

// adopt records a relocatable container found on this host as an app
// placed here, if it uses relocvol volumes.
func (a *Agent) adopt(ctx context.Context, c container.Summary) {
	name := containerName(c.Names)
	log := a.log.WithField("app", name)
	if ok, why := adoption(c.Labels); !ok {
		if why != "" {
			a.report(name, "not adopted", func() { log.Warn(why) })
		}
		return
	}
	ins, err := a.docker.ContainerInspect(ctx, c.ID)
	if err != nil {
		log.WithError(err).Warn("cannot inspect container")
		return
	}
	vols, err := a.st.ListVolumes(ctx)
	if err != nil {
		log.WithError(err).Warn("cannot read volumes")
		return
	}
	spec, used := specFromContainer(ins, func(v string) bool { _, ok := vols[v]; return ok })
	if len(used) == 0 {
		a.report(name, "novol", func() {
			log.Warn("container is labelled relocvol.relocate=true but uses no relocvol volume: nothing to relocate, ignoring it")
		})
		return
	}
	app := store.App{Name: name, Host: a.host, Volumes: used, Allowed: allowedHosts(spec.Labels), Spec: spec,
		Stopped: ins.State != nil && !ins.State.Running}
	if _, err := a.st.PutApp(ctx, app, 0); err != nil {
		log.WithError(err).Warn("cannot record the app")
		return
	}
	log.WithFields(logrus.Fields{"volumes": used, "image": spec.Image}).Info("recorded relocatable app")
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

// removeCopy stops and removes this host's copy of an app etcd places on
// another host. When this host is a planned move's source, the steps go
// into its timeline and the volumes are released before it returns.
func (a *Agent) removeCopy(ctx context.Context, c container.Summary, app store.App) {
	log := a.log.WithFields(logrus.Fields{"app": app.Name, "placed_on": app.Host})
	source := app.Relocation != nil && app.Relocation.From == a.host
	if c.State == "running" {
		start := time.Now()
		err := a.docker.ContainerStop(ctx, c.ID, container.StopOptions{})
		if source {
			a.rec.Step(app, "stopped", time.Since(start), "", err)
		}
		if err != nil {
			log.WithError(err).Error("cannot stop this host's copy of the app")
			return
		}
	}
	start := time.Now()
	if err := a.docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{}); err != nil {
		log.WithError(err).Error("cannot remove this host's copy of the app")
		return
	}
	a.mu.Lock()
	delete(a.selfStopped, app.Name)
	a.mu.Unlock()
	_ = a.st.ClearRunning(ctx, app.Name, a.host)
	log.Info("removed this host's copy of an app placed elsewhere")
	if source {
		err := a.awaitReleased(ctx, app.Volumes, 30*time.Second)
		a.rec.Step(app, "released", time.Since(start), "unmounted and released "+strings.Join(app.Volumes, ","), err)
	}
}

// awaitReleased waits until no claim of vols is held by this host.
func (a *Agent) awaitReleased(ctx context.Context, vols []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var held []string
		for _, v := range vols {
			c, _, err := a.st.GetClaim(ctx, v)
			if err != nil || c.Host == a.host {
				held = append(held, v)
			}
		}
		if len(held) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("volumes %s still claimed by host %s after %s", strings.Join(held, ","), a.host, timeout)
		}
		sleep(ctx, 100*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// volumesFree says whether every volume of app can be mounted here: not
// claimed, claimed by this host, or claimed by a host that is not alive
// (the mount fences it). A live holder is still releasing it.
func (a *Agent) volumesFree(ctx context.Context, app store.App) (bool, string, error) {
	for _, v := range app.Volumes {
		c, _, err := a.st.GetClaim(ctx, v)
		if err != nil {
			return false, "", err
		}
		if !c.Held() || c.Host == a.host {
			continue
		}
		hs, err := a.st.HostState(ctx, c.Host)
		if err != nil {
			return false, "", err
		}
		if hs.Alive {
			return false, fmt.Sprintf("volume %s is still in use on host %s", v, c.Host), nil
		}
	}
	return true, "", nil
}

// awaitFree waits, polling, until app's volumes may be mounted here (in a
// planned move, the source is releasing them right now), then re-reads the
// app: false if it is no longer on its way here, or after 30 s (the next
// reconcile tries again).
func (a *Agent) awaitFree(ctx context.Context, app *store.App) bool {
	log := a.log.WithFields(logrus.Fields{"app": app.Name, "relocation": app.Relocation.ID})
	deadline := time.Now().Add(30 * time.Second)
	for {
		free, why, err := a.volumesFree(ctx, *app)
		if err == nil && free {
			break
		}
		if why != "" {
			a.report(app.Name, why, func() { log.Info("waiting: " + why) })
		}
		if time.Now().After(deadline) || ctx.Err() != nil || !a.hb.Alive() {
			return false
		}
		sleep(ctx, 100*time.Millisecond)
	}
	cur, _, err := a.st.GetApp(ctx, app.Name)
	if err != nil || cur.Host != a.host || cur.Relocation == nil || cur.Relocation.ID != app.Relocation.ID {
		return false
	}
	*app = cur
	return true
}

// startNew creates and starts an app placed here by a relocation.
func (a *Agent) startNew(ctx context.Context, app store.App) {
	if !a.awaitFree(ctx, &app) {
		return
	}
	cfg, hc := dockerConfig(app.Spec)
	start := time.Now()
	created, err := a.docker.ContainerCreate(ctx, cfg, hc, nil, nil, app.Name)
	if cerrdefs.IsNotFound(err) {
		// The image is not on this host yet: pull it (from the registry its
		// name points at) and try once more.
		if perr := a.pull(ctx, app.Spec.Image); perr != nil {
			err = fmt.Errorf("%w; pulling it failed: %v", err, perr)
		} else {
			a.rec.Step(app, "pulled", time.Since(start), "image "+app.Spec.Image, nil)
			start = time.Now()
			created, err = a.docker.ContainerCreate(ctx, cfg, hc, nil, nil, app.Name)
		}
	}
	if err != nil {
		err = fmt.Errorf("create container %s on host %s: %w (the image must be on every host that may run it, or in a registry they can pull from)", app.Name, a.host, err)
		a.report(app.Name, err.Error(), func() { a.rec.Step(app, "failed", time.Since(start), "", err) })
		return
	}
	a.rec.Step(app, "created", time.Since(start), "image "+app.Spec.Image, nil)
	if app.Stopped {
		a.finish(ctx, app.Name)
		return
	}
	a.start(ctx, created.ID, app)
}

// pull fetches an image, reading Docker's progress stream to its end
// (the pull is done only then).
func (a *Agent) pull(ctx context.Context, ref string) error {
	rc, err := a.docker.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return err
	}
	defer func() { _ = rc.Close() }()
	// A failed pull is often reported inside the stream, not as an error.
	return jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil)
}

// startExisting starts a container that exists here: one this agent
// stopped when it lost its lease and etcd still places here, or one whose
// relocation start failed before.
func (a *Agent) startExisting(ctx context.Context, id string, app store.App, selfStopped bool) {
	if selfStopped {
		a.log.WithField("app", app.Name).Info("restarting a container stopped while the lease was lost: no other host took it")
	}
	if app.Relocation != nil && !a.awaitFree(ctx, &app) {
		return
	}
	if a.start(ctx, id, app) {
		a.mu.Lock()
		delete(a.selfStopped, app.Name)
		a.mu.Unlock()
	}
}

// start starts a container; the mount steps and the start join the app's
// relocation timeline if it has one.
func (a *Agent) start(ctx context.Context, id string, app store.App) bool {
	if app.Relocation != nil {
		a.mu.Lock()
		for _, v := range app.Volumes {
			a.pending[v] = &app
		}
		a.mu.Unlock()
		defer func() {
			a.mu.Lock()
			for _, v := range app.Volumes {
				if a.pending[v] == &app {
					delete(a.pending, v)
				}
			}
			a.mu.Unlock()
		}()
	}
	start := time.Now()
	err := a.docker.ContainerStart(ctx, id, container.StartOptions{})
	if err != nil {
		err = fmt.Errorf("start container %s on host %s: %w", app.Name, a.host, err)
		if app.Relocation != nil {
			a.report(app.Name, err.Error(), func() { a.rec.Step(app, "failed", time.Since(start), "", err) })
		} else {
			a.log.WithError(err).WithField("app", app.Name).Error("cannot start container")
		}
		return false
	}
	if app.Relocation != nil {
		a.rec.Step(app, "started", time.Since(start), "", nil)
		a.finish(ctx, app.Name)
	}
	if err := a.st.SetRunning(ctx, app.Name, a.host, a.hb.Lease()); err != nil {
		a.log.WithError(err).Debug("cannot record the app as running")
	}
	return true
}

// finish ends the relocation of an app that now runs here: the total goes
// into the timeline and the metrics, and the relocation is cleared.
func (a *Agent) finish(ctx context.Context, name string) {
	for attempt := 0; attempt < 5; attempt++ {
		app, rev, err := a.st.GetApp(ctx, name)
		if err != nil || app.Host != a.host || app.Relocation == nil {
			return
		}
		r := *app.Relocation
		app.Relocation = nil
		_, err = a.st.PutApp(ctx, app, rev)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			a.log.WithError(err).WithField("app", name).Warn("cannot clear the finished relocation; next reconcile will")
			return
		}
		total := time.Since(r.Started)
		app.Relocation = &r
		a.rec.Step(app, "done", total, fmt.Sprintf("%s of %s from %s to %s took %s", r.Kind, name, r.From, r.To, total.Round(time.Millisecond)), nil)
		if a.m != nil {
			a.m.relocations.WithLabelValues(r.Kind, "ok").Inc()
			a.m.relocationSeconds.WithLabelValues(r.Kind).Observe(total.Seconds())
		}
		a.mu.Lock()
		delete(a.reported, name)
		a.mu.Unlock()
		return
	}
}
