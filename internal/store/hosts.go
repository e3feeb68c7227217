package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrFenced: a fencing mark names the host, so it may not register (it must
// clean up first, then register in the same transaction that clears the
// mark it cleaned up after).
var ErrFenced = errors.New("host was fenced")

// Host is a live host's record, kept under its lease.
type Host struct {
	Name    string    `json:"name"`
	Started time.Time `json:"started"`
	Lease   int64     `json:"lease"`
	PID     int       `json:"pid"`
	Version string    `json:"version,omitempty"`
	// Agent: the host runs an agent (a Docker engine the controller starts
	// relocated apps with); the leader places apps only on such hosts.
	Agent bool `json:"agent,omitempty"`
}

// Registration is the trace each registration of a host leaves, outlasting
// its lease: its revision is the host's incarnation. A peer that saw the
// host dead tells by it whether the host registered (and perhaps died)
// again since, which its own sightings cannot: it may not have looked
// meanwhile.
type Registration struct {
	Host  string    `json:"host"`
	Lease int64     `json:"lease"`
	At    time.Time `json:"at"`
}

// HostState is what a peer knows of a host's liveness.
type HostState struct {
	Alive bool
	// LastRenewed is how long ago the lease was last renewed (alive hosts;
	// whole seconds, as etcd reports the time left).
	LastRenewed time.Duration
	// ExpiresIn is how long the lease lasts if the host renews it no more
	// (alive hosts; whole seconds rounded down, as etcd reports it;
	// negative when etcd did not say).
	ExpiresIn time.Duration
	Info      Host
	// Maintenance, for a host that is not alive: its announced
	// maintenance, during which nobody takes it over (nil: none), read at
	// MaintenanceRev.
	Maintenance    *Maintenance
	MaintenanceRev int64
	// Incarnation is the revision of the host's last registration (0: none
	// recorded, a host registered by an older relocvol): it changes each
	// time the host registers.
	Incarnation int64
}

// LeaseExpired tells from etcd's TimeToLive answer whether a lease is gone.
// etcd rounds the time left down to whole seconds, so TTL 0 means up to a
// second is left and the lease still holds its keys: only -1 ("lease not
// found") is expired.
func LeaseExpired(ttl int64) bool { return ttl < 0 }

// HostState tells whether host has a live lease and when it was last
// renewed, its maintenance and its incarnation, read at one revision.
func (s *Store) HostState(ctx context.Context, host string) (HostState, error) {
	st := HostState{Info: Host{Name: host}}
	keys := []string{s.key("hosts", host), s.key("maintenance", host), s.key("registered", host)}
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpGet(k)
	}
	tctx, cancel := s.ctx(ctx)
	resp, err := s.cli.Txn(tctx).Then(ops...).Commit()
	cancel()
	if err != nil {
		return st, s.etcdErr("read the state of host "+host, err)
	}
	kv := func(i int) *mvccpb.KeyValue {
		if kvs := resp.Responses[i].GetResponseRange().Kvs; len(kvs) > 0 {
			return kvs[0]
		}
		return nil
	}
	if r := kv(2); r != nil {
		st.Incarnation = r.ModRevision
	}
	h := kv(0)
	if h == nil {
		if m := kv(1); m != nil {
			st.Maintenance, st.MaintenanceRev = &Maintenance{}, m.ModRevision
			if err := json.Unmarshal(m.Value, st.Maintenance); err != nil {
				return st, decodeErr(keys[1], err)
			}
		}
		return st, nil
	}
	if err := json.Unmarshal(h.Value, &st.Info); err != nil {
		return HostState{Info: Host{Name: host}}, decodeErr(keys[0], err)
	}
	st.Alive = true
	tctx, cancel = s.ctx(ctx)
	defer cancel()
	ttl, err := s.cli.TimeToLive(tctx, clientv3.LeaseID(st.Info.Lease))
	switch {
	case err != nil:
		// The key was there a moment ago: alive, renewal time unknown.
		st.ExpiresIn = -1
	case LeaseExpired(ttl.TTL):
		st.Alive = false // expired between the two reads
	default:
		st.LastRenewed = time.Duration(ttl.GrantedTTL-ttl.TTL) * time.Second
		st.ExpiresIn = time.Duration(ttl.TTL) * time.Second
	}
	return st, nil
}

// StillRegistered tells, from one read of etcd now, whether host's key is
// bound to lease and no fencing mark names it. A peer marks a host before
// it fences it, and only while the host's key is gone, so while this holds
// no peer can have preempted the host since it registered under lease.
func (s *Store) StillRegistered(ctx context.Context, host string, lease int64) (bool, error) {
	if lease == 0 {
		return false, nil
	}
	tctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(tctx).If(
		clientv3.Compare(clientv3.LeaseValue(s.key("hosts", host)), "=", lease),
		clientv3.Compare(clientv3.CreateRevision(s.key("fenced", host)), "=", 0),
	).Commit()
	if err != nil {
		return false, s.etcdErr("check the registration of host "+host, err)
	}
	return resp.Succeeded, nil
}

// ListHosts returns the hosts with a live lease.
func (s *Store) ListHosts(ctx context.Context) (map[string]Versioned[Host], error) {
	return list[Host](ctx, s, "hosts")
}

// RegisterHost binds the host key to h.Lease, in one transaction that also
// requires that no fencing mark names the host, or only the mark at markRev
// (which the host cleaned up after, and which the same transaction deletes):
// a host fenced after it looked never registers. If the key is held under
// prevLease (this host's previous incarnation, not expired yet) it is moved
// to the new lease in the same transaction, so that peers never see the
// host dead meanwhile; prevLease is then revoked. Any other holder is
// ErrHostTaken; a mark other than markRev is ErrFenced.
func (s *Store) RegisterHost(ctx context.Context, h Host, prevLease, markRev int64) error {
	key, mark := s.key("hosts", h.Name), s.key("fenced", h.Name)
	markCmp := clientv3.Compare(clientv3.CreateRevision(mark), "=", 0)
	ops := []clientv3.Op{
		clientv3.OpPut(key, mustJSON(h), clientv3.WithLease(clientv3.LeaseID(h.Lease))),
		// A new incarnation, unleased: peers that saw the host dead
		// before learn that it came back since (HostState.Incarnation).
		clientv3.OpPut(s.key("registered", h.Name), mustJSON(Registration{Host: h.Name, Lease: h.Lease, At: time.Now().UTC()})),
	}
	if markRev != 0 {
		markCmp = clientv3.Compare(clientv3.ModRevision(mark), "=", markRev)
		ops = append(ops, clientv3.OpDelete(mark))
	}
	replace := false // the key was last seen held by prevLease
	for attempt := 0; attempt < 3; attempt++ {
		keyCmp := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		if replace {
			keyCmp = clientv3.Compare(clientv3.LeaseValue(key), "=", prevLease)
		}
		tctx, cancel := s.ctx(ctx)
		resp, err := s.cli.Txn(tctx).If(keyCmp, markCmp).Then(ops...).
			Else(clientv3.OpGet(key), clientv3.OpGet(mark)).Commit()
		cancel()
		if err != nil {
			return s.etcdErr("register "+key, err)
		}
		if resp.Succeeded {
			if replace {
				s.revokeQuietly(ctx, prevLease)
			}
			return nil
		}
		if f := resp.Responses[1].GetResponseRange().Kvs; len(f) > 0 && f[0].ModRevision != markRev {
			var cur Fence
			_ = json.Unmarshal(f[0].Value, &cur)
			return fmt.Errorf("%w by host %s at %s: this host must clean up before it registers again",
				ErrFenced, cur.By, cur.At.Format(time.RFC3339))
		}
		if markRev != 0 && len(resp.Responses[1].GetResponseRange().Kvs) == 0 {
			return fmt.Errorf("register %s: the fencing mark this host cleaned up after is gone: %w", key, ErrConflict)
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			replace = false // the key expired meanwhile: register afresh
			continue
		}
		if held := kvs[0].Lease; held == 0 || held != prevLease {
			var cur Host
			_ = json.Unmarshal(kvs[0].Value, &cur)
			return fmt.Errorf("%w: %s is held by pid %d started %s (lease %x); give this host another name or stop the other one",
				ErrHostTaken, key, cur.PID, cur.Started.Format(time.RFC3339), held)
		}
		replace = true
	}
	return fmt.Errorf("register %s: %w", key, ErrConflict)
}

func (s *Store) revokeQuietly(ctx context.Context, lease int64) {
	tctx, cancel := s.ctx(context.WithoutCancel(ctx))
	defer cancel()
	// Its keys are elsewhere now; a failure leaves it to expire by itself.
	_, _ = s.cli.Revoke(tctx, clientv3.LeaseID(lease))
}
