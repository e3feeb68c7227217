package plugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/backends"
	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
)

// Growing a volume in use takes three hosts' worth of steps, in this order:
//
//  1. the storage, from the host asked (any host may extend an LV under the
//     VG lock, or an image file), then the volume's record, whose size is
//     then the new one and whose Grow says the filesystem has not followed;
//  2. the filesystem, online, on the host that has the volume mounted: this
//     one at once; another when its volume cache tells it of the record
//     (VolumeChanged, RunGrows); no host, at the volume's next Mount;
//  3. the record again, saying the filesystem was grown (or why not).
//
// The storage comes first so that the record never claims a size the
// storage does not have; a crash between the two leaves storage larger than
// its record, which a repeated grow finishes. Every step is idempotent.

// Grow grows volume name to the size asked, read as Create reads its size
// option (spec.GrowTo: never smaller), while containers may use it, and
// waits up to wait for the filesystem of the host that has it mounted to
// follow. It returns the record as it is then: Grow.Pending() when that
// host has not grown it yet (or no host has it mounted: its next Mount
// will), Grow.Waiting when that host leaves it to the next Mount,
// Grow.Error when it could not.
func (d *Driver) Grow(ctx context.Context, name, asked string, wait time.Duration) (store.Volume, error) {
	if err := spec.ValidateName(name); err != nil {
		return store.Volume{}, newErr(ErrInvalid, "%s", err)
	}
	g, ok := d.backend.(backends.Grower)
	if !ok {
		return store.Volume{}, newErr(ErrInvalid, "volume %q is on the %s backend, which cannot grow volumes", name, d.backend.Name())
	}
	if !d.live.Alive() {
		return store.Volume{}, d.notAliveErr(ctx, name)
	}
	if err := d.growStorage(ctx, g, name, asked); err != nil {
		return store.Volume{}, err
	}
	// This host's own mount, if it has one, without waiting for its cache.
	if err := d.growFilesystem(ctx, name); err != nil {
		d.log.WithError(err).WithField("volume", name).Warn("cannot grow the filesystem of a grown volume")
	}
	var vol store.Volume
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	err := d.store.Await(wctx, []store.Family{store.Volumes, store.Claims}, 0, func(ctx context.Context) (bool, error) {
		v, _, err := d.getVolume(ctx, name)
		if err != nil {
			return false, err
		}
		vol = v
		if !v.Grow.Pending() || v.Grow.Error != "" || v.Grow.Waiting != "" {
			return true, nil
		}
		c, _, err := d.store.GetClaim(ctx, name)
		if err != nil {
			return false, err
		}
		return !c.Held(), nil
	})
	if err != nil && wctx.Err() != nil && ctx.Err() == nil {
		return vol, nil // still pending: the caller says so
	}
	return vol, err
}

// growStorage grows the storage of name and records its new size, under
// the volume's lock; nothing when it has that size already.
func (d *Driver) growStorage(ctx context.Context, g backends.Grower, name, asked string) error {
	defer d.locks.lock(name)()
	log := d.log.WithField("volume", name)
	return store.Retry(4, func(int) error {
		vol, rev, err := d.getVolume(ctx, name)
		if err != nil {
			return err
		}
		if vol.State != store.StateReady {
			return newErr(ErrBusy, "volume %q is %s (by host %s): grow it once it is ready", name, vol.State, vol.CreatedBy)
		}
		if vol.Backend != d.backend.Name() {
			return newErr(ErrConflict, "volume %q is on backend %s but this host uses %s: configure the same backend on every host", name, vol.Backend, d.backend.Name())
		}
		size, unchanged, err := spec.GrowTo(name, vol.Size, asked)
		if err != nil {
			return newErr(ErrInvalid, "%s", err)
		}
		if unchanged && vol.Grow.Pending() && (vol.Grow.Error != "" || vol.Grow.Waiting != "") {
			// Asked again after the filesystem did not follow: the
			// record, cleared, makes the host that mounts the volume try
			// again.
			retry := vol
			g := *vol.Grow
			g.Error, g.Waiting = "", ""
			retry.Grow = &g
			_, err := d.store.UpdateVolume(ctx, retry, rev, -1)
			return err
		}
		if unchanged {
			return nil
		}
		if err := d.readyToWrite(ctx); err != nil {
			return err
		}
		if err := g.Grow(ctx, name, size); err != nil {
			if errors.Is(err, backends.ErrNotFound) {
				return wrapErr(ErrNotFound, err, "volume %q has a record but no storage on this host's %s backend: check that every host uses the same storage", name, d.backend.Name())
			}
			return fmt.Errorf("grow the storage of volume %q to %s: %w", name, spec.FormatSize(size), err)
		}
		c, _, err := d.store.GetClaim(ctx, name)
		if err != nil {
			return err
		}
		next := vol
		next.Size = size
		next.Grow = &store.Grow{Size: size, From: vol.Size, By: d.opt.Host, At: time.Now().UTC()}
		if c.Held() {
			next.Grow.Owner = c.Host
		}
		if _, err := d.store.UpdateVolume(ctx, next, rev, -1); err != nil {
			return err // a lost race reads and decides again; the storage is grown already
		}
		log.WithFields(logrus.Fields{"from": spec.FormatSize(vol.Size), "size": spec.FormatSize(size), "owner": next.Grow.Owner}).Info("volume grown; its filesystem follows on the host that mounts it")
		return nil
	})
}

// growFilesystem grows the filesystem of name online when this host has it
// mounted and its record's last grow is pending; the next Mount does it
// otherwise. A grow whose failure is recorded waits for that Mount, or for
// the grow to be asked again (growStorage clears the error): its own record
// must not set it going again.
func (d *Driver) growFilesystem(ctx context.Context, name string) error {
	defer d.locks.lock(name)()
	if d.MountCount(name) == 0 {
		return nil
	}
	vol, _, err := d.store.GetVolume(ctx, name)
	if err != nil || !vol.Grow.Pending() || vol.Grow.Error != "" || vol.Grow.Waiting != "" {
		return err
	}
	if !d.live.Alive() {
		return d.notAliveErr(ctx, name)
	}
	dev, err := d.device(ctx, name)
	if err == nil && dev == "" {
		err = fmt.Errorf("volume %q is counted mounted here but its storage is not active", name)
	}
	if err == nil {
		err = d.growOnline(ctx, vol, dev)
	}
	return d.finishGrow(ctx, vol, err)
}

// growOnline grows the mounted filesystem of vol, on dev, to its storage's
// size: the device first, then the filesystem.
func (d *Driver) growOnline(ctx context.Context, vol store.Volume, dev string) error {
	if err := d.readyToWrite(ctx); err != nil {
		return err
	}
	if err := d.backend.(backends.Grower).Refresh(ctx, vol.Name); err != nil {
		return err
	}
	if ok, why := d.mounter.GrowsOnline(vol.FS); !ok {
		return &offlineOnly{why: why}
	}
	return d.mounter.Grow(ctx, vol.FS, dev, d.fsPath(vol.Name))
}

// offlineOnly is a filesystem this process cannot grow while it is mounted:
// it grows at the volume's next Mount, before it is mounted.
type offlineOnly struct{ why string }

func (e *offlineOnly) Error() string {
	return e.why + "; stop and start its container (or relocvol move it) to grow it"
}

// growAtMount grows the filesystem of vol, whose last grow is pending, as
// this host mounts it on dev: offline before the mount (mounted is false)
// where it cannot grow online, else online once mounted. A failure is
// recorded and logged, never fails the Mount: the data is whole, the
// filesystem only smaller than its storage.
func (d *Driver) growAtMount(ctx context.Context, vol store.Volume, dev string, mounted bool) {
	g, ok := d.backend.(backends.Grower)
	if online, _ := d.mounter.GrowsOnline(vol.FS); !ok || online != mounted {
		return
	}
	start := time.Now()
	var err error
	if mounted {
		err = d.growOnline(ctx, vol, dev)
	} else if err = d.readyToWrite(ctx); err == nil {
		// A device active before this Mount may not show the size yet.
		if err = g.Refresh(ctx, vol.Name); err == nil {
			err = d.mounter.GrowOffline(ctx, vol.FS, dev)
		}
	}
	d.observe(vol.Name, "grown", start)
	if err := d.finishGrow(ctx, vol, err); err != nil {
		d.log.WithError(err).WithField("volume", vol.Name).Warn("cannot grow the filesystem of a grown volume at its mount")
	}
}

// finishGrow records how growing the filesystem of vol (to its last grow's
// size) went, unless a newer grow came meanwhile (its own notice follows).
// It returns growErr, so that the caller logs it.
func (d *Driver) finishGrow(ctx context.Context, vol store.Volume, growErr error) error {
	size := vol.Grow.Size
	log := d.log.WithFields(logrus.Fields{"volume": vol.Name, "size": spec.FormatSize(size), "fs": vol.FS})
	var offline *offlineOnly
	waiting := errors.As(growErr, &offline)
	err := store.Retry(4, func(int) error {
		cur, rev, err := d.store.GetVolume(ctx, vol.Name)
		if err != nil || cur.Grow == nil || cur.Grow.Size != size {
			return err
		}
		g := *cur.Grow
		g.FSHost, g.FSAt, g.Done, g.Error, g.Waiting = d.opt.Host, time.Now().UTC(), growErr == nil, "", ""
		switch {
		case waiting:
			g.Waiting = fmt.Sprintf("host %s: %v", d.opt.Host, growErr)
		case growErr != nil:
			g.Error = fmt.Sprintf("host %s: %v", d.opt.Host, growErr)
		}
		cur.Grow = &g
		_, err = d.store.UpdateVolume(ctx, cur, rev, -1)
		return err
	})
	switch {
	case waiting:
		log.WithError(growErr).Warn("cannot grow this filesystem while it is mounted: it grows at its next mount")
		return err
	case growErr == nil:
		log.Info("filesystem grown")
	}
	return errors.Join(growErr, err)
}

// growStatus is how `docker volume inspect` shows a volume's last grow.
func growStatus(g *store.Grow) string {
	from := fmt.Sprintf("from %s to %s by host %s at %s", spec.FormatSize(g.From), spec.FormatSize(g.Size), g.By, g.At.Format(time.RFC3339))
	switch {
	case g.Done:
		return fmt.Sprintf("%s; filesystem grown on host %s", from, g.FSHost)
	case g.Error != "":
		return fmt.Sprintf("%s; filesystem NOT grown: %s (ask for the grow again to retry)", from, g.Error)
	case g.Waiting != "":
		return fmt.Sprintf("%s; filesystem grows at its next mount: %s", from, g.Waiting)
	case g.Owner != "":
		return fmt.Sprintf("%s; filesystem being grown on host %s", from, g.Owner)
	}
	return fmt.Sprintf("%s; filesystem grows at its next mount (no host had it mounted)", from)
}
