// Package store keeps relocvol's shared state in etcd: volume records,
// claims (which host has a volume active, with which mount IDs, under which
// fencing epoch), host liveness keys bound to leases, and fencing marks.
//
// Every change that others may race with is a transaction that compares the
// ModRevision the caller read, so two hosts can never both believe they won;
// a lost race is ErrConflict and the caller re-reads. Claims are deliberately
// not bound to their owner's lease: a dead owner's claim must stay until a
// peer has fenced that owner and taken the claim over.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Errors the callers branch on.
var (
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("changed concurrently")
	ErrHostTaken = errors.New("host name registered by another live process")
)

// Volume states.
const (
	StateCreating = "creating"
	StateReady    = "ready"
	StateRemoving = "removing"
)

// Volume is the cluster-wide record of a Docker volume.
type Volume struct {
	Name      string    `json:"name"`
	Backend   string    `json:"backend"`
	Size      int64     `json:"size"`
	FS        string    `json:"fs"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy"`
}

// Claim says which host has a volume active. Host is empty when released;
// the record (and its epoch) outlives releases so the epoch only grows.
type Claim struct {
	Volume string               `json:"volume"`
	Host   string               `json:"host,omitempty"`
	Epoch  int64                `json:"epoch"`
	Mounts map[string]time.Time `json:"mounts,omitempty"` // mount ID -> since
	// Counts says how many times Docker mounted an ID it mounted more than
	// once (docker cp into a running container mounts the container's ID
	// again, and unmounts it as often); an ID not in it counts once.
	Counts map[string]int `json:"counts,omitempty"`
	Since  time.Time      `json:"since,omitempty"`
	// TakenFrom names the dead host this claim was taken from by fencing.
	TakenFrom string `json:"takenFrom,omitempty"`
}

// Held reports whether some host holds the claim.
func (c Claim) Held() bool { return c.Host != "" }

// Released is c given up: no holder, no mounts. The epoch stays, so the
// next holder's is higher; takenFrom names a holder that was fenced ("" when
// the holder released the claim itself).
func (c Claim) Released(takenFrom string) Claim {
	c.Host, c.Mounts, c.Counts, c.Since, c.TakenFrom = "", nil, nil, time.Time{}, takenFrom
	return c
}

// Refs is how many mounts of id the claim holds (0: none).
func (c Claim) Refs(id string) int {
	if _, ok := c.Mounts[id]; !ok {
		return 0
	}
	return max(c.Counts[id], 1)
}

// Store is relocvol's etcd state. It is safe for concurrent use.
type Store struct {
	cli     *clientv3.Client
	prefix  string
	timeout time.Duration
}

// New returns a store under prefix (e.g. "/relocvol"). Each etcd call gets
// its own timeout, bounded by the caller's context.
func New(cli *clientv3.Client, prefix string) *Store {
	return &Store{cli: cli, prefix: prefix, timeout: 5 * time.Second}
}

// Client returns the etcd client.
func (s *Store) Client() *clientv3.Client { return s.cli }

func (s *Store) key(kind, name string) string { return path.Join(s.prefix, kind, name) }
func (s *Store) dir(kind string) string       { return path.Join(s.prefix, kind) + "/" }

func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// get reads one JSON record; rev is its ModRevision, 0 when absent.
func (s *Store) get(ctx context.Context, key string, v any) (rev int64, err error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return 0, s.etcdErr("get "+key, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, v); err != nil {
		return 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return resp.Kvs[0].ModRevision, nil
}

func list[T any](ctx context.Context, s *Store, kind string) (map[string]Versioned[T], error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.dir(kind), clientv3.WithPrefix())
	if err != nil {
		return nil, s.etcdErr("list "+s.dir(kind), err)
	}
	out := make(map[string]Versioned[T], len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out[path.Base(string(kv.Key))] = Versioned[T]{Value: v, Rev: kv.ModRevision}
	}
	return out, nil
}

// Versioned is a record with the ModRevision it was read at.
type Versioned[T any] struct {
	Value T
	Rev   int64
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs are encoded
	}
	return string(b)
}

// GetVolume returns the volume record and its revision, or ErrNotFound.
func (s *Store) GetVolume(ctx context.Context, name string) (Volume, int64, error) {
	var v Volume
	rev, err := s.get(ctx, s.key("volumes", name), &v)
	if err == nil && rev == 0 {
		err = ErrNotFound
	}
	return v, rev, err
}

// ListVolumes returns every volume record by name.
func (s *Store) ListVolumes(ctx context.Context) (map[string]Versioned[Volume], error) {
	return list[Volume](ctx, s, "volumes")
}

// CreateVolume writes v if no record of that name exists. Otherwise it
// returns created=false with the existing record.
func (s *Store) CreateVolume(ctx context.Context, v Volume) (created bool, cur Volume, rev int64, err error) {
	key := s.key("volumes", v.Name)
	tctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(tctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, mustJSON(v))).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return false, Volume{}, 0, s.etcdErr("create "+key, err)
	}
	if resp.Succeeded {
		return true, v, resp.Header.Revision, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 { // deleted between compare and get: cannot happen in one txn
		return false, Volume{}, 0, fmt.Errorf("create %s: %w", key, ErrConflict)
	}
	if err := json.Unmarshal(kvs[0].Value, &cur); err != nil {
		return false, Volume{}, 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return false, cur, kvs[0].ModRevision, nil
}

// UpdateVolume replaces the record read at rev. With claimRev >= 0 it also
// requires the claim to be unchanged, so that a volume is never marked for
// removal while some host is taking its claim.
func (s *Store) UpdateVolume(ctx context.Context, v Volume, rev, claimRev int64) (int64, error) {
	key := s.key("volumes", v.Name)
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}
	if claimRev >= 0 {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.key("claims", v.Name)), "=", claimRev))
	}
	return s.guardedTxn(ctx, "update "+key, nil, cmps, clientv3.OpPut(key, mustJSON(v)))
}

// DeleteVolume removes the volume record read at rev and its claim.
func (s *Store) DeleteVolume(ctx context.Context, name string, rev int64) error {
	key := s.key("volumes", name)
	_, err := s.guardedTxn(ctx, "delete "+key, nil,
		[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)},
		clientv3.OpDelete(key), clientv3.OpDelete(s.key("claims", name)))
	return err
}

// GetClaim returns a volume's claim and its revision; an absent claim is the
// zero Claim at revision 0.
func (s *Store) GetClaim(ctx context.Context, name string) (Claim, int64, error) {
	c := Claim{Volume: name}
	rev, err := s.get(ctx, s.key("claims", name), &c)
	return c, rev, err
}

// ListClaims returns every claim by volume name.
func (s *Store) ListClaims(ctx context.Context) (map[string]Versioned[Claim], error) {
	return list[Claim](ctx, s, "claims")
}

// PutClaim writes c if the claim is still at claimRev (0: absent) and the
// volume record still at volRev, so a claim is never taken on a volume that
// is being removed or was re-created, and if every guard still holds: a
// host writes its own claims under HostLease, a takeover under HostGone of
// the previous holder.
func (s *Store) PutClaim(ctx context.Context, c Claim, claimRev, volRev int64, guards ...Guard) (int64, error) {
	key := s.key("claims", c.Volume)
	return s.guardedTxn(ctx, "claim volume "+c.Volume, guards, []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(key), "=", claimRev),
		clientv3.Compare(clientv3.ModRevision(s.key("volumes", c.Volume)), "=", volRev),
	}, clientv3.OpPut(key, mustJSON(c)))
}
