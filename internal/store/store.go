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

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Errors the callers branch on.
var (
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("changed concurrently")
	ErrHostTaken = errors.New("host name registered by another live process")
)

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

// WithCallTimeout returns a copy of s whose etcd calls each give up after d
// instead of 5 s: for a caller that must tell an outage sooner (a test of
// one waits for every unanswered call).
func (s *Store) WithCallTimeout(d time.Duration) *Store {
	c := *s
	c.timeout = d
	return &c
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
		return 0, decodeErr(key, err)
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
	return decodeAll[T](resp.Kvs)
}

// decodeAll decodes a prefix read's records by name (the key's last
// element).
func decodeAll[T any](kvs []*mvccpb.KeyValue) (map[string]Versioned[T], error) {
	out := make(map[string]Versioned[T], len(kvs))
	for _, kv := range kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, decodeErr(string(kv.Key), err)
		}
		out[path.Base(string(kv.Key))] = Versioned[T]{Value: v, Rev: kv.ModRevision}
	}
	return out, nil
}

// decodeErr says that the record at key is not one relocvol can read:
// written by another program, or by a relocvol of another version.
func decodeErr(key string, err error) error {
	return fmt.Errorf("decode the record %s: %w (not a record this relocvol wrote: check that every host runs the same relocvol version; etcdctl get %s shows it)", key, err, key)
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
