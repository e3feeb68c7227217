package controller

import (
	"context"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

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
