package store

import (
	"context"
	"encoding/json"
	"math"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// VGOp is a change of the shared VG that every live host must take part
// in before it lands: for "extend", each host finds the new PVs (by UUID,
// after pvscan --cache) and registers its key on them, and acknowledges
// (AckVGOp); the asking host adds them to the VG only once every live host
// has. The record and its acknowledgements live under a lease of the op's
// deadline, so a host that dies half way leaves nothing behind.
type VGOp struct {
	ID  string    `json:"id"`
	VG  string    `json:"vg"`
	Op  string    `json:"op"`
	PVs []string  `json:"pvs"` // PV UUIDs
	By  string    `json:"by"`
	At  time.Time `json:"at"`
	// Lease is the lease the op and its acknowledgements are bound to.
	Lease int64 `json:"lease"`
}

// VGOpExtend is VGOp.Op of a vgextend.
const VGOpExtend = "extend"

// VGAck is a host's answer to a VGOp: done (Error empty) or why not.
type VGAck struct {
	Host  string    `json:"host"`
	Error string    `json:"error,omitempty"`
	At    time.Time `json:"at"`
}

// StartVGOp records op for every host to act on, for at most ttl.
func (s *Store) StartVGOp(ctx context.Context, op VGOp, ttl time.Duration) (VGOp, error) {
	tctx, cancel := s.ctx(ctx)
	defer cancel()
	grant, err := s.cli.Grant(tctx, int64(math.Ceil(ttl.Seconds())))
	if err != nil {
		return VGOp{}, s.etcdErr("grant the lease of VG change "+op.ID, err)
	}
	op.Lease = int64(grant.ID)
	op.At = time.Now().UTC()
	if _, err := s.cli.Put(tctx, s.key("vgops", op.ID), mustJSON(op), clientv3.WithLease(grant.ID)); err != nil {
		s.revokeQuietly(ctx, op.Lease)
		return VGOp{}, s.etcdErr("record VG change "+op.ID, err)
	}
	return op, nil
}

// EndVGOp removes op and its acknowledgements.
func (s *Store) EndVGOp(ctx context.Context, op VGOp) {
	s.revokeQuietly(ctx, op.Lease)
}

// VGOps lists the VG changes under way, oldest first.
func (s *Store) VGOps(ctx context.Context) ([]VGOp, error) {
	m, err := list[VGOp](ctx, s, "vgops")
	if err != nil {
		return nil, err
	}
	ops := make([]VGOp, 0, len(m))
	for _, v := range m {
		ops = append(ops, v.Value)
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].At.Before(ops[j].At) })
	return ops, nil
}

// AckVGOp records host's answer to op, under op's lease (an op already
// over takes no answer: etcd refuses the expired lease).
func (s *Store) AckVGOp(ctx context.Context, op VGOp, host, errMsg string) error {
	tctx, cancel := s.ctx(ctx)
	defer cancel()
	a := VGAck{Host: host, Error: errMsg, At: time.Now().UTC()}
	if _, err := s.cli.Put(tctx, s.key("vgacks", op.ID+"/"+host), mustJSON(a), clientv3.WithLease(clientv3.LeaseID(op.Lease))); err != nil {
		return s.etcdErr("answer VG change "+op.ID, err)
	}
	return nil
}

// VGOpAcks returns the answers to op id, by host.
func (s *Store) VGOpAcks(ctx context.Context, id string) (map[string]VGAck, error) {
	tctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(tctx, s.key("vgacks", id)+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, s.etcdErr("read the answers to VG change "+id, err)
	}
	out := map[string]VGAck{}
	for _, kv := range resp.Kvs {
		var a VGAck
		if err := json.Unmarshal(kv.Value, &a); err != nil {
			return nil, decodeErr(string(kv.Key), err)
		}
		out[a.Host] = a
	}
	return out, nil
}

// WatchVGOps sends on the channel returned each time a VG change is
// recorded or ends, until ctx ends (coalesced: a send that would block is
// dropped, the reader lists them all anyway).
func (s *Store) WatchVGOps(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	wch := s.cli.Watch(clientv3.WithRequireLeader(ctx), s.dir("vgops"), clientv3.WithPrefix())
	go func() {
		defer close(out)
		for resp := range wch {
			if resp.Err() != nil {
				return
			}
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out
}
