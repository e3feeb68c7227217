package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/internal/store"
)

// awaitReleased waits until no claim of vols is held by this host,
// watching the claims (a failed read counts as still held).
func (a *Agent) awaitReleased(ctx context.Context, vols []string, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var held []string
	err := a.st.Await(wctx, []store.Family{store.Claims}, 0, func(ctx context.Context) (bool, error) {
		held = held[:0]
		var failed error
		for _, v := range vols {
			c, _, err := a.st.GetClaim(ctx, v)
			if err != nil {
				failed = err
			}
			if err != nil || c.Host == a.host {
				held = append(held, v)
			}
		}
		if failed != nil {
			return false, fmt.Errorf("%w: %w", store.ErrTryAgain, failed)
		}
		return len(held) == 0, nil
	})
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case len(held) == 0:
		return fmt.Errorf("cannot tell whether host %s released volumes %s: %w", a.host, strings.Join(vols, ","), err)
	}
	return fmt.Errorf("volumes %s still claimed by host %s after %s", strings.Join(held, ","), a.host, timeout)
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

// awaitFree waits until app's volumes may be mounted here (in a planned
// move, the source is releasing them right now), watching claims and
// hosts, then re-reads the app: false if it is no longer on its way here,
// if this host is not alive (checked every second: it is not in etcd), or
// after 30 s (the next reconcile tries again).
func (a *Agent) awaitFree(ctx context.Context, app *store.App) bool {
	log := a.log.WithFields(logrus.Fields{"app": app.Name, "relocation": app.Relocation.ID})
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	errNotAlive := errors.New("this host is not alive")
	err := a.st.Await(wctx, []store.Family{store.Claims, store.Hosts}, time.Second, func(ctx context.Context) (bool, error) {
		if !a.hb.Alive() {
			return false, errNotAlive
		}
		free, why, err := a.volumesFree(ctx, *app)
		if err != nil {
			return false, fmt.Errorf("%w: %w", store.ErrTryAgain, err)
		}
		if why != "" {
			a.report(app.Name, why, func() { log.Info("waiting: " + why) })
		}
		return free, nil
	})
	if err != nil {
		return false
	}
	cur, _, err := a.st.GetApp(ctx, app.Name)
	if err != nil || cur.Host != a.host || cur.Relocation == nil || cur.Relocation.ID != app.Relocation.ID {
		return false
	}
	// What is started is what is checked now: the record may have been
	// rewritten while this agent waited (its placement is not signed, its
	// spec is), or be another app's copied under this one's key.
	if cur.Name != app.Name {
		a.refuse(cur, fmt.Errorf("%w: the record under apps/%s is app %s's", errBadMAC, app.Name, cur.Name))
		return false
	}
	if why := a.untrusted(ctx, cur); why != nil {
		a.refuse(cur, why)
		return false
	}
	*app = cur
	return true
}

// untrusted says why app's record may not be started here (nil: it may):
// no agent of this cluster signed it as it is, or it is placed on a host
// its label relocvol.hosts does not allow.
func (a *Agent) untrusted(ctx context.Context, app store.App) error {
	key, err := a.appKey(ctx)
	if err != nil {
		return err
	}
	if err := verifyApp(key, app); err != nil {
		return err
	}
	return allowedHere(app, a.host)
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
	errNone := errors.New("no relocation of the app to finish here")
	var app store.App
	var r store.Relocation
	err := store.Retry(5, func(int) error {
		cur, rev, err := a.st.GetApp(ctx, name)
		if err != nil || cur.Host != a.host || cur.Relocation == nil {
			return errNone
		}
		app, r = cur, *cur.Relocation
		app.Relocation = nil
		_, err = a.st.PutApp(ctx, app, rev)
		return err
	})
	switch {
	case errors.Is(err, errNone):
		return
	case err != nil:
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
}
