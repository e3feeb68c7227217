// Package controller is relocvol's per-host controller: the heartbeat that
// keeps the host's liveness key alive in etcd, the agent that records the
// host's relocatable containers and runs what etcd places on it (and stops
// everything when the host loses its lease), the leader that fences dead
// hosts and places their apps elsewhere, planned moves, the relocation
// timeline and the read-only views the REST API serves.
//
// Liveness is a key /relocvol/hosts/<host> bound to an etcd lease. A peer may
// take over this host's volumes only once that key is gone, so this host
// must stop claiming to be alive as soon as it cannot prove its lease is
// current: Alive turns false at TTL minus a margin after the last renewal
// acknowledged by etcd, before etcd itself can expire the lease.
package controller

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
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/relocvol/relocvol/internal/store"
)

// Heartbeat keeps a host's lease alive and re-registers after losing it.
type Heartbeat struct {
	st        *store.Store
	host      string
	ttl       time.Duration
	leaseFile string
	version   string
	log       logrus.FieldLogger
	// BeforeJoin runs before every registration (the first and each rejoin
	// after a lost lease): the plugin uses it to clean up volumes that peers
	// took over while this host was away. Registration waits until it succeeds.
	BeforeJoin func(ctx context.Context) error

	mu      sync.Mutex
	lease   clientv3.LeaseID
	lastAck time.Time
	joined  bool
}

// NewHeartbeat prepares a heartbeat; stateDir keeps the lease ID so that a
// restarted process can replace its own previous, not yet expired, lease.
func NewHeartbeat(st *store.Store, host string, ttl time.Duration, stateDir, version string, log logrus.FieldLogger) *Heartbeat {
	return &Heartbeat{
		st: st, host: host, ttl: ttl, version: version, log: log.WithField("host", host),
		leaseFile: filepath.Join(stateDir, "lease-"+host),
	}
}

// margin is how long before the lease's expiry this host stops calling
// itself alive: enough for one etcd round trip and clock drift.
func (h *Heartbeat) margin() time.Duration {
	if m := h.ttl / 4; m > time.Second {
		return m
	}
	return time.Second
}

// Alive reports whether this host's lease is provably current.
func (h *Heartbeat) Alive() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.joined && time.Since(h.lastAck) < h.ttl-h.margin()
}

// Joined reports whether the host is registered (its keepalive stream open)
// and how long ago etcd last acknowledged a renewal.
func (h *Heartbeat) Joined() (bool, time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.joined, time.Since(h.lastAck)
}

// Lease is the host's current lease (0 before it joined).
func (h *Heartbeat) Lease() clientv3.LeaseID {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lease
}

// TTL is the lease's time to live.
func (h *Heartbeat) TTL() time.Duration { return h.ttl }

// Start registers the host once (failing if the name is taken by another
// live process) and then keeps it registered until ctx ends.
func (h *Heartbeat) Start(ctx context.Context) error {
	ch, err := h.join(ctx)
	if err != nil {
		return err
	}
	go h.run(ctx, ch)
	return nil
}

func (h *Heartbeat) run(ctx context.Context, ch <-chan *clientv3.LeaseKeepAliveResponse) {
	for {
		for range ch {
			h.mu.Lock()
			h.lastAck = time.Now()
			h.mu.Unlock()
		}
		h.mu.Lock()
		h.joined = false
		h.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		h.log.Error("lost the etcd lease: this host counts as dead for its peers until it rejoins")
		ch = h.rejoin(ctx)
		if ch == nil {
			return
		}
	}
}

// rejoin retries registration every second until it works or ctx ends (nil).
func (h *Heartbeat) rejoin(ctx context.Context) <-chan *clientv3.LeaseKeepAliveResponse {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		ch, err := h.join(ctx)
		if err == nil {
			h.log.Info("rejoined the cluster with a new lease")
			return ch
		}
		h.log.WithError(err).Warn("cannot rejoin yet")
	}
}

func (h *Heartbeat) join(ctx context.Context) (<-chan *clientv3.LeaseKeepAliveResponse, error) {
	if h.BeforeJoin != nil {
		if err := h.BeforeJoin(ctx); err != nil {
			return nil, fmt.Errorf("prepare to join: %w", err)
		}
	}
	cli := h.st.Client()
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	grant, err := cli.Grant(gctx, int64(h.ttl/time.Second))
	cancel()
	if err != nil {
		return nil, fmt.Errorf("grant a %s lease: %w", h.ttl, err)
	}
	info := store.Host{Name: h.host, Started: time.Now().UTC(), Lease: int64(grant.ID), PID: os.Getpid(), Version: h.version}
	if err := h.st.RegisterHost(ctx, info, h.previousLease()); err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, _ = cli.Revoke(rctx, grant.ID)
		cancel()
		return nil, fmt.Errorf("register host %s: %w", h.host, err)
	}
	if err := os.WriteFile(h.leaseFile, []byte(strconv.FormatInt(int64(grant.ID), 16)+"\n"), 0o644); err != nil {
		h.log.WithError(err).Warn("cannot record the lease; a quick restart will wait for the old lease to expire")
	}
	ch, err := cli.KeepAlive(ctx, grant.ID)
	if err != nil {
		return nil, fmt.Errorf("keep lease %x alive: %w", grant.ID, err)
	}
	h.mu.Lock()
	h.lease, h.lastAck, h.joined = grant.ID, time.Now(), true
	h.mu.Unlock()
	h.log.WithField("lease", fmt.Sprintf("%x", int64(grant.ID))).Info("registered host")
	return ch, nil
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
