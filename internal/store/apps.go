package store

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// App is a relocatable container: what it takes to recreate it on another
// host, and where it should run. Its name is the container's name.
type App struct {
	Name string `json:"name"`
	// Host is the desired placement: that host's agent runs the container,
	// every other host's agent removes its copy.
	Host    string   `json:"host"`
	Volumes []string `json:"volumes"`
	// Allowed are the hosts the app may run on (label relocvol.hosts).
	Allowed []string `json:"allowed,omitempty"`
	// Stopped: the user stopped the container; a relocation recreates it
	// but does not start it.
	Stopped bool    `json:"stopped,omitempty"`
	Spec    AppSpec `json:"spec"`
	// Relocation is set while the app is on its way to Host; the target
	// clears it once the container runs there.
	Relocation *Relocation `json:"relocation,omitempty"`
	UpdatedAt  time.Time   `json:"updatedAt"`
}

// Relocation kinds.
const (
	KindFailover = "failover"
	KindMove     = "move"
)

// Relocation is one move of an app from a host to another.
type Relocation struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	From    string    `json:"from"`
	To      string    `json:"to"`
	Started time.Time `json:"started"`
}

// AppSpec is a container's definition without anything bound to the host
// it ran on (ID, hostname, addresses, devices).
type AppSpec struct {
	Image         string            `json:"image"`
	Entrypoint    []string          `json:"entrypoint,omitempty"`
	Cmd           []string          `json:"cmd,omitempty"`
	Env           []string          `json:"env,omitempty"`
	WorkingDir    string            `json:"workingDir,omitempty"`
	User          string            `json:"user,omitempty"`
	Hostname      string            `json:"hostname,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Tty           bool              `json:"tty,omitempty"`
	OpenStdin     bool              `json:"openStdin,omitempty"`
	StopSignal    string            `json:"stopSignal,omitempty"`
	StopTimeout   *int              `json:"stopTimeout,omitempty"`
	Mounts        []AppMount        `json:"mounts,omitempty"`
	Ports         []AppPort         `json:"ports,omitempty"`
	RestartPolicy string            `json:"restartPolicy,omitempty"`
	MaxRetries    int               `json:"maxRetries,omitempty"`
	// Network is a user-defined network's name ("" is the default bridge).
	Network string `json:"network,omitempty"`
}

// AppMount is one mount of an app.
type AppMount struct {
	Type     string `json:"type"` // volume, bind or tmpfs
	Source   string `json:"source,omitempty"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
	Driver   string `json:"driver,omitempty"` // volumes
}

// AppPort is a published port.
type AppPort struct {
	Port     string `json:"port"` // e.g. 5432/tcp
	HostIP   string `json:"hostIP,omitempty"`
	HostPort string `json:"hostPort,omitempty"`
}

// GetApp returns an app and its revision, or ErrNotFound.
func (s *Store) GetApp(ctx context.Context, name string) (App, int64, error) {
	var a App
	rev, err := s.get(ctx, s.key("apps", name), &a)
	if err == nil && rev == 0 {
		err = fmt.Errorf("app %q: %w", name, ErrNotFound)
	}
	return a, rev, err
}

// ListApps returns every app by name.
func (s *Store) ListApps(ctx context.Context) (map[string]Versioned[App], error) {
	return list[App](ctx, s, "apps")
}

// PutApp writes a if the record is still at rev (0: absent).
func (s *Store) PutApp(ctx context.Context, a App, rev int64, guards ...Guard) (int64, error) {
	key := s.key("apps", a.Name)
	a.UpdatedAt = time.Now().UTC()
	return s.guardedTxn(ctx, "write "+key, guards,
		[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}, clientv3.OpPut(key, mustJSON(a)))
}

// DeleteApp removes the app read at rev.
func (s *Store) DeleteApp(ctx context.Context, name string, rev int64, guards ...Guard) error {
	key := s.key("apps", name)
	_, err := s.guardedTxn(ctx, "delete "+key, guards,
		[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}, clientv3.OpDelete(key))
	return err
}

// ReleaseClaim gives up the claim read at rev on behalf of its fenced
// holder; the epoch stays, so the next holder's is higher, and TakenFrom
// names the fenced holder until the next holder releases it in turn. The
// holder's host key must still be absent when the release lands
// (ErrHostAlive otherwise): a holder that rejoined keeps its claim.
func (s *Store) ReleaseClaim(ctx context.Context, c Claim, rev int64, guards ...Guard) error {
	key := s.key("claims", c.Volume)
	guards = append(guards, s.HostGone(c.Host))
	_, err := s.guardedTxn(ctx, "release "+key, guards,
		[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}, clientv3.OpPut(key, mustJSON(c.Released(c.Host))))
	return err
}

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
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.dir("events"), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(limit))
	if err != nil {
		return nil, s.etcdErr("list events", err)
	}
	out := make([]Event, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		if err := json.Unmarshal(kv.Value, &out[len(out)-1-i]); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
	}
	return out, nil
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

// SetRunning records that app runs on host, bound to the host's lease so
// the record goes with the host.
func (s *Store) SetRunning(ctx context.Context, app, host string, lease clientv3.LeaseID) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if _, err := s.cli.Put(ctx, s.key("running", app), host, clientv3.WithLease(lease)); err != nil {
		return s.etcdErr(fmt.Sprintf("record %s running on %s", app, host), err)
	}
	return nil
}

// ClearRunning removes app's running record if host wrote it.
func (s *Store) ClearRunning(ctx context.Context, app, host string) error {
	key := s.key("running", app)
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(key), "=", host)).Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return s.etcdErr("clear "+key, err)
	}
	return nil
}

// ListRunning maps each app to the live host that runs it.
func (s *Store) ListRunning(ctx context.Context) (map[string]string, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.dir("running"), clientv3.WithPrefix())
	if err != nil {
		return nil, s.etcdErr("list running apps", err)
	}
	out := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out[path.Base(string(kv.Key))] = string(kv.Value)
	}
	return out, nil
}

// WatchApps reports every change of an app (placements, relocations).
func (s *Store) WatchApps(ctx context.Context) clientv3.WatchChan {
	return s.cli.Watch(clientv3.WithRequireLeader(ctx), s.dir("apps"), clientv3.WithPrefix())
}
