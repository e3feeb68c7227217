package store

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// ErrNotLeader: a leader-only write was refused because the writer is no
// longer the leader (its election key is gone or was replaced).
var ErrNotLeader = errors.New("not the leader any more")

// Leadership is one host's term as the cluster's leader. Its writes are
// guarded by its election key, so a leader that was deposed (its session
// expired while it was partitioned or paused) cannot overwrite what the new
// leader decided.
type Leadership struct {
	sess *concurrency.Session
	elec *concurrency.Election
	key  string
	rev  int64
}

// Campaign blocks until host is the leader (or ctx ends). The leadership
// lasts as long as its session: ttl seconds without renewal end it.
func (s *Store) Campaign(ctx context.Context, host string, ttl int) (*Leadership, error) {
	sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(ttl), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, s.etcdErr("session for the election", err)
	}
	elec := concurrency.NewElection(sess, s.key("leader", ""))
	if err := elec.Campaign(ctx, host); err != nil {
		_ = sess.Close()
		return nil, fmt.Errorf("campaign for leader as %s: %w", host, err)
	}
	return &Leadership{sess: sess, elec: elec, key: elec.Key(), rev: elec.Rev()}, nil
}

// Done is closed when the leadership's session ends.
func (l *Leadership) Done() <-chan struct{} { return l.sess.Done() }

// Lease is the lease the leadership lives on.
func (l *Leadership) Lease() clientv3.LeaseID { return l.sess.Lease() }

// Resign gives the leadership up.
func (l *Leadership) Resign(ctx context.Context) error {
	err := l.elec.Resign(ctx)
	_ = l.sess.Close()
	return err
}

// Leader returns the current leader's name, or "" when there is none.
func (s *Store) Leader(ctx context.Context) (string, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.key("leader", "")+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", s.etcdErr("read the leader", err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// LeaderTxn commits ops only while l is still the leader: the election key
// must exist with the revision it was created at.
func (s *Store) LeaderTxn(ctx context.Context, l *Leadership, ops ...clientv3.Op) error {
	_, err := s.guardedTxn(ctx, "leader write", []Guard{l}, nil, ops...)
	return err
}

// cmp makes a Leadership a Guard: its election key still exists as created.
func (l *Leadership) cmp() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.rev)
}
