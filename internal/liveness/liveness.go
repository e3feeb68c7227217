// Package liveness derives every timing of a host's liveness from its lease
// TTL, in one place, so that their order (which the safety of takeovers
// rests on) is checked for every TTL a host may be configured with.
//
// Times marked "since the last renewal" count from the moment this host
// *sent* its last renewal that etcd acknowledged: etcd renewed the lease at
// or after that moment, so it cannot expire the lease before TTL has passed
// since then. The host's side of the race is then simple: it stops
// accepting Mounts and starts self-fencing at SelfFence, and must be done
// (every writer stopped, every volume unmounted) by Deadline, before the
// lease can expire. Peers act only once the lease is gone, and then wait
// Grace more before they fence the host and take its volumes: a cushion for
// a self-fencing that overran.
package liveness

import (
	"fmt"
	"time"
)

// The lease TTLs a host may use (whole seconds). etcd grants no lease
// shorter than 2 s; beyond 2 minutes a failover is too slow to be useful.
const (
	MinTTL = 2 * time.Second
	MaxTTL = 120 * time.Second
)

// Timings of one host's liveness.
type Timings struct {
	// TTL of the host's lease in etcd.
	TTL time.Duration
	// Renew is how often the host renews its lease; each renewal times out
	// after Renew too, so a lost one is retried on the next tick.
	Renew time.Duration
	// SelfFence, since the last renewal: the host counts itself not alive,
	// refuses new Mounts, and stops every container using a relocvol volume.
	SelfFence time.Duration
	// StopTimeout is how long a container gets between SIGTERM and SIGKILL
	// when the host self-fences.
	StopTimeout time.Duration
	// Deadline, since the last renewal: self-fencing must be done by then.
	Deadline time.Duration
	// Grace is how long peers wait, once they saw the lease gone, before
	// they fence the host and take its volumes: the leader and a Mount's
	// takeover alike.
	Grace time.Duration
}

// For returns the timings of a lease of ttl (which Check accepts only in
// [MinTTL, MaxTTL], whole seconds).
func For(ttl time.Duration) Timings {
	t := Timings{TTL: ttl, Renew: ttl / 6}
	// The lease cannot expire before TTL since the last renewal; keep a
	// little for clock rate drift and scheduling.
	t.Deadline = ttl - min(250*time.Millisecond, ttl/10)
	t.StopTimeout = min(time.Second, ttl/5)
	// Stopping takes the SIGTERM wait, then the kill, Docker's Unmount and
	// the plugin's unmount and deactivation.
	t.SelfFence = t.Deadline - t.StopTimeout - min(500*time.Millisecond, ttl/4)
	t.Grace = max(ttl/4, time.Second)
	return t
}

// Cutoff is when, since the last renewal, this host stops accepting Mounts:
// the moment it starts self-fencing, so that nothing it mounts escapes the
// self-fencing.
func (t Timings) Cutoff() time.Duration { return t.SelfFence }

// Check verifies the order the takeover protocol rests on:
//
//	Renew  <  2·Renew  <  SelfFence = Cutoff  <  Deadline  <  TTL  <  TTL + Grace
//
// a renewal may be lost without the host self-fencing; self-fencing has
// its stop budget before the deadline; it is done before the lease can
// expire; peers wait on top of the expiry.
func (t Timings) Check() error {
	switch {
	case t.TTL < MinTTL || t.TTL > MaxTTL || t.TTL%time.Second != 0:
		return fmt.Errorf("lease TTL %s: use whole seconds from %s to %s", t.TTL, MinTTL, MaxTTL)
	case t.Renew <= 0 || 2*t.Renew >= t.SelfFence:
		return fmt.Errorf("lease TTL %s: self-fencing at %s would follow a single lost renewal (every %s)", t.TTL, t.SelfFence, t.Renew)
	case t.SelfFence+t.StopTimeout >= t.Deadline:
		return fmt.Errorf("lease TTL %s: self-fencing at %s cannot stop containers (%s) before its deadline %s", t.TTL, t.SelfFence, t.StopTimeout, t.Deadline)
	case t.Deadline >= t.TTL:
		return fmt.Errorf("lease TTL %s: self-fencing deadline %s is not before the lease can expire", t.TTL, t.Deadline)
	case t.Grace <= 0:
		return fmt.Errorf("lease TTL %s: peers wait no grace after the lease is gone", t.TTL)
	}
	return nil
}
