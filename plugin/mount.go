package plugin

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/relocvol/relocvol/internal/execx"
	"github.com/relocvol/relocvol/internal/failpoint"
	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
)

// Mount implements volume.Driver.
func (d *Driver) Mount(r *volume.MountRequest) (*volume.MountResponse, error) {
	ctx, cancel := d.reqCtx(2)
	defer cancel()
	mp, err := d.mount(execx.WithTrace(ctx, "mount "+r.Name), r.Name, r.ID)
	if err != nil {
		return nil, d.fail("mount", r.Name, err)
	}
	return &volume.MountResponse{Mountpoint: mp}, nil
}

func (d *Driver) mount(ctx context.Context, name, id string) (string, error) {
	if err := spec.ValidateName(name); err != nil {
		return "", newErr(ErrInvalid, "%s", err)
	}
	if id == "" {
		return "", newErr(ErrInvalid, "mount of volume %q has no mount ID: Docker always sends one; check the caller", name)
	}
	defer d.locks.lock(name)()
	if !d.live.Alive() {
		return "", d.notAliveErr(ctx, name)
	}
	vol, vrev, err := d.getVolume(ctx, name)
	if err != nil {
		return "", err
	}
	if vol.State != store.StateReady {
		return "", newErr(ErrBusy, "volume %q is %s (by host %s): try again in a moment", name, vol.State, vol.CreatedBy)
	}
	if vol.Backend != d.backend.Name() {
		return "", newErr(ErrConflict, "volume %q is on backend %s but this host uses %s: configure the same backend on every host", name, vol.Backend, d.backend.Name())
	}
	if err := d.checkSwarmJoin(ctx, name, id); err != nil {
		return "", err
	}
	start := time.Now()
	if err := d.claim(ctx, vol, vrev, id); err != nil {
		return "", err
	}
	failpoint.Hit(failpoint.MountAfterClaim)
	if d.MountCount(name) == 0 {
		d.observe(name, "claimed", start)
	}
	err = d.activate(ctx, vol)
	if err == nil && !d.live.Alive() {
		// The host passed its cut-off while activating (a slow LVM
		// activation): its self-fencing may have swept past this volume
		// already, so Docker must not get it.
		err = d.notAliveErr(ctx, name)
		if uerr := d.settleNow(context.WithoutCancel(ctx), name); uerr != nil {
			d.log.WithError(uerr).WithField("volume", name).Error("cannot undo a mount refused at the cut-off; retrying in the background")
		}
		return "", err
	}
	if err != nil {
		// Give back what this call took: the mount ID, and the claim itself
		// if no other mount holds it.
		if serr := d.syncClaim(context.WithoutCancel(ctx), name, false); serr != nil {
			d.log.WithError(serr).WithField("volume", name).Error("cannot release the claim of a failed mount; retrying in the background")
			d.retrySync(name)
		}
		return "", fmt.Errorf("activate: %w", err)
	}
	d.addMount(name, id, time.Now().UTC())
	failpoint.Hit(failpoint.MountBeforeReply)
	return d.dataPath(name), nil
}

// activate makes the volume's filesystem mounted on this host (no-op when it
// already is), undoing its own steps on failure.
func (d *Driver) activate(ctx context.Context, vol store.Volume) (err error) {
	target := d.fsPath(vol.Name)
	if d.MountCount(vol.Name) > 0 {
		if _, ok, merr := d.mounter.MountSource(target); merr == nil && ok {
			return nil
		}
	}
	log := d.log.WithField("volume", vol.Name)
	if err := d.readyToWrite(ctx); err != nil {
		return err
	}
	start := time.Now()
	dev, err := d.backend.Activate(ctx, vol.Name)
	if err != nil {
		return err
	}
	d.observe(vol.Name, "activated", start)
	failpoint.Hit(failpoint.MountAfterAttach)
	start = time.Now()
	defer func() {
		if err == nil {
			return
		}
		// Undo whatever is mounted or active here now (a mount command
		// that failed after the kernel had mounted, a data folder that
		// could not be made): until that works the volume stays in
		// Mounts() (unsettled) for self-fencing, and is retried.
		if derr := d.deactivate(context.WithoutCancel(ctx), vol.Name); derr != nil {
			log.WithError(derr).Error("cannot undo a failed mount; retrying in the background")
			d.retrySync(vol.Name)
		}
	}()
	if vol.Grow.Pending() {
		d.growAtMount(ctx, vol, dev, false)
	}
	if err := d.mounter.Mount(ctx, dev, vol.FS, target); err != nil {
		return err
	}
	if err := os.MkdirAll(d.dataPath(vol.Name), 0o755); err != nil {
		_ = d.mounter.Unmount(context.WithoutCancel(ctx), target)
		return fmt.Errorf("create the data folder: %w", err)
	}
	d.observe(vol.Name, "mounted", start)
	if vol.Grow.Pending() {
		d.growAtMount(ctx, vol, dev, true)
	}
	d.mu.Lock()
	d.devs[vol.Name] = dev
	d.mu.Unlock()
	log.WithField("dev", dev).Info("mounted volume")
	failpoint.Hit(failpoint.MountAfterFilesystem)
	return nil
}

func (d *Driver) observe(name, phase string, start time.Time) {
	if d.opt.Observe != nil {
		d.opt.Observe(name, phase, time.Since(start))
	}
}
