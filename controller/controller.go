package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
)

// Options assemble a Controller.
type Options struct {
	Host    string
	Version string
	Store   *store.Store
	Docker  Docker // nil: no agent (a host that only serves volumes)
	Beat    *Heartbeat
	Fencer  fencing.Method
	// Grace is how long after a host's lease is gone the leader fences it
	// (default: the heartbeat's liveness timings, the grace a Mount's
	// takeover waits too).
	Grace time.Duration
	// Volumes are the plugin's counts of this host's mounted volumes: the
	// metrics count them, self-fencing stops every container that uses one
	// and unmounts what is left, and the agent drops mount IDs no container
	// of the engine uses.
	Volumes LocalVolumes
	Log     logrus.FieldLogger
}

// Controller is one host's controller: agent, leader candidate and the
// data behind the REST API.
type Controller struct {
	opt    Options
	st     *store.Store
	rec    *Recorder
	m      *Metrics
	agent  *Agent
	leader *Leader
	log    logrus.FieldLogger
}

var _ api.Service = (*Controller)(nil)

// New assembles a controller; Run starts it.
func New(opt Options) *Controller {
	if opt.Grace == 0 {
		opt.Grace = opt.Beat.Timings().Grace
	}
	log := opt.Log.WithField("host", opt.Host)
	var mounted func() int
	if opt.Volumes != nil {
		mounted = func() int { return len(opt.Volumes.Mounts()) }
	}
	m := NewMetrics(mounted)
	m.watchSlack(opt.Beat)
	rec := NewRecorder(opt.Store, opt.Host, m, opt.Log)
	c := &Controller{opt: opt, st: opt.Store, rec: rec, m: m, log: log}
	if opt.Docker != nil {
		// Peers place apps only on hosts that can start them.
		opt.Beat.Info = func(h *store.Host) { h.Agent = true }
		c.agent = NewAgent(opt.Store, opt.Docker, opt.Beat, rec, m, opt.Host, opt.Volumes, opt.Log)
	}
	c.leader = NewLeader(opt.Store, opt.Beat, opt.Fencer, opt.Grace, rec, m, opt.Host, opt.Log)
	return c
}

// Observe is the plugin's mount hook (see plugin.Options.Observe).
func (c *Controller) Observe(volume, phase string, took time.Duration) {
	if c.agent != nil {
		c.agent.Observe(volume, phase, took)
	}
}

// Metrics serves the Prometheus metrics.
func (c *Controller) Metrics() http.Handler { return c.m.Handler() }

// Run starts the recorder, the agent and the leader candidate; it returns
// at once, they stop when ctx ends.
func (c *Controller) Run(ctx context.Context) {
	go c.endStopMaintenance(ctx)
	go c.rec.Run(ctx)
	if c.agent != nil {
		go c.agent.Run(ctx)
	}
	go c.leader.Run(ctx)
}

// ---- planned moves ----

// Move places app on host to, recording a planned relocation: the source
// agent stops and removes its copy (which releases the volumes), the
// target's agent then creates and starts it. Progress is in the timeline.
func (c *Controller) Move(ctx context.Context, name, to string) (store.Relocation, error) {
	for attempt := 0; ; attempt++ {
		app, rev, err := c.st.GetApp(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return store.Relocation{}, api.Errorf(http.StatusNotFound, "no app %q: relocvol moves containers labelled relocvol.relocate=true that use relocvol volumes (see relocvol apps)", name)
		}
		if err != nil {
			return store.Relocation{}, err
		}
		if err := c.checkMove(ctx, app, to); err != nil {
			return store.Relocation{}, err
		}
		now := time.Now().UTC()
		rel := store.Relocation{ID: name + "-" + strconv.FormatInt(now.UnixMilli(), 36), Kind: store.KindMove, From: app.Host, To: to, Started: now}
		app.Host, app.Relocation = to, &rel
		if _, err := c.st.PutApp(ctx, app, rev); err != nil {
			if errors.Is(err, store.ErrConflict) && attempt < 3 {
				continue
			}
			return store.Relocation{}, err
		}
		c.rec.Step(app, "requested", 0, fmt.Sprintf("move %s from %s to %s", name, rel.From, to), nil)
		c.log.WithFields(logrus.Fields{"app": name, "from": rel.From, "to": to}).Info("planned move requested")
		return rel, nil
	}
}

func (c *Controller) checkMove(ctx context.Context, app store.App, to string) error {
	if app.Relocation != nil {
		return api.Errorf(http.StatusConflict, "app %q is already being relocated (%s from %s to %s, started %s): wait for it to finish (relocvol events --app %s)",
			app.Name, app.Relocation.Kind, app.Relocation.From, app.Relocation.To, app.Relocation.Started.Format(time.RFC3339), app.Name)
	}
	if app.Host == to {
		return api.Errorf(http.StatusConflict, "app %q already runs on host %s: nothing to move", app.Name, to)
	}
	if len(app.Allowed) > 0 && !slices.Contains(app.Allowed, to) {
		return api.Errorf(http.StatusBadRequest, "app %q may only run on %v (label %s): host %s is not one of them", app.Name, app.Allowed, LabelHosts, to)
	}
	hs, err := c.st.HostState(ctx, to)
	if err != nil {
		return err
	}
	if hs.Alive && !hs.Info.Agent {
		return api.Errorf(http.StatusBadRequest, "host %q runs no agent (its plugin has RELOCVOL_DOCKER_HOST empty), so it cannot start app %q: pick a host with one (relocvol hosts)", to, app.Name)
	}
	if !hs.Alive {
		hosts, _ := c.st.ListHosts(ctx)
		var live []string
		for h := range hosts {
			live = append(live, h)
		}
		sort.Strings(live)
		return api.Errorf(http.StatusBadRequest, "host %q is not alive (no lease in etcd): pick one of the live hosts %v", to, live)
	}
	if _, rev, err := c.st.GetFence(ctx, to); err != nil {
		return err
	} else if rev != 0 {
		return api.Errorf(http.StatusConflict, "host %q was fenced and has not rejoined cleanly yet: pick another host", to)
	}
	return nil
}

// ---- views for the API ----

// Status implements api.Service.
func (c *Controller) Status(ctx context.Context) (api.Status, error) {
	s := api.Status{Host: c.opt.Host, Version: c.opt.Version, Alive: c.opt.Beat.Alive()}
	var err error
	if s.Leader, err = c.st.Leader(ctx); err != nil {
		return s, err
	}
	hosts, err := c.Hosts(ctx)
	if err != nil {
		return s, err
	}
	s.Hosts = len(hosts)
	for _, h := range hosts {
		if h.Alive {
			s.HostsAlive++
		}
	}
	vols, err := c.st.ListVolumes(ctx)
	if err != nil {
		return s, err
	}
	s.Volumes = len(vols)
	apps, err := c.st.ListApps(ctx)
	if err != nil {
		return s, err
	}
	s.Apps = len(apps)
	for _, a := range apps {
		if a.Value.Relocation != nil {
			s.Relocating++
		}
	}
	return s, nil
}

// Hosts implements api.Service: live hosts, and dead ones that still hold
// claims, apps or a fencing mark.
func (c *Controller) Hosts(ctx context.Context) ([]api.Host, error) {
	live, err := c.st.ListHosts(ctx)
	if err != nil {
		return nil, err
	}
	fences, err := c.st.ListFences(ctx)
	if err != nil {
		return nil, err
	}
	apps, err := c.st.ListApps(ctx)
	if err != nil {
		return nil, err
	}
	claims, err := c.st.ListClaims(ctx)
	if err != nil {
		return nil, err
	}
	leader, err := c.st.Leader(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]*api.Host{}
	get := func(name string) *api.Host {
		if h, ok := byName[name]; ok {
			return h
		}
		h := &api.Host{Name: name, Leader: name == leader}
		byName[name] = h
		return h
	}
	for name, h := range live {
		hv := get(name)
		hv.Alive, hv.Version, hv.Agent = true, h.Value.Version, h.Value.Agent
		started := h.Value.Started
		hv.Started = &started
		if st, err := c.st.HostState(ctx, name); err == nil {
			hv.Alive = st.Alive
			hv.LeaseAgeSeconds = st.LastRenewed.Seconds()
		}
	}
	maint, err := c.st.ListMaintenance(ctx)
	if err != nil {
		return nil, err
	}
	for name, m := range maint {
		am := apiMaintenance(m.Value)
		get(name).Maintenance = &am
	}
	for name, f := range fences {
		hv := get(name)
		at := f.Value.At
		hv.Fenced, hv.FencedBy, hv.FencedAt = true, f.Value.By, &at
	}
	for _, a := range apps {
		get(a.Value.Host).Apps++
	}
	for _, cl := range claims {
		if cl.Value.Held() {
			get(cl.Value.Host).Volumes++
		}
	}
	out := make([]api.Host, 0, len(byName))
	for _, h := range byName {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Volumes implements api.Service.
func (c *Controller) Volumes(ctx context.Context) ([]api.Volume, error) {
	vols, err := c.st.ListVolumes(ctx)
	if err != nil {
		return nil, err
	}
	claims, err := c.st.ListClaims(ctx)
	if err != nil {
		return nil, err
	}
	live, err := c.st.ListHosts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.Volume, 0, len(vols))
	for name, v := range vols {
		cl := claims[name].Value
		_, alive := live[cl.Host]
		out = append(out, api.Volume{
			Name: name, Backend: v.Value.Backend, Size: v.Value.Size, SizeHuman: spec.FormatSize(v.Value.Size),
			FS: v.Value.FS, State: v.Value.State, Owner: cl.Host, OwnerAlive: cl.Held() && alive,
			Epoch: cl.Epoch, Mounts: len(cl.Mounts), CreatedBy: v.Value.CreatedBy, CreatedAt: v.Value.CreatedAt,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Apps implements api.Service.
func (c *Controller) Apps(ctx context.Context) ([]api.App, error) {
	apps, err := c.st.ListApps(ctx)
	if err != nil {
		return nil, err
	}
	running, err := c.st.ListRunning(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.App, 0, len(apps))
	for name, a := range apps {
		v := a.Value
		out = append(out, api.App{Name: name, Image: v.Spec.Image, Volumes: v.Volumes, DesiredHost: v.Host,
			ActualHost: running[name], Allowed: v.Allowed, Stopped: v.Stopped, Relocation: v.Relocation})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Events implements api.Service: the newest events matching f, oldest
// first.
func (c *Controller) Events(ctx context.Context, f api.EventFilter) ([]store.Event, error) {
	scan := int64(f.Limit)
	if f.App != "" || f.Relocation != "" {
		scan = eventsKept
	}
	all, err := c.st.ListEvents(ctx, scan)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, e := range all {
		if (f.App == "" || e.App == f.App) && (f.Relocation == "" || e.Relocation == f.Relocation) {
			out = append(out, e)
		}
	}
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[len(out)-f.Limit:]
	}
	return out, nil
}
