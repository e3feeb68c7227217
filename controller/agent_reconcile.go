package controller

import (
	"context"
	"maps"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/internal/store"
)

// restartPlain starts again a container without relocvol.relocate that
// self-fencing stopped: it is no app, so it never moves, and it comes back
// where it was once the lease is (if a peer took its volume meanwhile, the
// plugin refuses the mount and it stays stopped).
func (a *Agent) restartPlain(ctx context.Context, name string) {
	a.mu.Lock()
	delete(a.selfStopped, name)
	a.mu.Unlock()
	log := a.log.WithField("container", name)
	if err := a.docker.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
		log.WithError(err).Warn("cannot restart a container stopped while the lease was lost")
		return
	}
	log.Info("restarted a container stopped while the lease was lost")
}

func containerName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return strings.TrimPrefix(names[0], "/")
}

// reconcile brings this host in line with etcd, as reconcilePlan decides;
// it does nothing while the host's lease is not current.
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
	unsigned, err := a.unsigned(ctx, apps)
	if err != nil {
		a.report("", "app key: "+err.Error(), func() {
			a.log.WithError(err).Error("cannot read the cluster's app key from the storage: no app is recorded or started here until it can")
		})
		return
	}
	a.mu.Lock()
	v := hostView{Host: a.host, Containers: list, Apps: apps, Running: running,
		Busy: maps.Clone(a.busy), SelfStopped: maps.Clone(a.selfStopped), Unsigned: unsigned}
	a.mu.Unlock()
	steps, nrunning := reconcilePlan(v)
	if a.m != nil {
		a.m.appsRunning.Set(float64(nrunning))
	}
	for _, s := range steps {
		a.do(ctx, s)
	}
}

// do carries out one step of a reconciliation. Starts, stops and removals
// run in the background (spawn), so that one slow app never holds up the
// others.
func (a *Agent) do(ctx context.Context, s step) {
	switch s.Kind {
	case stepAdopt:
		a.adopt(ctx, s.Container)
	case stepMarkRunning:
		if err := a.st.SetRunning(ctx, s.Name, a.host, a.hb.Lease()); err != nil {
			a.log.WithError(err).WithField("app", s.Name).Debug("cannot record the app as running")
		}
	case stepFinish:
		a.finish(ctx, s.Name)
	case stepStartExisting:
		a.spawn(s.Name, func() { a.startExisting(ctx, s.Container.ID, s.App, s.Restart) })
	case stepClearRunning:
		_ = a.st.ClearRunning(ctx, s.Name, a.host)
	case stepRemoveCopy:
		a.spawn(s.Name, func() { a.removeCopy(ctx, s.Container, s.App) })
	case stepRestartPlain:
		a.restartPlain(ctx, s.Name)
	case stepForget:
		if err := a.st.DeleteApp(ctx, s.Name, s.Rev); err == nil {
			a.log.WithField("app", s.Name).Info("container no longer exists here: app forgotten")
		}
	case stepStartNew:
		a.spawn(s.Name, func() { a.startNew(ctx, s.App) })
	case stepRecord:
		a.record(ctx, s.Container, s.App, s.Rev)
	case stepRefuse:
		a.refuse(s.App, s.Why)
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
	app, ok := a.recorded(ctx, c.ID, name, log)
	if !ok {
		return
	}
	app.Host = a.host
	if err := a.sign(ctx, &app); err != nil {
		log.WithError(err).Error("cannot sign the app's record: not recording it")
		return
	}
	if _, err := a.st.PutApp(ctx, app, 0); err != nil {
		log.WithError(err).Warn("cannot record the app")
		return
	}
	log.WithFields(logrus.Fields{"volumes": app.Volumes, "image": app.Spec.Image}).Info("recorded relocatable app")
}

// recorded is what this agent records of container id, named name: its
// spec from docker inspect, the relocvol volumes it uses, the hosts its
// label allows and whether it runs (no placement, no MAC); false, logged,
// when it cannot be inspected or uses no relocvol volume.
func (a *Agent) recorded(ctx context.Context, id, name string, log logrus.FieldLogger) (store.App, bool) {
	ins, err := a.docker.ContainerInspect(ctx, id)
	if err != nil {
		log.WithError(err).Warn("cannot inspect container")
		return store.App{}, false
	}
	vols, err := a.st.ListVolumes(ctx)
	if err != nil {
		log.WithError(err).Warn("cannot read volumes")
		return store.App{}, false
	}
	spec, used := specFromContainer(ins, func(v string) bool { _, ok := vols[v]; return ok })
	if len(used) == 0 {
		a.report(name, "novol", func() {
			log.Warn("container is labelled relocvol.relocate=true but uses no relocvol volume: nothing to relocate, ignoring it")
		})
		return store.App{}, false
	}
	return store.App{Name: name, Volumes: used, Allowed: allowedHosts(spec.Labels), Spec: spec,
		Stopped: ins.State != nil && !ins.State.Running}, true
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
