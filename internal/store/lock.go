package store

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
)

// lockTTL bounds how long a lock outlives a holder that died with it.
const lockTTL = 10

// Lock takes the cluster-wide lock key (e.g. "vg/san-vg") under
// <prefix>/locks/ and returns the function that releases it. The lock lives
// in its own etcd session, not bound to ctx, so that a request cancelled
// half way cannot release it while the work it protects still runs; a
// holder that dies loses it after lockTTL seconds.
func (s *Store) Lock(ctx context.Context, key string) (unlock func(), err error) {
	sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(lockTTL), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, fmt.Errorf("etcd session for lock %s: %w", key, err)
	}
	m := concurrency.NewMutex(sess, s.key("locks", key))
	if err := m.Lock(ctx); err != nil {
		_ = sess.Close()
		return nil, fmt.Errorf("take lock %s: %w", key, err)
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Unlock(uctx)
		_ = sess.Close()
	}, nil
}
