package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Family names a kind of record, the first element of its key under the
// store's prefix ("claims", "hosts", "volumes", …): what Await watches.
type Family string

// The families a wait may depend on.
const (
	Claims  Family = "claims"
	Hosts   Family = "hosts"
	Volumes Family = "volumes"
	Apps    Family = "apps"
)

// ErrTryAgain, from an Await check, means it could not tell (a read
// failed): Await runs it again soon rather than waiting for a change that
// may never come.
var ErrTryAgain = errors.New("cannot tell yet")

// Await runs check until it reports done, and between two runs waits for a
// change to a record of one of families after the revision read just
// before that run: etcd's Get, then Watch from that revision, so that no
// change between the check and the watch is missed and nothing polls.
// recheck, when above zero, also runs check again after that long without
// a change, for what is not in etcd (this host's own liveness). A check
// that returns ErrTryAgain, or a failed read of the revision, runs again
// after recheck (200 ms when zero) until ctx ends; the error then says what
// the last failure was. Any other error of check ends the wait.
func (s *Store) Await(ctx context.Context, families []Family, recheck time.Duration, check func(context.Context) (bool, error)) error {
	retry := recheck
	if retry <= 0 {
		retry = 200 * time.Millisecond
	}
	var lastErr error
	for {
		rev, rerr := s.revision(ctx)
		// The check runs even when the revision could not be read: it may
		// end the wait on what is not in etcd.
		done, err := check(ctx)
		switch {
		case errors.Is(err, ErrTryAgain):
			lastErr = err
		case err != nil:
			return err
		case done:
			return nil
		case rerr != nil:
			lastErr = rerr
		default:
			if err := s.awaitChange(ctx, rev, families, recheck); err != nil {
				return err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), lastErr)
		case <-time.After(retry):
		}
	}
}

// revision is the store's current revision.
func (s *Store) revision(ctx context.Context) (int64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.dir("cluster"), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("read etcd's revision: %w", err)
	}
	return resp.Header.Revision, nil
}

// awaitChange returns once a record of one of families changed after rev,
// after recheck (if above zero), or when the watch ends (compaction, no
// leader: the caller reads again); an error only when ctx ended.
func (s *Store) awaitChange(ctx context.Context, rev int64, families []Family, recheck time.Duration) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	ch := s.cli.Watch(wctx, s.prefix+"/", clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	var timeout <-chan time.Time
	if recheck > 0 {
		t := time.NewTimer(recheck)
		defer t.Stop()
		timeout = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout:
			return nil
		case resp, ok := <-ch:
			if !ok || resp.Err() != nil {
				// The caller reads again; a pause keeps a watch that etcd
				// keeps refusing (no leader) from spinning.
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(200 * time.Millisecond):
				}
				return nil
			}
			for _, ev := range resp.Events {
				for _, f := range families {
					if strings.HasPrefix(string(ev.Kv.Key), s.dir(string(f))) {
						return nil
					}
				}
			}
		}
	}
}
