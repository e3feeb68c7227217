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
	// ErrLeaseLost: this host's own key is gone or bound to another lease
	// (or this process has no lease yet), so it may not take or keep
	// claims until it has (re)joined.
	ErrLeaseLost = errors.New("this host's lease is not current")
	// ErrInMaintenance: a takeover's victim is in announced maintenance
	// (its plugin may be down while its containers run): nobody fences it
	// or takes its volumes before the maintenance ends.
	ErrInMaintenance = errors.New("host is in maintenance")
	// ErrMarkChanged: a takeover's victim no longer carries the fencing
	// mark the taker wrote before it proved the victim cut off (the victim
	// cleaned up and rejoined, or another host marked it since): what was
	// proven is no proof any more; the taker must fence again.
	ErrMarkChanged = errors.New("the host's fencing mark is not the one this fence proved")
)

// Guard is an extra condition of a write, checked in the same etcd
// transaction as the write itself: a decision taken on an earlier read
// cannot land once the condition is gone. A *Leadership is one (the writer
// must still be the leader), HostGone another (a takeover's victim must still
// be dead), FencedBy a third (the victim still carries the mark whose
// fencing the taker proved), HostLease a fourth (the writer's own liveness).
type Guard interface {
	cmps() []clientv3.Cmp
	// failed is the error a write gets when the i-th comparison of the
	// guard no longer holds.
	failed(i int) error
}

func (l *Leadership) cmps() []clientv3.Cmp { return []clientv3.Cmp{l.cmp()} }
func (l *Leadership) failed(int) error     { return ErrNotLeader }

// never is a comparison that holds for no key: the guard of a write that
// must not land at all (a lease or a mark revision of 0 proves nothing).
func never(key string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(key), "<", 0)
}

type hostGone struct{ key, host, maintenance string }

func (g hostGone) cmps() []clientv3.Cmp {
	return []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(g.key), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(g.maintenance), "=", 0),
	}
}

func (g hostGone) failed(i int) error {
	if i == 1 {
		return fmt.Errorf("%w: host %s", ErrInMaintenance, g.host)
	}
	return fmt.Errorf("%w: host %s has a lease again", ErrHostAlive, g.host)
}

type hostLease struct {
	key, host string
	lease     int64
}

func (g hostLease) cmps() []clientv3.Cmp {
	if g.lease == 0 {
		// No lease: an absent key would compare as lease 0 and match.
		return []clientv3.Cmp{never(g.key)}
	}
	return []clientv3.Cmp{clientv3.Compare(clientv3.LeaseValue(g.key), "=", g.lease)}
}

func (g hostLease) failed(int) error {
	if g.lease == 0 {
		return fmt.Errorf("%w: this process of host %s has no lease yet", ErrLeaseLost, g.host)
	}
	return fmt.Errorf("%w: the key of host %s is no longer bound to lease %x", ErrLeaseLost, g.host, g.lease)
}

type fencedBy struct {
	key, host string
	rev       int64
}

func (g fencedBy) cmps() []clientv3.Cmp {
	if g.rev <= 0 {
		return []clientv3.Cmp{never(g.key)}
	}
	return []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(g.key), "=", g.rev)}
}

func (g fencedBy) failed(int) error {
	return fmt.Errorf("%w: host %s (the mark written at revision %d is gone or replaced: it rejoined, or was marked again)", ErrMarkChanged, g.host, g.rev)
}

type windowAt struct {
	key, host string
	rev       int64
}

func (g windowAt) cmps() []clientv3.Cmp {
	return []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(g.key), "=", g.rev)}
}

func (g windowAt) failed(int) error {
	return fmt.Errorf("%w: the maintenance window of host %s changed or ended", ErrConflict, g.host)
}

// WindowAt guards a write decided on host's maintenance window as read at
// rev (0: none): it must still be that window when the write lands.
func (s *Store) WindowAt(host string, rev int64) Guard {
	return windowAt{key: s.key("maintenance", host), host: host, rev: rev}
}

// HostGone guards a takeover: host's key must be absent (its lease expired
// or revoked) when the write lands, not only when the taker looked, and
// the host must not be in maintenance (ErrInMaintenance).
func (s *Store) HostGone(host string) Guard {
	return hostGone{key: s.key("hosts", host), host: host, maintenance: s.key("maintenance", host)}
}

// FencedBy guards a release or takeover of host's claims (or of its
// unfinished create): host's fencing mark must still be the one written at
// markRev, the mark this taker wrote before its method proved host cut off
// (fencing.Host returns it). A host's key being absent is not enough: a
// host that registered again before the mark, then lost its new lease,
// was neither marked nor cut off. ErrMarkChanged otherwise.
func (s *Store) FencedBy(host string, markRev int64) Guard {
	return fencedBy{key: s.key("fenced", host), host: host, rev: markRev}
}

// HostLease guards a host's own claim writes: its key must still be bound
// to lease, the one this process renews. Lease 0 (a process that has not
// registered yet) never holds.
func (s *Store) HostLease(host string, lease int64) Guard {
	return hostLease{key: s.key("hosts", host), host: host, lease: lease}
}

// guardedTxn is every compare-and-swap of the store: ops run only if cmps
// and every guard hold, in one transaction. A failed comparison is
// ErrConflict; a guard that no longer holds gives its own error
// (ErrNotLeader, ErrHostAlive, ErrLeaseLost). It returns the revision
// written.
func (s *Store) guardedTxn(ctx context.Context, what string, guards []Guard, cmps []clientv3.Cmp, ops ...clientv3.Op) (int64, error) {
	resp, err := s.guardedCommit(ctx, what, guards, cmps, ops...)
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// guardedCommit is guardedTxn returning etcd's answer, for callers that
// read what their ops returned (a nested transaction's result).
func (s *Store) guardedCommit(ctx context.Context, what string, guards []Guard, cmps []clientv3.Cmp, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	for _, g := range guards {
		cmps = append(cmps, g.cmps()...)
	}
	tctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(tctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return nil, s.etcdErr(what, err)
	}
	if resp.Succeeded {
		return resp, nil
	}
	for _, g := range guards {
		for i, c := range g.cmps() {
			gctx, gcancel := s.ctx(ctx)
			r, err := s.cli.Txn(gctx).If(c).Commit()
			gcancel()
			if err == nil && !r.Succeeded {
				return nil, fmt.Errorf("%s: %w", what, g.failed(i))
			}
		}
	}
	return nil, fmt.Errorf("%s: %w", what, ErrConflict)
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
