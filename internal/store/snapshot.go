package store

import (
	"context"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Snapshot is every record the leader and the API read, at one revision:
// a host seen alive, its claims and its fencing mark belong to the same
// moment, which separate reads cannot promise.
type Snapshot struct {
	Rev         int64
	Hosts       map[string]Versioned[Host] // live hosts: their keys are bound to their leases
	Volumes     map[string]Versioned[Volume]
	Claims      map[string]Versioned[Claim]
	Apps        map[string]Versioned[App]
	Fences      map[string]Versioned[Fence]
	Maintenance map[string]Versioned[Maintenance]
	Running     map[string]string // app → the host that runs it
	// Registered are the hosts' last registrations (HostState.Incarnation
	// is their Rev), dead hosts' too.
	Registered map[string]Versioned[Registration]
}

// Snapshot reads every family of Snapshot in one transaction of range
// reads (one round trip, one revision).
func (s *Store) Snapshot(ctx context.Context) (Snapshot, error) {
	families := []string{"hosts", "volumes", "claims", "apps", "fenced", "maintenance", "running", "registered"}
	ops := make([]clientv3.Op, len(families))
	for i, f := range families {
		ops[i] = clientv3.OpGet(s.dir(f), clientv3.WithPrefix())
	}
	tctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(tctx).Then(ops...).Commit()
	if err != nil {
		return Snapshot{}, s.etcdErr("read the cluster's records", err)
	}
	kvs := func(i int) []*mvccpb.KeyValue { return resp.Responses[i].GetResponseRange().Kvs }
	snap := Snapshot{Rev: resp.Header.Revision, Running: runningOf(kvs(6))}
	if snap.Hosts, err = decodeAll[Host](kvs(0)); err != nil {
		return Snapshot{}, err
	}
	if snap.Volumes, err = decodeAll[Volume](kvs(1)); err != nil {
		return Snapshot{}, err
	}
	if snap.Claims, err = decodeAll[Claim](kvs(2)); err != nil {
		return Snapshot{}, err
	}
	if snap.Apps, err = decodeAll[App](kvs(3)); err != nil {
		return Snapshot{}, err
	}
	if snap.Fences, err = decodeAll[Fence](kvs(4)); err != nil {
		return Snapshot{}, err
	}
	if snap.Maintenance, err = decodeAll[Maintenance](kvs(5)); err != nil {
		return Snapshot{}, err
	}
	if snap.Registered, err = decodeAll[Registration](kvs(7)); err != nil {
		return Snapshot{}, err
	}
	return snap, nil
}
