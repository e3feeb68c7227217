package store

import (
	"context"
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

// MarkFence writes f.Host's fencing mark as the intent to fence it, before
// the fencing itself, in a transaction that requires f.Host to have no
// lease (ErrHostAlive otherwise) and every guard to hold (the leader's
// leadership). Since a host registers only while no mark names it, a host
// marked here cannot register again before it has cleaned up.
func (s *Store) MarkFence(ctx context.Context, f Fence, guards ...Guard) (int64, error) {
	guards = append(guards, s.HostGone(f.Host))
	return s.guardedTxn(ctx, "mark host "+f.Host+" fenced", guards, nil, clientv3.OpPut(s.key("fenced", f.Host), mustJSON(f)))
}

// ListFences returns every fencing mark by host.
func (s *Store) ListFences(ctx context.Context) (map[string]Versioned[Fence], error) {
	return list[Fence](ctx, s, "fenced")
}
