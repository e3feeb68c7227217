package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Event is one step of a relocation's timeline.
type Event struct {
	At         time.Time `json:"at"`
	Relocation string    `json:"relocation"`
	Kind       string    `json:"kind"`
	App        string    `json:"app"`
	Phase      string    `json:"phase"`
	Host       string    `json:"host"` // where the step ran
	From       string    `json:"from,omitempty"`
	To         string    `json:"to,omitempty"`
	// TookMS is how long the step itself took; SinceStartMS how long after
	// the relocation began it ended.
	TookMS       int64  `json:"tookMs"`
	SinceStartMS int64  `json:"sinceStartMs"`
	Detail       string `json:"detail,omitempty"`
	Error        string `json:"error,omitempty"`
}

// AddEvent appends e to the timeline. Keys sort by time, then by host.
func (s *Store) AddEvent(ctx context.Context, e Event) error {
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	key := s.key("events", fmt.Sprintf("%020d-%s-%s", e.At.UnixNano(), e.Host, e.Phase))
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if _, err := s.cli.Put(ctx, key, mustJSON(e)); err != nil {
		return s.etcdErr("record event", err)
	}
	return nil
}

// ListEvents returns the newest limit events, oldest first.
func (s *Store) ListEvents(ctx context.Context, limit int64) ([]Event, error) {
	events, _, err := s.listEvents(ctx, limit)
	return events, err
}

// listEvents returns the newest limit events, oldest first, and the
// revision they were read at.
func (s *Store) listEvents(ctx context.Context, limit int64) ([]Event, int64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.dir("events"), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(limit))
	if err != nil {
		return nil, 0, s.etcdErr("list events", err)
	}
	out := make([]Event, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		if err := json.Unmarshal(kv.Value, &out[len(out)-1-i]); err != nil {
			return nil, 0, decodeErr(string(kv.Key), err)
		}
	}
	return out, resp.Header.Revision, nil
}

// PruneEvents deletes all but the newest keep events.
func (s *Store) PruneEvents(ctx context.Context, keep int64) (int64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.dir("events"), clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(keep+1))
	if err != nil {
		return 0, s.etcdErr("list events", err)
	}
	if int64(len(resp.Kvs)) <= keep {
		return 0, nil
	}
	// Everything up to and including the (keep+1)-th newest key goes.
	last := string(resp.Kvs[keep].Key)
	del, err := s.cli.Delete(ctx, s.dir("events"), clientv3.WithRange(last+"\x00"))
	if err != nil {
		return 0, s.etcdErr("prune events", err)
	}
	return del.Deleted, nil
}

// FollowEvents calls listed with the newest limit events, oldest first,
// then fn with each event written after them, as it is written: the list
// and the watch are one Get, then a Watch from that read's revision, so
// that nothing written in between is missed or sent twice. It returns when
// ctx ends (nil) or listed or fn returns an error (that error); a watch
// that etcd ends (compacted past, or cancelled) is an error.
func (s *Store) FollowEvents(ctx context.Context, limit int64, listed func([]Event) error, fn func(Event) error) error {
	past, rev, err := s.listEvents(ctx, limit)
	if err != nil {
		return err
	}
	if err := listed(past); err != nil {
		return err
	}
	wctx, stop := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer stop()
	for wr := range s.cli.Watch(wctx, s.dir("events"), clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if err := wr.Err(); err != nil {
			return s.etcdErr("watch events", err)
		}
		for _, ev := range wr.Events {
			if ev.Type != clientv3.EventTypePut {
				continue // pruned
			}
			var e Event
			if err := json.Unmarshal(ev.Kv.Value, &e); err != nil {
				return decodeErr(string(ev.Kv.Key), err)
			}
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("watch events: etcd closed the watch")
}
