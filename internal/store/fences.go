package store

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Fence marks a host that a peer is fencing or has fenced. It is written
// before the fencing itself (an intent), only while the host has no lease,
// and stays until the host has cleaned up and registers again.
type Fence struct {
	Host   string    `json:"host"`
	By     string    `json:"by"`
	Method string    `json:"method"`
	Volume string    `json:"volume,omitempty"`
	At     time.Time `json:"at"`
}

// GetFence returns the fencing mark of host, if any (revision 0: none).
func (s *Store) GetFence(ctx context.Context, host string) (Fence, int64, error) {
	var f Fence
	rev, err := s.get(ctx, s.key("fenced", host), &f)
	return f, rev, err
}

// MarkFence records the intent to fence f.Host, before the fencing itself,
// in a transaction that requires f.Host to have no lease (ErrHostAlive
// otherwise) and every guard to hold (the leader's leadership). Since a
// host registers only while no mark names it (or in the one transaction
// that clears the mark it cleaned up after), a host marked here cannot
// register again before it has cleaned up.
//
// It returns the revision of the mark that now names the host: the one it
// wrote, or the one already there, which it leaves as it is. Several
// takers of one dead host (the leader, Mounts of its volumes at once) thus
// share one mark: each proves the host cut off itself, and each takeover
// requires that mark unchanged (FencedBy), which only the host's own
// clean-up and registration remove. Were each to write its own, every
// takeover would invalidate the others' proofs.
func (s *Store) MarkFence(ctx context.Context, f Fence, guards ...Guard) (int64, error) {
	key := s.key("fenced", f.Host)
	guards = append(guards, s.HostGone(f.Host))
	resp, err := s.guardedCommit(ctx, "mark host "+f.Host+" fenced", guards, nil, clientv3.OpTxn(
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
		[]clientv3.Op{clientv3.OpPut(key, mustJSON(f))},
		[]clientv3.Op{clientv3.OpGet(key)},
	))
	if err != nil {
		return 0, err
	}
	inner := resp.Responses[0].GetResponseTxn()
	if inner.Succeeded {
		return resp.Header.Revision, nil
	}
	kvs := inner.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 { // read in the same transaction that saw it: cannot happen
		return 0, fmt.Errorf("mark host %s fenced: %w", f.Host, ErrConflict)
	}
	return kvs[0].ModRevision, nil
}

// ListFences returns every fencing mark by host.
func (s *Store) ListFences(ctx context.Context) (map[string]Versioned[Fence], error) {
	return list[Fence](ctx, s, "fenced")
}
