package plugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/backends"
	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
)

// ---- Create ----

// Create implements volume.Driver. It is idempotent: Swarm calls it on every
// node, and a second Create with the same (or no) options succeeds.
func (d *Driver) Create(r *volume.CreateRequest) error {
	ctx, cancel := d.reqCtx(4)
	defer cancel()
	if err := d.create(ctx, r.Name, r.Options); err != nil {
		return d.fail("create", r.Name, err)
	}
	d.know(r.Name, true)
	return nil
}

func (d *Driver) create(ctx context.Context, name string, opts map[string]string) error {
	if err := spec.ValidateName(name); err != nil {
		return newErr(ErrInvalid, "%s", err)
	}
	s, err := spec.Parse(name, opts, d.opt.Defaults)
	if err != nil {
		return newErr(ErrInvalid, "%s", err)
	}
	defer d.locks.lock(name)()
	rec := store.Volume{
		Name: name, Backend: d.backend.Name(), Size: s.Size, FS: s.FS,
		State: store.StateCreating, CreatedAt: time.Now().UTC(), CreatedBy: d.opt.Host,
		CreateID: backends.NewCreateID(),
	}
	for {
		created, cur, rev, err := d.store.CreateVolume(ctx, rec)
		if err != nil {
			return err
		}
		if created {
			return d.provision(ctx, rec, rev)
		}
		switch cur.State {
		case store.StateReady:
			return d.checkSame(cur, s)
		case store.StateRemoving:
			return newErr(ErrBusy, "volume %q is being removed: create it again once `docker volume ls` no longer lists it", name)
		}
		// Another host is creating it: wait for its result, or finish the
		// job if that host died half way.
		if err := d.awaitCreation(ctx, cur, s); err != nil || ctx.Err() != nil {
			return err
		}
	}
}

func (d *Driver) checkSame(cur store.Volume, s spec.Spec) error {
	existing := spec.Spec{Size: cur.Size, FS: cur.FS}
	if diffs := spec.Conflicts(existing, s); len(diffs) > 0 {
		return newErr(ErrConflict, "volume %q already exists with size=%s fs=%s, not %v: remove it first or create it with the same options",
			cur.Name, spec.FormatSize(cur.Size), cur.FS, diffs)
	}
	if cur.Backend != d.backend.Name() {
		return newErr(ErrConflict, "volume %q exists on backend %s but this host uses %s: configure the same backend on every host", cur.Name, cur.Backend, d.backend.Name())
	}
	return nil
}

// provision creates the storage of a volume whose record this host holds
// (state creating, read at rev), marked with the record's create ID, and
// marks it ready. Storage is touched only while that record is this
// host's: if creating fails, the record is first marked removing (a
// compare-and-swap on rev), and only then is the storage this create made
// removed (none other: the backend checks its identity) and the record
// deleted. A record that changed meanwhile means a peer took the create
// over (this host had lost its lease): the storage of that name is the
// peer's now, and nothing of it is touched.
func (d *Driver) provision(ctx context.Context, rec store.Volume, rev int64) error {
	log := d.log.WithFields(logrus.Fields{"volume": rec.Name, "size": spec.FormatSize(rec.Size), "fs": rec.FS})
	err := d.readyToWrite(ctx)
	if err == nil {
		err = d.backend.Create(ctx, backends.Volume{Name: rec.Name, Size: rec.Size, FS: rec.FS, CreateID: rec.CreateID})
	}
	if errors.Is(err, backends.ErrExists) {
		d.undoCreate(ctx, rec, rev)
		return wrapErr(ErrConflict, err, "volume %q has no record but its storage already exists (left by an earlier failure or another cluster): nothing was changed; remove that storage by hand if it is not needed, or choose another name", rec.Name)
	}
	if err != nil {
		d.undoCreate(ctx, rec, rev)
		return fmt.Errorf("provision storage: %w", err)
	}
	ready := rec
	ready.State = store.StateReady
	_, err = d.store.UpdateVolume(ctx, ready, rev, -1)
	if errors.Is(err, store.ErrConflict) {
		return d.lostCreate(ctx, rec)
	}
	if err != nil {
		d.undoCreate(ctx, rec, rev)
		return fmt.Errorf("mark volume ready: %w", err)
	}
	log.Info("created volume")
	return nil
}

// undoCreate gives up a create whose record is still this host's (at rev):
// marked removing first, so that nobody takes the create over meanwhile,
// then the storage this create made (storage of that name that another
// made, or that was there before, is left alone), then the record. If the
// mark fails, the record is not this host's any more (or etcd is
// unreachable, and a later Create takes it over): nothing is touched.
func (d *Driver) undoCreate(ctx context.Context, rec store.Volume, rev int64) {
	log := d.log.WithField("volume", rec.Name)
	// A fresh context: the request's may be what failed.
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.opt.Timeout)
	defer cancel()
	rec.State = store.StateRemoving
	nrev, err := d.store.UpdateVolume(uctx, rec, rev, -1)
	if err != nil {
		log.WithError(err).Warn("failed create: its record is not this host's any more (or etcd did not answer): leaving its storage alone")
		return
	}
	err = d.backend.Remove(uctx, rec.Name, rec.CreateID)
	switch {
	case errors.Is(err, backends.ErrForeign):
		log.WithError(err).Warn("failed create: the storage of that name was not made by this create: leaving it alone")
	case err != nil:
		log.WithError(err).Error("cannot remove the storage of a failed create; `docker volume rm` removes it later")
		return
	}
	if err := d.store.DeleteVolume(uctx, rec.Name, nrev); err != nil {
		log.WithError(err).Error("cannot delete the record of a failed create")
	}
}

// lostCreate answers a create whose record changed under it: a peer took
// it over after this host lost its lease. The volume is there as asked, or
// the caller learns who has it.
func (d *Driver) lostCreate(ctx context.Context, rec store.Volume) error {
	d.log.WithField("volume", rec.Name).Warn("another host took this create over (this host had lost its lease): leaving the storage to it")
	cur, _, err := d.store.GetVolume(ctx, rec.Name)
	if err == nil && cur.State == store.StateReady {
		return d.checkSame(cur, spec.Spec{Size: rec.Size, FS: rec.FS})
	}
	return newErr(ErrBusy, "volume %q was taken over by host %s while host %s created it (its etcd lease was lost meanwhile): try again in a moment", rec.Name, cur.CreatedBy, d.opt.Host)
}

// awaitCreation waits while another host creates the same volume. If the
// creator is no longer alive, this host takes the creation over: after the
// grace, it fences the creator (which may still be writing the storage it
// made: mkfs, LVM metadata), takes the record, and only then replaces the
// half-made storage.
func (d *Driver) awaitCreation(ctx context.Context, cur store.Volume, s spec.Spec) error {
	var result error
	err := d.store.Await(ctx, []store.Family{store.Volumes, store.Hosts}, 0, func(ctx context.Context) (bool, error) {
		v, vrev, err := d.store.GetVolume(ctx, cur.Name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return true, nil // the creator failed and rolled back: the caller retries
		case err != nil:
			return false, err
		case v.State == store.StateReady:
			result = d.checkSame(v, s)
			return true, nil
		case v.State != store.StateCreating:
			return true, nil
		}
		gone, err := d.creatorGone(ctx, v)
		if err != nil {
			return false, fmt.Errorf("%w: %w", store.ErrTryAgain, err) // as if alive: look again
		}
		if !gone {
			return false, nil
		}
		if err := d.takeCreateOver(ctx, v, vrev); !errors.Is(err, errAgain) {
			result = err
			return true, nil
		}
		return false, store.ErrTryAgain // it changed under the takeover: read it again
	})
	switch {
	case err == nil:
		return result
	case ctx.Err() != nil:
		return newErr(ErrBusy, "volume %q is still being created by host %s: try again in a moment", cur.Name, cur.CreatedBy)
	}
	return err
}

// errAgain: the state changed under a takeover; read it again.
var errAgain = errors.New("changed meanwhile")

func (d *Driver) takeCreateOver(ctx context.Context, v store.Volume, vrev int64) error {
	log := d.log.WithFields(logrus.Fields{"volume": v.Name, "creator": v.CreatedBy})
	// The record is taken under this host's own lease and, from a dead
	// creator, while it is still dead and still carries the mark whose
	// fencing this host proved.
	guards := []store.Guard{d.ownLease()}
	if v.CreatedBy != d.opt.Host {
		if err := d.awaitGrace(ctx, v.CreatedBy, v.Name); err != nil {
			return err
		}
		markRev, err := d.fence(ctx, v.CreatedBy, v.Name, fmt.Sprintf("the unfinished create of volume %q", v.Name))
		if errors.Is(err, store.ErrHostAlive) {
			return errAgain
		}
		if err != nil {
			return err
		}
		guards = append(guards, d.store.HostGone(v.CreatedBy), d.store.FencedBy(v.CreatedBy, markRev))
	}
	log.Warn("taking over an unfinished create")
	// The record keeps the dead create's identity until that create's
	// storage is gone: stopped in between (a crash, an answer lost), the
	// next try (this host's or another's) still knows what to remove.
	creator := v.CreatedBy
	v.CreatedBy, v.CreatedAt = d.opt.Host, time.Now().UTC()
	nrev, err := d.store.UpdateVolume(ctx, v, vrev, -1, guards...)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrHostAlive) || errors.Is(err, store.ErrMarkChanged) {
		return errAgain
	}
	if err != nil {
		return err
	}
	// The record is this host's now: the half-made storage may go.
	err = d.readyToWrite(ctx)
	if err == nil {
		err = d.backend.Remove(ctx, v.Name, v.CreateID)
	}
	if errors.Is(err, backends.ErrForeign) {
		d.undoCreate(ctx, v, nrev)
		return wrapErr(ErrConflict, err, "volume %q: the unfinished create of host %s was taken over, but the storage of that name was not made by that create (left by another cluster, or made by hand): nothing of it was changed; remove that storage by hand if it is not needed, or choose another name", v.Name, creator)
	}
	if err != nil {
		d.undoCreate(ctx, v, nrev)
		return fmt.Errorf("clear the unfinished storage: %w", err)
	}
	// Only now a new identity, for the storage this create makes.
	v.CreateID = backends.NewCreateID()
	if nrev, err = d.store.UpdateVolume(ctx, v, nrev, -1, d.ownLease()); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return errAgain
		}
		return fmt.Errorf("record the new create's identity: %w", err)
	}
	return d.provision(ctx, v, nrev)
}

// creatorGone reports whether the host that started creating v can no
// longer finish: it is not alive, or it is this host's previous incarnation
// (this process holds the volume's lock, so its own create is not running).
func (d *Driver) creatorGone(ctx context.Context, v store.Volume) (bool, error) {
	if v.CreatedBy == d.opt.Host {
		return true, nil
	}
	st, err := d.store.HostState(ctx, v.CreatedBy)
	if err != nil {
		return false, err
	}
	d.sawOwner(v.CreatedBy, st)
	return !st.Alive, nil
}

// ---- Remove ----

// Remove implements volume.Driver. It refuses a volume that any host has
// claimed, naming that host.
func (d *Driver) Remove(r *volume.RemoveRequest) error {
	ctx, cancel := d.reqCtx(2)
	defer cancel()
	if err := d.remove(ctx, r.Name); err != nil {
		return d.fail("remove", r.Name, err)
	}
	d.know(r.Name, false)
	return nil
}

func (d *Driver) remove(ctx context.Context, name string) error {
	if err := spec.ValidateName(name); err != nil {
		return newErr(ErrInvalid, "%s", err)
	}
	defer d.locks.lock(name)()
	vol, vrev, err := d.getVolume(ctx, name)
	if err != nil {
		return err
	}
	if vol.State == store.StateCreating {
		return newErr(ErrBusy, "volume %q is still being created by host %s: remove it once the create has finished", name, vol.CreatedBy)
	}
	claim, crev, err := d.store.GetClaim(ctx, name)
	if err != nil {
		return err
	}
	if claim.Held() {
		return d.inUseErr(ctx, "remove", claim)
	}
	if n := d.MountCount(name); n > 0 {
		return newErr(ErrInUse, "volume %q is in use on host %s (%d mounts): stop the containers that use it first", name, d.opt.Host, n)
	}
	// Mark it first, guarded by the claim's revision: from here no host can
	// claim it, so the storage is never deleted under a new mount.
	prev := vol.State
	vol.State = store.StateRemoving
	vrev, err = d.store.UpdateVolume(ctx, vol, vrev, crev)
	if errors.Is(err, store.ErrConflict) {
		return newErr(ErrBusy, "volume %q changed while it was being removed (another host mounted or removed it): try again", name)
	}
	if err != nil {
		return err
	}
	err = d.readyToWrite(ctx)
	if err == nil {
		err = d.backend.Remove(ctx, name, vol.CreateID)
	}
	if err != nil {
		vol.State = prev
		if _, uerr := d.store.UpdateVolume(context.WithoutCancel(ctx), vol, vrev, -1); uerr != nil {
			d.log.WithError(uerr).WithField("volume", name).Error("cannot restore the state of a volume whose removal failed")
		}
		if errors.Is(err, backends.ErrInUse) {
			return wrapErr(ErrInUse, err, "volume %q is still active on host %s", name, d.opt.Host)
		}
		if errors.Is(err, backends.ErrForeign) {
			return wrapErr(ErrConflict, err, "volume %q: the storage of that name was not made by the create its record names (etcd restored from an older backup; a host running a relocvol older than this one rewrote the record: upgrade every host and try again; or the storage replaced by hand): nothing was removed; check what the storage holds, and remove it by hand if it is not needed", name)
		}
		return fmt.Errorf("remove storage: %w", err)
	}
	if err := d.store.DeleteVolume(ctx, name, vrev); err != nil {
		return fmt.Errorf("delete the record: %w", err)
	}
	d.log.WithField("volume", name).Info("removed volume")
	return nil
}
