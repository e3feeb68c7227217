package controller

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/internal/store"
)

// hostName is what a host may be called (RELOCVOL_HOST, a hostname).
var hostName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// SetMaintenance announces maintenance of host for d: until then peers
// neither fence it nor take its volumes or apps, so its plugin may be
// disabled, reconfigured or upgraded while its containers keep running.
func (c *Controller) SetMaintenance(ctx context.Context, host string, d time.Duration, reason string) (api.Maintenance, error) {
	if !hostName.MatchString(host) {
		return api.Maintenance{}, api.Errorf(api.ErrInvalid, "invalid host name %q: name a host as relocvol hosts lists it", host)
	}
	if err := store.ValidateMaintenance(d); err != nil {
		return api.Maintenance{}, api.Errorf(api.ErrInvalid, "%v", err)
	}
	hs, err := c.st.HostState(ctx, host)
	if err != nil {
		return api.Maintenance{}, err
	}
	if !hs.Alive && hs.Maintenance == nil {
		return api.Maintenance{}, api.Errorf(api.ErrConflict, "host %q is not alive: maintenance is announced before the work, while the host is up (a dead host is being failed over)", host)
	}
	// Only onto what was read: the host still under the lease seen alive,
	// or (dead) still in the window seen: one that ran out meanwhile may
	// be being failed over.
	guard := c.st.HostLease(host, hs.Info.Lease)
	if !hs.Alive {
		guard = c.st.WindowAt(host, hs.MaintenanceRev)
	}
	guards := []store.Guard{guard}
	m, err := c.st.SetMaintenance(ctx, host, d, "operator", reason, guards...)
	if errors.Is(err, store.ErrLeaseLost) || errors.Is(err, store.ErrConflict) {
		return api.Maintenance{}, api.Errorf(api.ErrConflict, "host %q lost its lease (or its maintenance ended) while the maintenance was announced: nothing announced; relocvol hosts shows its state", host)
	}
	if err != nil {
		return api.Maintenance{}, err
	}
	c.log.WithFields(logrus.Fields{"maintenance_host": host, "until": m.Until, "reason": reason}).Warn("maintenance announced: the host is not failed over before its end")
	return apiMaintenance(m), nil
}

// EndMaintenance ends host's maintenance: from now on a dead host is
// failed over as usual.
func (c *Controller) EndMaintenance(ctx context.Context, host string) error {
	ended, err := c.st.EndMaintenance(ctx, host, "")
	if err != nil {
		return err
	}
	if !ended {
		return api.Errorf(api.ErrNotFound, "host %q is not in maintenance: nothing to end (relocvol hosts shows which are)", host)
	}
	c.log.WithField("maintenance_host", host).Warn("maintenance ended by an operator")
	return nil
}

func apiMaintenance(m store.Maintenance) api.Maintenance {
	return api.Maintenance{Host: m.Host, Until: m.Until, By: m.By, Reason: m.Reason}
}

// MaintainOnStop announces maintenance of this host when its plugin stops
// cleanly with volumes mounted (docker plugin disable -f, set, enable;
// docker plugin upgrade): the containers keep running without it, and peers
// must not fence the host and start them elsewhere meanwhile. The host
// ends it itself once it has joined again (Run).
func (c *Controller) MaintainOnStop(ctx context.Context, d time.Duration) {
	if c.opt.Volumes == nil || len(c.opt.Volumes.Mounts()) == 0 || !c.opt.Beat.Alive() {
		return
	}
	var m store.Maintenance
	kept := false
	// A window that changes between the read and the write (an operator's
	// set or ended meanwhile) is read again and decided on again.
	err := store.Retry(3, func(int) error {
		cur, rev, err := c.st.GetMaintenance(ctx, c.opt.Host)
		if err != nil {
			return store.Final(err)
		}
		var by, reason string
		if kept, by, reason = stopWindow(cur, rev, time.Now(), d); kept {
			m = cur
			return nil
		}
		// Under this host's own lease (once it is gone a peer may be
		// taking the host over, and a window landing then would shield
		// nothing), and onto the window read.
		m, err = c.st.SetMaintenance(ctx, c.opt.Host, d, by, reason,
			c.st.HostLease(c.opt.Host, int64(c.opt.Beat.Lease())), c.st.WindowAt(c.opt.Host, rev))
		return err
	})
	switch {
	case err != nil:
		c.log.WithError(err).Error("cannot announce maintenance while the plugin stops with volumes mounted: peers will fail this host over once its lease expires")
	case kept:
		c.log.WithField("until", m.Until).Warn("plugin stopping with volumes mounted, within an operator's maintenance that lasts longer: kept as it is")
	default:
		c.log.WithField("until", m.Until).Warn("plugin stopping with volumes mounted: maintenance announced, so peers do not fail this host over before then; enable the plugin again before it ends")
	}
}

// stopWindow decides the maintenance a plugin stopping with volumes
// mounted announces for d from now, given the window cur read at rev (0:
// none): an operator's that lasts longer is kept as it is (keep); one that
// ends sooner is lengthened, still the operator's (the rejoin ends only
// the plugin's own); otherwise the plugin's own.
func stopWindow(cur store.Maintenance, rev int64, now time.Time, d time.Duration) (keep bool, by, reason string) {
	by, reason = store.MaintenanceByPluginStop, "the plugin stopped with volumes mounted"
	switch {
	case rev == 0 || cur.By == by:
		return false, by, reason
	case !cur.Until.Before(now.Add(d)):
		return true, cur.By, cur.Reason
	}
	return false, cur.By, cur.Reason
}

// endStopMaintenance ends the maintenance this host's plugin announced when
// it stopped, now that it has joined again; an operator's stays.
func (c *Controller) endStopMaintenance(ctx context.Context) {
	ended, err := c.st.EndMaintenance(ctx, c.opt.Host, store.MaintenanceByPluginStop)
	switch {
	case err != nil:
		c.log.WithError(err).Warn("cannot end the maintenance announced when the plugin stopped; it ends at its deadline")
	case ended:
		c.log.Info("joined again: ended the maintenance announced when the plugin stopped")
	}
}
