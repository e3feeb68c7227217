package store

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
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
	// MAC is the recording agent's signature (hex HMAC-SHA256, keyed with
	// the cluster's app key kept on the storage, not in etcd) of what it
	// took from docker inspect: Name, Volumes, Allowed and Spec. Agents
	// start only what it covers (controller.verifyApp); placements (Host,
	// Relocation) and Stopped are not covered.
	MAC string `json:"mac,omitempty"`
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
	_, err := s.guardedTxn(ctx, "clear "+key, nil, []clientv3.Cmp{clientv3.Compare(clientv3.Value(key), "=", host)}, clientv3.OpDelete(key))
	if errors.Is(err, ErrConflict) {
		return nil // another host runs it now (or nobody): its record stays
	}
	return err
}

// ListRunning maps each app to the live host that runs it.
func (s *Store) ListRunning(ctx context.Context) (map[string]string, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.dir("running"), clientv3.WithPrefix())
	if err != nil {
		return nil, s.etcdErr("list running apps", err)
	}
	return runningOf(resp.Kvs), nil
}

// WatchApps reports every change of an app (placements, relocations).
func (s *Store) WatchApps(ctx context.Context) clientv3.WatchChan {
	return s.cli.Watch(clientv3.WithRequireLeader(ctx), s.dir("apps"), clientv3.WithPrefix())
}

// WatchHosts streams the changes to the hosts' keys: a host key is bound
// to its lease, so its deletion is the moment etcd expired (or the host
// revoked) the lease.
func (s *Store) WatchHosts(ctx context.Context) clientv3.WatchChan {
	return s.cli.Watch(clientv3.WithRequireLeader(ctx), s.dir("hosts"), clientv3.WithPrefix())
}

// runningOf maps the apps of a read of running/ to their hosts.
func runningOf(kvs []*mvccpb.KeyValue) map[string]string {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		out[path.Base(string(kv.Key))] = string(kv.Value)
	}
	return out
}
