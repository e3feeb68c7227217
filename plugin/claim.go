package plugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/store"
)

// notAliveErr explains why this host may not mount now: it was fenced and
// has not finished cleaning up, or it cannot renew its lease.
func (d *Driver) notAliveErr(ctx context.Context, name string) error {
	if f, rev, err := d.store.GetFence(ctx, d.opt.Host); err == nil && rev != 0 {
		return newErr(ErrNotAlive, "host %s was fenced by host %s at %s (it took over volume %q): it may not mount volume %q until it has cleaned up and rejoined, which it does by itself; see its log if that does not happen",
			d.opt.Host, f.By, f.At.Format(time.RFC3339), f.Volume, name)
	}
	return newErr(ErrNotAlive, "host %s has no current etcd lease, so it may not mount volume %q: check that etcd is reachable from it; the host rejoins by itself", d.opt.Host, name)
}

// ownLease guards this host's own claim writes: its host key must still be
// bound to the lease this process renews.
func (d *Driver) ownLease() store.Guard {
	return d.store.HostLease(d.opt.Host, int64(d.live.Lease()))
}

// claim records mount id in the volume's claim, taking the claim over from a
// dead host (after fencing it) if need be. Every write is a transaction on
// the revisions read, guarded by this host's own lease and, for a takeover,
// by the previous holder's host key being absent: a decision taken on a
// read that is no longer true never lands.
func (d *Driver) claim(ctx context.Context, vol store.Volume, vrev int64, id string) error {
	const attempts = 6
	var next store.Claim
	var act mountAction
	reread := false     // the last attempt lost its claim write: read the volume again
	fenceAlive := false // the last attempt found the holder alive again while fencing it
	err := store.Retry(attempts, func(int) error {
		if reread {
			v, nrev, err := d.getVolume(ctx, vol.Name)
			if err != nil {
				return store.Final(err)
			}
			if v.State != store.StateReady {
				return newErr(ErrBusy, "volume %q is %s: try again in a moment", vol.Name, v.State)
			}
			vrev = nrev
		}
		// Only a lost claim write and a holder that came back are tried
		// again (store.Retry); every other failure ends the Mount as it is.
		c, crev, err := d.store.GetClaim(ctx, vol.Name)
		if err != nil {
			return store.Final(err)
		}
		var owner store.HostState
		if c.Held() && c.Host != d.opt.Host {
			if owner, err = d.store.HostState(ctx, c.Host); err != nil {
				return store.Final(err)
			}
			d.sawOwner(c.Host, owner)
		}
		now := time.Now().UTC()
		next = c
		guards := []store.Guard{d.ownLease()}
		act = decideMount(c, d.opt.Host, owner)
		switch act {
		case actRefuse:
			return store.Final(d.inUseErr(ctx, "mount", c))
		case actJoin: // keep the IDs already counted
		case actAcquire, actTakeover:
			if act == actTakeover {
				if err := d.awaitGrace(ctx, c.Host, c.Volume); err != nil {
					return store.Final(err)
				}
				markRev, err := d.fence(ctx, c.Host, c.Volume, fmt.Sprintf("volume %q", c.Volume))
				if errors.Is(err, store.ErrHostAlive) {
					fenceAlive, reread = true, false
					return err // the holder came back: decide again
				}
				if err != nil {
					return store.Final(err)
				}
				next.TakenFrom = c.Host
				// Still dead, and still carrying the very mark whose
				// fencing this host proved, when the takeover lands.
				guards = append(guards, d.store.HostGone(c.Host), d.store.FencedBy(c.Host, markRev))
			}
			// else: a claim the leader released after fencing its
			// holder keeps naming that host (store.ReleaseClaim); one
			// its holder released has no TakenFrom.
			next.Host, next.Epoch, next.Since = d.opt.Host, c.Epoch+1, now
			next.Mounts, next.Counts = nil, nil
		}
		next = withMount(next, id, now)
		_, err = d.store.PutClaim(ctx, next, crev, vrev, guards...)
		if errors.Is(err, store.ErrLeaseLost) {
			return store.Final(d.notAliveErr(ctx, vol.Name))
		}
		// Someone changed the claim (or the volume) since it was read, or
		// the holder rejoined: decide again on fresh state.
		fenceAlive, reread = false, err != nil
		return err
	}, store.ErrHostAlive, store.ErrMarkChanged)
	switch {
	case fenceAlive && errors.Is(err, store.ErrHostAlive):
		return err // the holder came back at the last attempt
	case errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrHostAlive) || errors.Is(err, store.ErrMarkChanged):
		return newErr(ErrBusy, "volume %q: its claim kept changing while host %s tried to take it (%d attempts; last: %v): another host is mounting it at the same time; try again", vol.Name, d.opt.Host, attempts, err)
	case err != nil:
		return err
	}
	d.log.WithFields(logrus.Fields{"volume": vol.Name, "epoch": next.Epoch, "action": act.String(), "mounts": len(next.Mounts)}).Info("claimed volume")
	return nil
}

// deadSighting is when this host first saw a claim holder dead, in which
// of its incarnations (store.HostState.Incarnation).
type deadSighting struct {
	at          time.Time
	incarnation int64
}

// sawOwner tracks since when this host has seen each claim holder dead:
// from its first sighting of that incarnation's death. A holder that
// registered again since (seen alive or not: this host may not have
// looked meanwhile) starts afresh, so that a sighting of an earlier death
// (a Mount refused during its maintenance, say) never shortens the grace
// of a later one.
func (d *Driver) sawOwner(host string, st store.HostState) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if st.Alive {
		delete(d.deadSince, host)
	} else if seen, ok := d.deadSince[host]; !ok || seen.incarnation != st.Incarnation {
		d.deadSince[host] = deadSighting{at: time.Now(), incarnation: st.Incarnation}
	}
}

// awaitGrace waits until host, which holds volume (a claim, or an
// unfinished create), has been seen dead for the grace every peer waits
// after a lease is gone (the leader too): a cushion for a self-fencing
// that overran its deadline. Then the caller reads again.
func (d *Driver) awaitGrace(ctx context.Context, host, volume string) error {
	d.mu.Lock()
	seen, ok := d.deadSince[host]
	d.mu.Unlock()
	if !ok {
		return nil
	}
	left := time.Until(seen.at.Add(d.opt.Grace))
	if left <= 0 {
		return nil
	}
	d.log.WithFields(logrus.Fields{"volume": volume, "owner": host, "wait": left.Round(time.Millisecond).String()}).Info("owner's lease is gone: waiting the grace before fencing it")
	select {
	case <-ctx.Done():
		return newErr(ErrInUse, "volume %q is claimed by host %s, whose lease is gone: takeover possible in %s, but this request ran out of time; try again", volume, host, left.Round(100*time.Millisecond))
	case <-time.After(left):
		return nil
	}
}

// fence cuts victim off the storage before this host takes over what it
// held (what: a volume's claim, or an unfinished create), through the one
// fencing function the leader uses too: the mark first (only while victim
// has no lease), then the method's proof. It returns the mark's revision,
// which the takeover's write requires (store.FencedBy).
// store.ErrHostAlive: victim has a lease again. Without fencing there is
// no takeover.
func (d *Driver) fence(ctx context.Context, victim, volume, what string) (int64, error) {
	log := d.log.WithFields(logrus.Fields{"volume": volume, "fenced_host": victim, "method": d.fencer.Name()})
	log.Warn("owner of the volume is not alive: fencing it before taking " + what + " over")
	start := time.Now()
	markRev, err := fencing.Host(ctx, d.store, d.fencer, victim, d.opt.Host, volume)
	if errors.Is(err, store.ErrInMaintenance) {
		log.Info("owner went into maintenance: not taking " + what + " over")
		if m, rev, merr := d.store.GetMaintenance(ctx, victim); merr == nil && rev != 0 {
			return 0, maintenanceErr(volume, m)
		}
		return 0, newErr(ErrInUse, "volume %q is held by host %s, which is in maintenance: it is not taken over before the maintenance ends (relocvol hosts shows until when)", volume, victim)
	}
	if errors.Is(err, store.ErrHostAlive) {
		log.Info("owner has a lease again: not taking " + what + " over")
		return 0, err
	}
	if err != nil {
		return 0, wrapErr(ErrFence, err, "cannot take %s over from host %s, which is not alive: fencing it failed, and relocvol never takes storage over unfenced; check the storage paths of this host (relocvol's log says which device) or bring %s back", what, victim, victim)
	}
	d.observe(volume, "fenced", start)
	log.Warn("fenced host")
	return markRev, nil
}

// maintenanceErr refuses a takeover from a host in maintenance, saying
// until when and how to end it early.
func maintenanceErr(volume string, m store.Maintenance) error {
	why := ""
	if m.Reason != "" {
		why = ": " + m.Reason
	}
	return newErr(ErrInUse, "volume %q is held by host %s, which is in maintenance until %s (set by %s%s): its containers may still run, so it is not taken over before then; to take it over now, end the maintenance: relocvol maintenance off %s",
		volume, m.Host, m.Until.Format(time.RFC3339), m.By, why, m.Host)
}

// inUseErr words the refusal of an operation on a volume another host (or
// this one) holds, with what the operator can do about it.
func (d *Driver) inUseErr(ctx context.Context, op string, c store.Claim) error {
	mounts := fmt.Sprintf("%d mounts", len(c.Mounts))
	if c.Host == d.opt.Host {
		return newErr(ErrInUse, "volume %q is in use on host %s (this host, %s): stop the containers that use it first", c.Volume, c.Host, mounts)
	}
	st, err := d.store.HostState(ctx, c.Host)
	switch {
	case err != nil:
		return newErr(ErrInUse, "volume %q is in use on host %s (%s; its liveness is unknown: %v)", c.Volume, c.Host, mounts, err)
	case !st.Alive && st.Maintenance != nil:
		return maintenanceErr(c.Volume, *st.Maintenance)
	case st.Alive:
		what := "stop the containers that use it there first"
		if op == "mount" {
			what = "stop the container using it there, or move it with relocvol; " + takeoverHint(c.Host, st.ExpiresIn, d.opt.Grace)
		}
		return newErr(ErrInUse, "volume %q is in use on host %s (alive, last renewed %s ago, %s): %s",
			c.Volume, c.Host, st.LastRenewed.Round(100*time.Millisecond), mounts, what)
	default:
		return newErr(ErrInUse, "volume %q is claimed by host %s, which is not alive: mount it on a live host to take it over (with fencing), then stop that container and remove it", c.Volume, c.Host)
	}
}
