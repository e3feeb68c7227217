// Package fencing makes a dead or partitioned host unable to write to the
// shared storage before a peer takes over its volumes. A method implements
// Fence (cut a host off) and Join (register this host, called when it
// joins or rejoins the cluster). "none" is for the loop backend in
// development and tests, where there is nothing to fence; "scsi3" (SCSI-3
// persistent reservations) is the production method for the lvm backend.
//
// Host is the one way every caller fences: the plugin's Mount when it takes
// a volume over and the leader when it fails a host over.
package fencing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/internal/doctor"
	"github.com/relocvol/relocvol/internal/store"
)

// ErrCutOff: this host's own registration with the storage is gone (a peer
// fenced it): it must stop, clean up and rejoin, never register again by
// itself.
var ErrCutOff = errors.New("this host was cut off the storage (fenced)")

// Method cuts a host off the shared storage. Fence must not return nil
// unless the host provably cannot write any more (or, for None, knowingly
// skipped), and must be idempotent: it is called again on every takeover.
type Method interface {
	Name() string
	Fence(ctx context.Context, host string) error
}

// Marker records the intent to fence a host (store.Store).
type Marker interface {
	MarkFence(ctx context.Context, f store.Fence, guards ...store.Guard) (int64, error)
}

// Host fences victim on behalf of host by: it first marks the intent in
// etcd, in a transaction that requires the victim to have no lease (and
// every guard to hold), so that the victim cannot register again before it
// has cleaned up; then the method cuts the victim off and proves it. A mark
// is never taken as proof: the method runs every time (a second takeover
// of the same dead host reads the storage again: it preempts only a key
// that came back, and sees a reservation the target lost). It returns the
// revision of the mark it wrote: every release or takeover of the victim's
// claims that relies on this fence requires that very mark in its own
// transaction (store.FencedBy). A victim with a lease is
// store.ErrHostAlive: the caller must re-read and decide again, and take
// nothing of the victim meanwhile.
func Host(ctx context.Context, m Marker, method Method, victim, by, volume string, guards ...store.Guard) (int64, error) {
	mark := store.Fence{Host: victim, By: by, Method: method.Name(), Volume: volume, At: time.Now().UTC()}
	rev, err := m.MarkFence(ctx, mark, guards...)
	if err != nil {
		return 0, fmt.Errorf("mark host %s as being fenced: %w", victim, err)
	}
	if err := method.Fence(ctx, victim); err != nil {
		return 0, fmt.Errorf("fence host %s with %s: %w", victim, method.Name(), err)
	}
	return rev, nil
}

// None performs no fencing. It only logs, loudly, that a takeover happened
// without it: with a real SAN that would risk two writers.
type None struct {
	Log logrus.FieldLogger
}

var _ Method = None{}

// Name implements Method.
func (None) Name() string { return "none" }

// Fence implements Method.
func (n None) Fence(_ context.Context, host string) error {
	n.Log.WithField("fenced_host", host).Warn("fencing none: taking over volumes of a dead host without fencing it (safe only for the loop backend in development)")
	return nil
}

// Join registers nothing: there is no storage to register with.
func (None) Join(context.Context) error { return nil }

// Diagnose is the doctor's fencing check: there is none, which a partitioned
// host that cannot stop a writer turns into two writers.
func (None) Diagnose(context.Context, []string) []doctor.Check {
	return []doctor.Check{doctor.Warned("fencing", "in production use the lvm backend with scsi3 fencing (docs/production.md); loop with none is for one host or development",
		"none: a host cut off etcd stops its containers itself, and nothing stops one that cannot (a writer stuck in D state, a suspended VM)")}
}
