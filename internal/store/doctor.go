package store

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Doctor is the family of `relocvol doctor`'s requests and reports, which
// Await watches while the asking host waits for every host's report.
const Doctor Family = "doctor"

// doctorTTL is how long a request and its reports stay in etcd: a doctor
// run is over well within it, and nothing needs cleaning up after it.
const doctorTTL = 60

// DoctorRequest asks every host for its checks.
type DoctorRequest struct {
	ID string    `json:"id"`
	By string    `json:"by"`
	At time.Time `json:"at"`
}

// putLeased writes v at key under a lease of its own that lasts doctorTTL
// seconds.
func (s *Store) putLeased(ctx context.Context, what, key string, v any) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	lease, err := s.cli.Grant(ctx, doctorTTL)
	if err != nil {
		return s.etcdErr(what, err)
	}
	if _, err := s.cli.Put(ctx, key, mustJSON(v), clientv3.WithLease(lease.ID)); err != nil {
		return s.etcdErr(what, err)
	}
	return nil
}

// RequestDoctor asks every host for its checks.
func (s *Store) RequestDoctor(ctx context.Context, r DoctorRequest) error {
	return s.putLeased(ctx, "ask the hosts for their checks", s.key("doctor/requests", r.ID), r)
}

// PutDoctorReport is host's answer to request id (any JSON value).
func (s *Store) PutDoctorReport(ctx context.Context, id, host string, report any) error {
	return s.putLeased(ctx, "record the checks of host "+host, s.key("doctor/reports/"+id, host), report)
}

// DoctorReports are the answers to request id so far, by host.
func (s *Store) DoctorReports(ctx context.Context, id string) (map[string]json.RawMessage, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.dir("doctor/reports/"+id), clientv3.WithPrefix())
	if err != nil {
		return nil, s.etcdErr("read the hosts' checks", err)
	}
	out := make(map[string]json.RawMessage, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out[path.Base(string(kv.Key))] = json.RawMessage(kv.Value)
	}
	return out, nil
}

// FollowDoctorRequests calls fn with each request made from now on, until
// ctx ends or the watch fails.
func (s *Store) FollowDoctorRequests(ctx context.Context, fn func(DoctorRequest)) error {
	wctx, stop := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer stop()
	for wr := range s.cli.Watch(wctx, s.dir("doctor/requests"), clientv3.WithPrefix()) {
		if err := wr.Err(); err != nil {
			return s.etcdErr("watch the doctor's requests", err)
		}
		for _, ev := range wr.Events {
			if ev.Type != clientv3.EventTypePut || ev.IsModify() {
				continue // expired, or not new
			}
			var r DoctorRequest
			if err := json.Unmarshal(ev.Kv.Value, &r); err != nil {
				return decodeErr(string(ev.Kv.Key), err)
			}
			fn(r)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("watch the doctor's requests: etcd closed the watch")
}
