package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/controller/api"
)

// LocalVolumes is what the agent needs of the plugin's counts of the
// volumes mounted on this host (plugin.Driver has it). It needs no etcd,
// so self-fencing can use it while etcd is out of reach.
type LocalVolumes interface {
	// Mounts maps each volume counted mounted here to when this process
	// last mounted it; zero when every mount ID of it was recovered from
	// etcd when the plugin started (Docker may not know them).
	Mounts() map[string]time.Time
	// Drop forgets every mount ID of volume, unmounts and deactivates it
	// and releases its claim; it does nothing (false) when the volume was
	// mounted after since, the moment the caller listed the containers.
	Drop(ctx context.Context, volume, why string, since time.Time) (bool, error)
}

const (
	// orphanEvery is how often a live host checks its mount IDs against
	// the engine.
	orphanEvery = 10 * time.Second
	// orphanAge is how long a volume mounted by this process may go
	// without a running container before its IDs count as orphans: a
	// container being started is running well within it, and a docker cp
	// into a stopped container is over by then.
	orphanAge = time.Minute
)

// unusedVolumes is the engine cross-check as a pure function: the volumes
// counted mounted here (volume → last mounted by this process, zero when
// only recovered) that no running container mounts, sorted. A volume
// mounted less than minAge before now is kept: its container may still be
// starting (minAge 0: self-fencing, where nothing may start). Docker's API
// does not show mount IDs, so the check is per volume.
func unusedVolumes(mounted map[string]time.Time, running []container.Summary, now time.Time, minAge time.Duration) []string {
	used := map[string]bool{}
	for _, c := range running {
		for _, m := range c.Mounts {
			if m.Type == mount.TypeVolume {
				used[m.Name] = true
			}
		}
	}
	var out []string
	for v, last := range mounted {
		if used[v] || (!last.IsZero() && now.Sub(last) < minAge) {
			continue
		}
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// toStop is what self-fencing stops among the running containers: the
// relocatable ones, and every one that mounts a relocvol volume mounted
// here.
func toStop(running []container.Summary, mounted map[string]time.Time) []container.Summary {
	var out []container.Summary
	for _, c := range running {
		if relocatable(c.Labels) || usesAny(c.Mounts, mounted) {
			out = append(out, c)
		}
	}
	return out
}

// usesAny reports whether a container mounts one of the named volumes.
func usesAny(mounts []container.MountPoint, names map[string]time.Time) bool {
	for _, m := range mounts {
		if _, ok := names[m.Name]; ok && m.Type == mount.TypeVolume {
			return true
		}
	}
	return false
}

func (a *Agent) mounted() map[string]time.Time {
	if a.vols == nil {
		return nil
	}
	return a.vols.Mounts()
}

// SelfFencing is the state of this host's current (or last) self-fencing.
func (a *Agent) SelfFencing() api.SelfFencing {
	a.mu.Lock()
	defer a.mu.Unlock()
	sf := a.sf
	sf.Left, sf.Stopped = slices.Clone(sf.Left), slices.Clone(sf.Stopped)
	return sf
}

// watchLease self-fences while the host may not hold volumes (the one
// predicate, Heartbeat.Alive, that Mount uses too): it stops every
// relocatable container and every container using a relocvol volume, then
// drops what is still counted, pass after pass until nothing relocvol is
// left on the host; reconcile restarts the containers if etcd still places
// them here once the host is back.
func (a *Agent) watchLease(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	clean := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		alive := a.hb.Alive()
		if a.m != nil {
			boolGauge(a.m.alive, alive)
		}
		a.mu.Lock()
		active := a.sf.Active
		a.mu.Unlock()
		switch {
		case alive && active:
			a.mu.Lock()
			a.sf.Active = false
			a.mu.Unlock()
			a.setGauges(false, 0)
			a.log.Info("lease current again: apps still placed here restart, others are removed")
			a.Kick()
			continue
		case alive:
			continue
		case !active:
			_, since := a.hb.Joined()
			a.mu.Lock()
			a.sf = api.SelfFencing{Active: true, Since: time.Now().UTC()}
			delete(a.reported, reportSelfFence) // report this episode afresh
			a.mu.Unlock()
			a.setGauges(true, len(a.mounted()))
			if a.m != nil {
				a.m.selfFencings.Inc()
			}
			a.log.WithField("since_renewal", since.Round(time.Millisecond).String()).Warn("no lease renewal: stopping relocatable containers before peers may take their volumes over")
			clean = false
		}
		if clean && len(a.mounted()) == 0 {
			continue
		}
		clean = a.selfFencePass(ctx)
	}
}

// selfFencePass is one pass of self-fencing; true when it found nothing
// left to do.
func (a *Agent) selfFencePass(ctx context.Context) bool {
	tm := a.hb.Timings()
	pctx, cancel := context.WithTimeout(ctx, tm.StopTimeout+2*time.Second)
	defer cancel()
	listedAt := time.Now()
	list, err := a.docker.ContainerList(pctx, container.ListOptions{})
	if err != nil {
		_ = a.passDone(nil, fmt.Errorf("list the containers to stop: %w", err))
		return false
	}
	mounted := a.mounted()
	stop := toStop(list, mounted)
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	// Docker takes whole seconds: below a second (short TTLs) it kills at once.
	timeout := int(tm.StopTimeout / time.Second)
	for _, c := range stop {
		name := containerName(c.Names)
		a.mu.Lock()
		if restartAfterSelfFencing(c.Labels) {
			a.selfStopped[name] = true
		}
		a.busy[name] = true
		a.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer a.done(name)
			if err := a.docker.ContainerStop(pctx, c.ID, container.StopOptions{Timeout: &timeout}); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("stop container %s: %w", name, err))
				mu.Unlock()
				return
			}
			a.log.WithField("app", name).Warn("stopped container (self-fencing)")
		}()
	}
	wg.Wait()
	// Volumes no running container used when the pass began: Docker will
	// not unmount them (IDs it no longer has), so this host does.
	for _, v := range unusedVolumes(mounted, list, listedAt, 0) {
		if _, err := a.vols.Drop(pctx, v, "self-fencing: no running container uses it", listedAt); err != nil {
			errs = append(errs, fmt.Errorf("unmount volume %s: %w", v, err))
		}
	}
	err = errors.Join(errs...)
	left := a.passDone(stop, err)
	return len(stop) == 0 && len(left) == 0 && err == nil
}

// passDone records a pass and says loudly what is left once self-fencing
// overran its deadline: a container in D state or a busy unmount is what
// the peers' fencing (or the operator) must deal with. It returns the
// volumes still mounted here.
func (a *Agent) passDone(stopped []container.Summary, err error) []string {
	var left []string
	for v := range a.mounted() {
		left = append(left, v)
	}
	sort.Strings(left)
	a.mu.Lock()
	a.sf.Passes++
	a.sf.Left = left
	a.sf.Error = ""
	if err != nil {
		a.sf.Error = err.Error()
	}
	for _, c := range stopped {
		if n := containerName(c.Names); !slices.Contains(a.sf.Stopped, n) {
			a.sf.Stopped = append(a.sf.Stopped, n)
		}
	}
	a.mu.Unlock()
	a.setGauges(true, len(left))
	_, since := a.hb.Joined()
	log := a.log.WithFields(logrus.Fields{"since_renewal": since.Round(time.Millisecond).String(), "volumes_left": left})
	switch {
	case err == nil && len(left) == 0:
		a.report(reportSelfFence, "done", func() { log.Warn("self-fencing done: no relocvol volume is mounted here") })
	case since >= a.hb.Timings().Deadline:
		what := fmt.Sprintf("%v %v", left, err)
		a.report(reportSelfFence, "overdue "+what, func() {
			log.WithError(err).Error("SELF-FENCING OVERRAN ITS DEADLINE: relocvol volumes are still mounted here and peers may take them over; stop these containers by hand (a process in D state needs the host rebooted); retrying")
		})
	default:
		log.WithError(err).Warn("self-fencing not done yet; retrying")
	}
	return left
}

// reportSelfFence keys self-fencing's reports (Agent.report): no container
// name starts with a space.
const reportSelfFence = " self-fencing"

func (a *Agent) setGauges(active bool, left int) {
	if a.m == nil {
		return
	}
	boolGauge(a.m.selfFencing, active)
	a.m.selfFencingLeft.Set(float64(left))
}

// collectOrphans drops, while the host is alive, the mount IDs Docker will
// never unmount: volumes counted here that no container of the engine
// uses (the plugin died after mounting but before it answered, or Docker
// forgot an ID while the plugin was down).
func (a *Agent) collectOrphans(ctx context.Context) {
	if a.vols == nil {
		return
	}
	t := time.NewTicker(a.orphanEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !a.hb.Alive() {
			continue
		}
		listedAt := time.Now()
		list, err := a.docker.ContainerList(ctx, container.ListOptions{})
		if err != nil {
			a.log.WithError(err).Debug("cannot list containers to check mount IDs; retrying")
			continue
		}
		for _, v := range unusedVolumes(a.vols.Mounts(), list, listedAt, orphanAge) {
			log := a.log.WithField("volume", v)
			dropped, err := a.vols.Drop(ctx, v, "no container of this host's Docker engine uses it", listedAt)
			switch {
			case err != nil:
				log.WithError(err).Warn("cannot drop orphaned mount IDs yet; retrying")
			case dropped:
				if a.m != nil {
					a.m.orphans.Inc()
				}
				log.Warn("dropped mount IDs Docker will never unmount: no container of this host uses the volume")
			}
		}
	}
}
