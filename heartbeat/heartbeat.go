// Package heartbeat keeps a host alive in etcd: the key <prefix>/hosts/<host>
// bound to the host's lease, renewed as internal/liveness times it, given up
// and registered again (through the storage side, Member) when the lease is
// lost or the host was fenced. The plugin's Mount and the controller both
// ask it whether the host may hold volumes.
//
// A peer may take over this host's volumes only once that key is gone, so
// this host must stop claiming to be alive as soon as it cannot prove its
// lease is current: Alive turns false at the self-fencing point of its
// timings (internal/liveness), well before etcd itself can expire the lease.
package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/liveness"
	"github.com/relocvol/relocvol/internal/store"
)

// Member is the host's storage side around each registration (the plugin's
// Driver).
type Member interface {
	// Prepare runs before every registration (the first and each rejoin):
	// it cleans up what peers took over, or everything when a fencing mark
	// names this host, and returns that mark's revision (0: none), which
	// the registration then clears in the same transaction.
	Prepare(ctx context.Context) (markRev int64, err error)
	// Join registers this host with the storage (its reservation key) once
	// its host key is in etcd; the host counts as alive only after it.
	Join(ctx context.Context) error
	// Check runs periodically while the host is alive: it repairs what a
	// VG change left out and returns fencing.ErrCutOff if this host was
	// fenced; the heartbeat then gives its lease up and rejoins through
	// Prepare, which cleans up first.
	Check(ctx context.Context) error
}

// Releaser is an optional ability of a Member: giving up, with no storage
// command, what would let the storage register this host again by itself
// (the plugin: multipathd's copy of its reservation key). The heartbeat
// calls it at the cut-off, the moment the host stops counting as alive,
// which comes before etcd can expire its lease and so before any peer may
// fence it (the TTL plus their grace); and before it gives its lease up
// when it finds itself fenced. Prepare releases again at each join.
type Releaser interface {
	// Release reports whether all is confirmed released (at the cut-off
	// the heartbeat tries again at each tick until it is).
	Release(ctx context.Context) bool
}

// releaseTimeout bounds one Release: it must be done before peers may fence
// this host (TTL + grace - cut-off: 3 s at TTL 5, 2.1 s at TTL 2).
const releaseTimeout = 2 * time.Second

// checkEvery is how often a live host checks its registration with the
// storage (Member.Check), and so how soon it notices a new PV.
const checkEvery = 5 * time.Second

// Heartbeat keeps a host's lease alive and re-registers after losing it.
type Heartbeat struct {
	st        *store.Store
	host      string
	tm        liveness.Timings
	leaseFile string
	version   string
	log       logrus.FieldLogger
	// Member, when set, prepares, joins and checks the storage side.
	Member Member
	// Info, when set, adds to the host record published in etcd.
	Info func(*store.Host)

	checkEvery time.Duration

	mu    sync.Mutex
	lease clientv3.LeaseID
	// renewed is when the last renewal etcd acknowledged was sent (or the
	// lease granted): etcd cannot expire the lease before renewed + TTL.
	renewed time.Time
	joined  bool
	// maxGap is the longest time since a renewal that a renewal's answer
	// ended, over this process's life (see MaxRenewalGap).
	maxGap time.Duration
}

// New prepares a heartbeat; stateDir keeps the lease ID so that a
// restarted process can replace its own previous, not yet expired, lease.
func New(st *store.Store, host string, ttl time.Duration, stateDir, version string, log logrus.FieldLogger) *Heartbeat {
	return &Heartbeat{
		st: st, host: host, tm: liveness.For(ttl), version: version, log: log.WithField("host", host),
		leaseFile: filepath.Join(stateDir, "lease-"+host), checkEvery: checkEvery,
	}
}

// Timings are the host's liveness timings.
func (h *Heartbeat) Timings() liveness.Timings { return h.tm }

// Alive reports whether this host's lease is provably current, with room
// to spare: it may mount and hold volumes.
func (h *Heartbeat) Alive() bool {
	at, ok := h.Cutoff()
	return ok && time.Now().Before(at)
}

// Cutoff is when this host stops being alive unless a renewal lands first:
// its last acknowledged renewal's send time plus the cut-off. ok is false
// while it has not joined, or after it lost its lease. Every storage call
// on the host's behalf outside its join ends there (scsi3).
func (h *Heartbeat) Cutoff() (at time.Time, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.renewed.Add(h.tm.Cutoff()), h.joined
}

// Proven asks etcd, now, whether this host's key is still bound to the
// lease this process renews and no fencing mark names it (scsi3 asks
// before and after it registers on the storage outside the join):
// fencing.ErrCutOff when not.
func (h *Heartbeat) Proven(ctx context.Context) error {
	lease := h.Lease()
	ok, err := h.st.StillRegistered(ctx, h.host, int64(lease))
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: the key of host %s is no longer bound to lease %x, or a fencing mark names it", fencing.ErrCutOff, h.host, int64(lease))
	}
	return nil
}

// Joined reports whether the host is registered and how long ago its last
// acknowledged renewal was sent.
func (h *Heartbeat) Joined() (bool, time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.joined, time.Since(h.renewed)
}

// MaxRenewalGap is the longest this host has gone, since it started,
// between sending a renewal and the answer to the next one: how close it
// came to its cut-off (Timings().Cutoff() minus it is the smallest slack).
func (h *Heartbeat) MaxRenewalGap() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.maxGap
}

// Lease is the host's current lease (0 before it joined).
func (h *Heartbeat) Lease() clientv3.LeaseID {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lease
}

// TTL is the lease's time to live.
func (h *Heartbeat) TTL() time.Duration { return h.tm.TTL }

// Start registers the host once (failing if the name is taken by another
// live process) and then keeps it registered until ctx ends.
func (h *Heartbeat) Start(ctx context.Context) error {
	id, err := h.join(ctx)
	if err != nil {
		return err
	}
	go h.run(ctx, id)
	return nil
}

func (h *Heartbeat) run(ctx context.Context, id clientv3.LeaseID) {
	for {
		kctx, cancel := context.WithCancel(ctx)
		if h.Member != nil {
			go h.checkLoop(kctx, id, cancel)
		}
		if _, ok := h.Member.(Releaser); ok {
			go h.releaseAtCutoff(kctx)
		}
		lost := h.keepAlive(kctx, id)
		cancel()
		if lost {
			// The lease may be gone before the cut-off (revoked, an etcd
			// restored from a backup): peers may fence after their grace
			// alone, well before the rejoin's Prepare.
			h.release(ctx)
		}
		if !lost && ctx.Err() != nil {
			// A clean stop: nothing renews the lease any more, but it is
			// current in etcd until it runs out, and Alive says so up to
			// the cut-off, so that the stop can still announce maintenance
			// (controller.MaintainOnStop) before peers see the host dead.
			return
		}
		h.mu.Lock()
		h.joined = false
		h.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		h.log.Error("lost the etcd lease: this host counts as dead for its peers until it rejoins")
		if id = h.rejoin(ctx); id == 0 {
			return
		}
	}
}

// keepAlive renews the lease every Renew until it is lost (not found, or
// not renewed for a whole TTL: true) or kctx ends (the host found itself
// cut off the storage, or stops: false). Each renewal is one request with
// its own timeout, so that a renewal is never waited for longer than the
// next one is due.
func (h *Heartbeat) keepAlive(kctx context.Context, id clientv3.LeaseID) bool {
	cli := h.st.Client()
	tick := time.NewTicker(h.tm.Renew)
	defer tick.Stop()
	for {
		select {
		case <-kctx.Done():
			return false
		case <-tick.C:
		}
		sent := time.Now()
		rctx, rcancel := context.WithTimeout(kctx, h.tm.Renew)
		resp, err := cli.KeepAliveOnce(rctx, id)
		rcancel()
		switch {
		case err == nil && resp.TTL > 0:
			h.mu.Lock()
			// The longest this host went without a provably current lease:
			// from the previous renewal's send to this one's answer. Its
			// distance to the cut-off is the slack a healthy host keeps.
			if gap := time.Since(h.renewed); gap > h.maxGap {
				h.maxGap = gap
			}
			h.renewed = sent
			h.mu.Unlock()
		case errors.Is(err, rpctypes.ErrLeaseNotFound) || (err == nil && resp.TTL <= 0):
			h.log.WithField("lease", fmt.Sprintf("%x", int64(id))).Warn("etcd says the lease is gone")
			return true
		default:
			_, since := h.Joined()
			h.log.WithError(err).WithField("since_renewal", since.Round(time.Millisecond).String()).Debug("lease renewal failed; retrying")
			if since > h.tm.TTL {
				return true // expired by now, whatever etcd says later
			}
		}
	}
}

// checkLoop runs Member.Check every checkEvery while this host is alive;
// when the host was cut off it revokes the lease (so that peers see it
// dead at once) and ends the keep-alive, so that the host rejoins through
// Prepare, which cleans up first.
func (h *Heartbeat) checkLoop(ctx context.Context, id clientv3.LeaseID, stop context.CancelFunc) {
	tick := time.NewTicker(h.checkEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !h.Alive() {
			continue
		}
		err := h.Member.Check(ctx)
		if err == nil {
			continue
		}
		if !errors.Is(err, fencing.ErrCutOff) {
			h.log.WithError(err).Warn("cannot check this host's registration with the storage; retrying")
			continue
		}
		h.log.WithError(err).Error("this host's reservation key is gone: it was fenced; giving up the lease to clean up and rejoin")
		h.mu.Lock()
		h.joined = false
		h.mu.Unlock()
		// Before the revoke: from then on peers may fence this host after
		// their grace alone.
		h.release(ctx)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, _ = h.st.Client().Revoke(rctx, id)
		cancel()
		stop()
		return
	}
}

// releaseAtCutoff releases once each time this host, joined, passes its
// cut-off (a renewal that lands late makes it alive again, and a later
// cut-off releases again), until ctx ends.
func (h *Heartbeat) releaseAtCutoff(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	released := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		at, joined := h.Cutoff()
		switch past := joined && !time.Now().Before(at); {
		case past && !released:
			h.log.Warn("past the cut-off (the lease is not provably current): giving up multipathd's copy of the reservation key before peers may fence this host")
			released = h.release(ctx) // not confirmed: again at the next tick
		case !past && joined:
			released = false
		}
	}
}

// release calls the Member's Release, if it is a Releaser, within
// releaseTimeout; it reports whether all is confirmed released (true when
// there is nothing to release).
func (h *Heartbeat) release(ctx context.Context) bool {
	r, ok := h.Member.(Releaser)
	if !ok {
		return true
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	return r.Release(rctx)
}

// rejoin retries registration every second until it works or ctx ends (0).
func (h *Heartbeat) rejoin(ctx context.Context) clientv3.LeaseID {
	for {
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(time.Second):
		}
		id, err := h.join(ctx)
		if err == nil {
			h.log.Info("rejoined the cluster with a new lease")
			return id
		}
		h.log.WithError(err).Warn("cannot rejoin yet")
	}
}

// join prepares, registers the host key under a new lease in one
// transaction that requires no fencing mark (but the one Prepare cleaned up
// after), then joins the storage: from the registration on, no peer can
// mark this host, so the storage registration cannot undo a fencing.
func (h *Heartbeat) join(ctx context.Context) (clientv3.LeaseID, error) {
	var markRev int64
	if h.Member != nil {
		var err error
		if markRev, err = h.Member.Prepare(ctx); err != nil {
			return 0, fmt.Errorf("prepare to join: %w", err)
		}
	}
	cli := h.st.Client()
	sent := time.Now()
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	grant, err := cli.Grant(gctx, int64(h.tm.TTL/time.Second))
	cancel()
	if err != nil {
		return 0, fmt.Errorf("grant a %s lease: %w", h.tm.TTL, err)
	}
	info := store.Host{Name: h.host, Started: time.Now().UTC(), Lease: int64(grant.ID), PID: os.Getpid(), Version: h.version}
	if h.Info != nil {
		h.Info(&info)
	}
	drop := func() {
		// What the join handed the storage side (mpathpersist's REGISTER
		// hands multipathd the key) goes before the lease: once it is
		// revoked, peers may fence this host after their grace alone.
		h.release(ctx)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, _ = cli.Revoke(rctx, grant.ID)
		cancel()
	}
	if err := h.st.RegisterHost(ctx, info, h.previousLease(), markRev); err != nil {
		drop()
		return 0, fmt.Errorf("register host %s: %w", h.host, err)
	}
	if err := os.WriteFile(h.leaseFile, []byte(strconv.FormatInt(int64(grant.ID), 16)+"\n"), 0o644); err != nil {
		h.log.WithError(err).Warn("cannot record the lease; a quick restart will wait for the old lease to expire")
	}
	h.mu.Lock()
	h.lease, h.renewed, h.joined = grant.ID, sent, false
	h.mu.Unlock()
	if h.Member != nil {
		if err := h.joinStorage(ctx, grant.ID); err != nil {
			drop()
			return 0, fmt.Errorf("join the storage: %w", err)
		}
	}
	h.mu.Lock()
	h.joined = true
	h.mu.Unlock()
	h.log.WithField("lease", fmt.Sprintf("%x", int64(grant.ID))).Info("registered host")
	return grant.ID, nil
}

// joinStorage runs Member.Join (several PR commands, an LVM metadata
// write: seconds on a slow SAN) while renewing the lease, and gives it up
// as soon as the lease is no longer provably current, releasing at once
// (the join itself may not return for long: a command stuck on a blocked
// path): the registration with the storage must land while no peer may
// mark this host.
func (h *Heartbeat) joinStorage(ctx context.Context, id clientv3.LeaseID) error {
	kctx, stopRenewing := context.WithCancel(ctx)
	renewing := make(chan struct{})
	go func() {
		defer close(renewing)
		h.keepAlive(kctx, id)
	}()
	defer func() {
		stopRenewing()
		<-renewing
	}()
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-jctx.Done():
				return
			case <-renewing:
				if jctx.Err() != nil {
					return // the join is over (it stops the renewals then)
				}
				// The lease is gone; the join may not return for long
				// (stuck on a blocked path): release now.
				cancel()
				h.release(ctx)
				return
			case <-t.C:
				if _, since := h.Joined(); since >= h.tm.Cutoff() && jctx.Err() == nil {
					cancel()
					h.release(ctx)
					return
				}
			}
		}
	}()
	err := h.Member.Join(jctx)
	if err != nil && jctx.Err() != nil && ctx.Err() == nil {
		return fmt.Errorf("the lease could not be renewed while joining (%w): %w", jctx.Err(), err)
	}
	return err
}

func (h *Heartbeat) previousLease() int64 {
	b, err := os.ReadFile(h.leaseFile)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			h.log.WithError(err).Warn("cannot read the previous lease")
		}
		return 0
	}
	id, err := strconv.ParseInt(strings.TrimSpace(string(b)), 16, 64)
	if err != nil {
		return 0
	}
	return id
}
