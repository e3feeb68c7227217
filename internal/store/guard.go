package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Errors of guards that no longer hold.
var (
	// ErrHostAlive: a takeover's victim has a host key again (it rejoined,
	// or was never dead): the takeover must re-read and decide again.
	ErrHostAlive = errors.New("host is alive")
	// ErrLeaseLost: this host's own key is gone or bound to another lease,
	// so it may not take or keep claims until it has rejoined.
	ErrLeaseLost = errors.New("this host's lease is not current")
	// ErrInMaintenance: a takeover's victim is in announced maintenance
	// (its plugin may be down while its containers run): nobody fences it
	// or takes its volumes before the maintenance ends.
	ErrInMaintenance = errors.New("host is in maintenance")
)

// Guard is an extra condition of a write, checked in the same etcd
// transaction as the write itself: a decision taken on an earlier read
// cannot land once the condition is gone. A *Leadership is one (the writer
// must still be the leader), HostGone another (a takeover's victim must still
// be dead), HostLease a third (the writer's own liveness).
type Guard interface {
	cmps() []clientv3.Cmp
	// failed is the error a write gets when the i-th comparison of the
	// guard no longer holds.
	failed(i int) error
}

func (l *Leadership) cmps() []clientv3.Cmp { return []clientv3.Cmp{l.cmp()} }
func (l *Leadership) failed(int) error     { return ErrNotLeader }

type hostGuard struct {
	key, host   string
	lease       int64  // HostLease; 0 for HostGone
	maintenance string // HostGone: the host's maintenance key
}

func (g hostGuard) cmps() []clientv3.Cmp {
	if g.lease == 0 {
		return []clientv3.Cmp{
			clientv3.Compare(clientv3.CreateRevision(g.key), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(g.maintenance), "=", 0),
		}
	}
	// An absent key compares as lease 0, which never matches.
	return []clientv3.Cmp{clientv3.Compare(clientv3.LeaseValue(g.key), "=", g.lease)}
}

func (g hostGuard) failed(i int) error {
	switch {
	case g.lease != 0:
		return fmt.Errorf("%w: the key of host %s is no longer bound to lease %x", ErrLeaseLost, g.host, g.lease)
	case i == 1:
		return fmt.Errorf("%w: host %s", ErrInMaintenance, g.host)
	}
	return fmt.Errorf("%w: host %s has a lease again", ErrHostAlive, g.host)
}

// HostGone guards a takeover: host's key must be absent (its lease expired
// or revoked) when the write lands, not only when the taker looked, and
// the host must not be in maintenance (ErrInMaintenance).
func (s *Store) HostGone(host string) Guard {
	return hostGuard{key: s.key("hosts", host), host: host, maintenance: s.key("maintenance", host)}
}

// HostLease guards a host's own claim writes: its key must still be bound
// to lease, the one this process renews.
func (s *Store) HostLease(host string, lease int64) Guard {
	return hostGuard{key: s.key("hosts", host), host: host, lease: lease}
}

// guardedTxn is every compare-and-swap of the store: ops run only if cmps
// and every guard hold, in one transaction. A failed comparison is
// ErrConflict; a guard that no longer holds gives its own error
// (ErrNotLeader, ErrHostAlive, ErrLeaseLost). It returns the revision
// written.
func (s *Store) guardedTxn(ctx context.Context, what string, guards []Guard, cmps []clientv3.Cmp, ops ...clientv3.Op) (int64, error) {
	for _, g := range guards {
		cmps = append(cmps, g.cmps()...)
	}
	tctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(tctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return 0, s.etcdErr(what, err)
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	for _, g := range guards {
		for i, c := range g.cmps() {
			gctx, gcancel := s.ctx(ctx)
			r, err := s.cli.Txn(gctx).If(c).Commit()
			gcancel()
			if err == nil && !r.Succeeded {
				return 0, fmt.Errorf("%s: %w", what, g.failed(i))
			}
		}
	}
	return 0, fmt.Errorf("%s: %w", what, ErrConflict)
}

// createOrGet writes value at key unless the key exists, in one
// transaction that otherwise reads what is there: created, or the current
// record decoded into cur with its revision. The revision is the one
// written, or the existing record's. It also returns etcd's cluster ID, for
// the cluster identity.
func (s *Store) createOrGet(ctx context.Context, what, key string, value, cur any) (created bool, rev int64, clusterID uint64, err error) {
	tctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(tctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, mustJSON(value))).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return false, 0, 0, s.etcdErr(what, err)
	}
	if resp.Succeeded {
		return true, resp.Header.Revision, resp.Header.ClusterId, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 { // deleted between compare and get: cannot happen in one txn
		return false, 0, 0, fmt.Errorf("%s: %w", what, ErrConflict)
	}
	if err := json.Unmarshal(kvs[0].Value, cur); err != nil {
		return false, 0, 0, fmt.Errorf("%s: %w", what, decodeErr(key, err))
	}
	return false, kvs[0].ModRevision, resp.Header.ClusterId, nil
}
