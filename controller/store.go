package controller

import (
	"context"
	"encoding/json"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/liveness"
	"github.com/relocvol/relocvol/internal/store"
)

// The parts of the controller each name the store's methods they use, so
// that what each depends on is visible and a test can stand in for it.
// *store.Store implements them all (Store); heartbeat.Heartbeat implements
// Liveness.

// AgentStore is what the agent reads and writes: apps placed here, who
// runs them, the claims it waits on.
type AgentStore interface {
	GetApp(ctx context.Context, name string) (store.App, int64, error)
	ListApps(ctx context.Context) (map[string]store.Versioned[store.App], error)
	PutApp(ctx context.Context, a store.App, rev int64, guards ...store.Guard) (int64, error)
	DeleteApp(ctx context.Context, name string, rev int64, guards ...store.Guard) error
	WatchApps(ctx context.Context) clientv3.WatchChan
	ListRunning(ctx context.Context) (map[string]string, error)
	SetRunning(ctx context.Context, app, host string, lease clientv3.LeaseID) error
	ClearRunning(ctx context.Context, app, host string) error
	GetClaim(ctx context.Context, name string) (store.Claim, int64, error)
	ListVolumes(ctx context.Context) (map[string]store.Versioned[store.Volume], error)
	HostState(ctx context.Context, host string) (store.HostState, error)
	Await(ctx context.Context, families []store.Family, recheck time.Duration, check func(context.Context) (bool, error)) error
}

// LeaderStore is what the leader reads and writes: the cluster at one
// revision, and the apps and claims of dead hosts, under its leadership.
type LeaderStore interface {
	fencing.Marker // the fencing intent, before each fence
	Campaign(ctx context.Context, host string, ttl int) (*store.Leadership, error)
	Snapshot(ctx context.Context) (store.Snapshot, error)
	// WatchHosts wakes the leader when a host's lease is gone.
	WatchHosts(ctx context.Context) clientv3.WatchChan
	GetApp(ctx context.Context, name string) (store.App, int64, error)
	PutApp(ctx context.Context, a store.App, rev int64, guards ...store.Guard) (int64, error)
	GetClaim(ctx context.Context, name string) (store.Claim, int64, error)
	// ReleaseClaim needs the revision of the mark this leader proved.
	ReleaseClaim(ctx context.Context, c store.Claim, rev, markRev int64, guards ...store.Guard) error
	PruneEvents(ctx context.Context, keep int64) (int64, error)
}

// EventStore is where the recorder writes the timeline.
type EventStore interface {
	AddEvent(ctx context.Context, e store.Event) error
}

// ViewStore is what the API's views, planned moves and maintenance read
// and write.
type ViewStore interface {
	Snapshot(ctx context.Context) (store.Snapshot, error)
	Leader(ctx context.Context) (string, error)
	HostState(ctx context.Context, host string) (store.HostState, error)
	ListHosts(ctx context.Context) (map[string]store.Versioned[store.Host], error)
	GetApp(ctx context.Context, name string) (store.App, int64, error)
	PutApp(ctx context.Context, a store.App, rev int64, guards ...store.Guard) (int64, error)
	GetFence(ctx context.Context, host string) (store.Fence, int64, error)
	ListEvents(ctx context.Context, limit int64) ([]store.Event, error)
	FollowEvents(ctx context.Context, limit int64, listed func([]store.Event) error, fn func(store.Event) error) error
	SetMaintenance(ctx context.Context, host string, d time.Duration, by, reason string, guards ...store.Guard) (store.Maintenance, error)
	GetMaintenance(ctx context.Context, host string) (store.Maintenance, int64, error)
	HostLease(host string, lease int64) store.Guard
	WindowAt(host string, rev int64) store.Guard
	EndMaintenance(ctx context.Context, host, by string) (bool, error)
}

// DoctorStore is what the doctor needs: requests to every host, their
// reports, and a wait for them.
type DoctorStore interface {
	RequestDoctor(ctx context.Context, r store.DoctorRequest) error
	PutDoctorReport(ctx context.Context, id, host string, report any) error
	DoctorReports(ctx context.Context, id string) (map[string]json.RawMessage, error)
	FollowDoctorRequests(ctx context.Context, fn func(store.DoctorRequest)) error
	ListHosts(ctx context.Context) (map[string]store.Versioned[store.Host], error)
	Await(ctx context.Context, families []store.Family, recheck time.Duration, check func(context.Context) (bool, error)) error
}

// Store is every part's store together: what New needs.
type Store interface {
	AgentStore
	LeaderStore
	EventStore
	ViewStore
	DoctorStore
}

var _ Store = (*store.Store)(nil)

// Liveness is what the controller asks of this host's heartbeat
// (heartbeat.Heartbeat): whether it may act, its lease and its timings.
type Liveness interface {
	Alive() bool
	Joined() (joined bool, sinceRenewal time.Duration)
	Lease() clientv3.LeaseID
	TTL() time.Duration
	Timings() liveness.Timings
	MaxRenewalGap() time.Duration
}
