package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
)

// lockTTL bounds how long a lock outlives a holder that died with it.
const lockTTL = 10

// ErrLockLost: a lock's etcd session expired (the holder was cut off etcd
// for lockTTL seconds), so another host may hold the lock now.
var ErrLockLost = errors.New("lock lost")

// Held is a cluster-wide lock this process holds.
type Held struct {
	key  string
	sess *concurrency.Session
	m    *concurrency.Mutex
	s    *Store
}

// Lock takes the cluster-wide lock key (e.g. "vg/san-vg") under
// <prefix>/locks/. The lock lives in its own etcd session, not bound to
// ctx, so that a request cancelled half way cannot release it while the
// work it protects still runs; a holder that dies loses it after lockTTL
// seconds, which is why a holder checks it (Check) before each step it
// protects.
func (s *Store) Lock(ctx context.Context, key string) (*Held, error) {
	sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(lockTTL), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, s.etcdErr("session for lock "+key, err)
	}
	m := concurrency.NewMutex(sess, s.key("locks", key))
	if err := m.Lock(ctx); err != nil {
		_ = sess.Close()
		return nil, fmt.Errorf("take lock %s: %w", key, err)
	}
	return &Held{key: key, sess: sess, m: m, s: s}, nil
}

// Check proves the lock is still held now: its session has not ended and
// its key in etcd is still this holder's.
func (h *Held) Check(ctx context.Context) error {
	select {
	case <-h.sess.Done():
		return fmt.Errorf("lock %s: its etcd session ended: %w", h.key, ErrLockLost)
	default:
	}
	ctx, cancel := h.s.ctx(ctx)
	defer cancel()
	resp, err := h.s.cli.Txn(ctx).If(h.m.IsOwner()).Commit()
	if err != nil {
		return fmt.Errorf("check lock %s: %w", h.key, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("lock %s: its key is gone: %w", h.key, ErrLockLost)
	}
	return nil
}

// Unlock releases the lock.
func (h *Held) Unlock() {
	uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = h.m.Unlock(uctx)
	_ = h.sess.Close()
}

// WithLock runs fn under the cluster-wide lock key, having proven just
// before fn that the lock is still held. Keep fn to the one step the lock
// protects (an LVM metadata command), so that a holder cut off etcd cannot
// run a long series of them after its lock expired.
func (s *Store) WithLock(ctx context.Context, key string, fn func(ctx context.Context) error) error {
	h, err := s.Lock(ctx, key)
	if err != nil {
		return err
	}
	defer h.Unlock()
	if err := h.Check(ctx); err != nil {
		return err
	}
	return fn(ctx)
}

// WithLockSteps runs fn under the cluster-wide lock key for a series of
// steps; fn calls held (Held.Check) before each step the lock protects,
// so that a holder cut off etcd stops at the next step once its lock may
// be another's.
func (s *Store) WithLockSteps(ctx context.Context, key string, fn func(ctx context.Context, held func(context.Context) error) error) error {
	h, err := s.Lock(ctx, key)
	if err != nil {
		return err
	}
	defer h.Unlock()
	return fn(ctx, h.Check)
}
