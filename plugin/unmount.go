package plugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/internal/failpoint"
	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
)

// Unmount implements volume.Driver. It always drops the mount ID, even when
// the unmount itself or etcd fails; what is left is retried.
func (d *Driver) Unmount(r *volume.UnmountRequest) error {
	ctx, cancel := d.reqCtx(2)
	defer cancel()
	if err := d.unmount(ctx, r.Name, r.ID); err != nil {
		return d.fail("unmount", r.Name, err)
	}
	return nil
}

func (d *Driver) unmount(ctx context.Context, name, id string) error {
	if err := spec.ValidateName(name); err != nil {
		return newErr(ErrInvalid, "%s", err)
	}
	if id == "" {
		return newErr(ErrInvalid, "unmount of volume %q has no mount ID: Docker always sends one; check the caller", name)
	}
	defer d.locks.lock(name)()
	if !d.delMount(name, id) {
		// Docker repeats an Unmount it saw fail, and an ID collected as an
		// orphan may still come: Docker must never be left holding an ID
		// it cannot release.
		d.log.WithFields(logrus.Fields{"volume": name, "id": shortID(id)}).Warn("unmount of a mount ID this host does not count: nothing to do")
		return nil
	}
	err := d.settleNow(ctx, name)
	failpoint.Hit(failpoint.UnmountBeforeReply)
	return err
}

// settleNow settles name for a caller that waits (Docker's Unmount,
// self-fencing's Drop). Past the cut-off the claim is left to retrySync: the
// host is self-fencing and must be rid of the volume before its lease can
// expire, and etcd may be out of its reach, so nothing waits on etcd; a
// release needs no lease, the background writes it once etcd answers.
func (d *Driver) settleNow(ctx context.Context, name string) error {
	alive := d.live.Alive()
	err := d.settle(ctx, name, alive)
	if err != nil || !alive {
		d.retrySync(name)
	}
	return err
}

// settle brings this host's storage and (with claim) the claim in line
// with the local mount IDs: with none left it unmounts and deactivates,
// then the claim gets the remaining IDs, or is released once nothing is
// active here.
func (d *Driver) settle(ctx context.Context, name string, claim bool) error {
	var errs []error
	deactivated := false
	if d.MountCount(name) == 0 {
		err := d.deactivate(ctx, name)
		if err != nil {
			errs = append(errs, err)
		}
		deactivated = err == nil
	}
	if claim {
		if err := d.syncClaim(ctx, name, deactivated); err != nil {
			errs = append(errs, fmt.Errorf("update the claim: %w", err))
		}
	}
	return errors.Join(errs...)
}

// deactivate unmounts the volume's filesystem here and deactivates its
// storage. Until both have worked the volume stays in Mounts() (unsettled),
// even with no mount ID left.
func (d *Driver) deactivate(ctx context.Context, name string) (err error) {
	defer func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if err != nil {
			d.unsettled[name] = true
			return
		}
		delete(d.unsettled, name)
		delete(d.devs, name)
	}()
	if err := d.mounter.Unmount(ctx, d.fsPath(name)); err != nil {
		return fmt.Errorf("unmount: %w", err)
	}
	d.log.WithField("volume", name).Debug("filesystem unmounted")
	failpoint.Hit(failpoint.UnmountAfterFilesystem)
	if err := d.backend.Deactivate(ctx, name); err != nil {
		return fmt.Errorf("deactivate: %w", err)
	}
	failpoint.Hit(failpoint.UnmountAfterDetach)
	d.log.WithField("volume", name).Info("unmounted volume")
	return nil
}

// syncClaim writes this host's mount IDs into the claim, if this host holds
// it, releasing it when no ID is left and nothing is active here any more
// (deactivated: the caller has just unmounted and deactivated it, under
// the volume's lock, so it need not be looked up again).
// A claim kept held is written under this host's own lease; a release is
// not (a host whose lease is gone may still give up what it no longer
// uses, which only ever makes the volume free). Nothing is written when
// the claim already says it.
func (d *Driver) syncClaim(ctx context.Context, name string, deactivated bool) error {
	return store.Retry(6, func(int) error {
		c, crev, err := d.store.GetClaim(ctx, name)
		if err != nil {
			return err
		}
		if c.Host != d.opt.Host {
			return nil
		}
		next := c
		next.Mounts, next.Counts = d.localMounts(name)
		var guards []store.Guard
		if len(next.Mounts) == 0 && (deactivated || !d.activeHere(ctx, name)) {
			next = next.Released("")
		} else if sameMounts(c, next) {
			return nil
		} else {
			guards = append(guards, d.ownLease())
		}
		_, vrev, err := d.store.GetVolume(ctx, name)
		if err != nil {
			return err
		}
		if _, err := d.store.PutClaim(ctx, next, crev, vrev, guards...); err != nil {
			return err
		}
		if !next.Held() {
			d.log.WithFields(logrus.Fields{"volume": name, "epoch": c.Epoch}).Info("released volume")
		}
		return nil
	})
}

// activeHere reports whether anything of the volume is still mounted or
// active on this host; an unknown state counts as active, so a claim is
// never released on a guess.
func (d *Driver) activeHere(ctx context.Context, name string) bool {
	if _, ok, err := d.mounter.MountSource(d.fsPath(name)); err != nil || ok {
		return true
	}
	dev, err := d.backend.Device(ctx, name)
	return err != nil || dev != ""
}

// retrySync keeps settling a volume in the background until it works, so a
// failed unmount or an etcd outage does not leave a claim held for ever:
// first after a second (it has just failed), then doubling the wait, with
// 10 % jitter, up to about 30 s.
func (d *Driver) retrySync(name string) {
	go func() {
		b := backoff.NewExponentialBackOff()
		b.InitialInterval, b.MaxInterval = time.Second, 30*time.Second
		b.Multiplier, b.RandomizationFactor = 2, 0.1
		time.Sleep(b.InitialInterval)
		_, _ = backoff.Retry(context.Background(), func() (struct{}, error) {
			ctx, cancel := d.reqCtx(1)
			defer cancel()
			defer d.locks.lock(name)()
			return struct{}{}, d.settle(ctx, name, true)
		}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, next time.Duration) {
			d.log.WithError(err).WithFields(logrus.Fields{"volume": name, "retry_in": next.Round(100 * time.Millisecond)}).Warn("volume still not settled; retrying")
		}))
	}()
}
