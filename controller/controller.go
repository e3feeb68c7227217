// Package controller is relocvol's per-host controller: the agent that
// records the host's relocatable containers and runs what etcd places on it
// (and stops everything when the host loses its lease), the leader that
// fences dead hosts and places their apps elsewhere, planned moves, the
// relocation timeline and the read-only views the REST API serves. The
// host's liveness (package heartbeat) tells it whether it may act.
package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/store"
)

// Options assemble a Controller.
type Options struct {
	Host    string
	Version string
	Store   Store
	Docker  Docker // nil: no agent (a host that only serves volumes)
	Beat    Liveness
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
	// Grower grows volumes (the plugin's driver; nil: none served here).
	Grower Grower
	// VG changes the shared volume group (the plugin's driver; nil: none
	// served here).
	VG VGChanger
	// Diagnose runs this host's checks for relocvol doctor (nil: none).
	Diagnose Diagnoser
	// AppKey reads the cluster's app key from the storage (the agent signs
	// the app records it writes and starts only signed ones: appmac.go).
	AppKey AppKeySource
	Log    logrus.FieldLogger
}

// Controller is one host's controller: agent, leader candidate and the
// data behind the REST API.
type Controller struct {
	opt    Options
	st     ViewStore
	rec    *Recorder
	m      *Metrics
	agent  *Agent
	leader *Leader
	log    logrus.FieldLogger
	// doctorWait is how long Doctor waits for the other hosts' reports.
	doctorWait time.Duration
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
	c := &Controller{opt: opt, st: opt.Store, rec: rec, m: m, log: log, doctorWait: doctorWait}
	if opt.Docker != nil {
		c.agent = NewAgent(opt.Store, opt.Docker, opt.Beat, rec, m, opt.Host, opt.Volumes, opt.AppKey, opt.Log)
	}
	c.leader = NewLeader(opt.Store, opt.Beat, opt.Fencer, opt.Grace, rec, m, opt.Host, opt.Log)
	return c
}

// Observe is the plugin's mount hook (see plugin.Options.Observe).
func (c *Controller) Observe(volume, phase string, took time.Duration) {
	c.m.mountSeconds.WithLabelValues(phase).Observe(took.Seconds())
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
	go c.answerDoctor(ctx)
	if c.agent != nil {
		go c.agent.Run(ctx)
	}
	go c.leader.Run(ctx)
}

// ---- planned moves ----

// Move places app on host to, recording a planned relocation: the source
// agent stops and removes its copy (which releases the volumes), the
// target's agent then creates and starts it. Progress is in the timeline.
func (c *Controller) Move(ctx context.Context, name, to string) (api.Relocation, error) {
	var app store.App
	var rel *store.Relocation
	err := store.Retry(4, func(int) error {
		cur, rev, err := c.st.GetApp(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return api.Errorf(api.ErrNotFound, "no app %q: relocvol moves containers labelled relocvol.relocate=true that use relocvol volumes (see relocvol apps)", name)
		}
		if err != nil {
			return err
		}
		if err := c.checkMove(ctx, cur, to); err != nil {
			return err
		}
		app, rel = cur, newRelocation(store.KindMove, name, cur.Host, to, time.Now())
		app.Host, app.Relocation = to, rel
		_, err = c.st.PutApp(ctx, app, rev)
		return err
	})
	if err != nil {
		return api.Relocation{}, err
	}
	c.rec.Step(app, "requested", 0, fmt.Sprintf("move %s from %s to %s", name, rel.From, to), nil)
	c.log.WithFields(logrus.Fields{"app": name, "from": rel.From, "to": to}).Info("planned move requested")
	return apiRelocation(*rel), nil
}

func (c *Controller) checkMove(ctx context.Context, app store.App, to string) error {
	if app.Relocation != nil {
		return api.Errorf(api.ErrConflict, "app %q is already being relocated (%s from %s to %s, started %s): wait for it to finish (relocvol events --app %s)",
			app.Name, app.Relocation.Kind, app.Relocation.From, app.Relocation.To, app.Relocation.Started.Format(time.RFC3339), app.Name)
	}
	if app.Host == to {
		return api.Errorf(api.ErrConflict, "app %q already runs on host %s: nothing to move", app.Name, to)
	}
	if len(app.Allowed) > 0 && !slices.Contains(app.Allowed, to) {
		return api.Errorf(api.ErrInvalid, "app %q may only run on %v (label %s): host %s is not one of them", app.Name, app.Allowed, LabelHosts, to)
	}
	hs, err := c.st.HostState(ctx, to)
	if err != nil {
		return err
	}
	if hs.Alive && !hs.Info.Agent {
		return api.Errorf(api.ErrInvalid, "host %q runs no agent (its plugin has RELOCVOL_DOCKER_HOST empty), so it cannot start app %q: pick a host with one (relocvol hosts)", to, app.Name)
	}
	if !hs.Alive {
		hosts, _ := c.st.ListHosts(ctx)
		var live []string
		for h := range hosts {
			live = append(live, h)
		}
		sort.Strings(live)
		return api.Errorf(api.ErrInvalid, "host %q is not alive (no lease in etcd): pick one of the live hosts %v", to, live)
	}
	if _, rev, err := c.st.GetFence(ctx, to); err != nil {
		return err
	} else if rev != 0 {
		return api.Errorf(api.ErrConflict, "host %q was fenced and has not rejoined cleanly yet: pick another host", to)
	}
	return nil
}
