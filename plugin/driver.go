// Package plugin is relocvol's Docker VolumeDriver: every endpoint of the
// volume plugin protocol, on top of the etcd store (records and claims), a
// storage backend, a fencing method and the host's liveness.
//
// The safety rule it enforces: a volume is active on at most one host. Mount
// takes the volume's claim by an etcd transaction before it activates
// anything; a claim held by a live peer refuses the Mount; a claim held by a
// dead peer is taken only after that peer is fenced. Mounts are counted per
// (volume, mount ID), serialized per volume, and rebuilt from the mount
// table and etcd when the plugin restarts.
package plugin

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/relocvol/relocvol/backends"
	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/liveness"
	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
)

// Store is what the plugin needs of the shared state (implemented by
// *store.Store on etcd).
type Store interface {
	GetVolume(ctx context.Context, name string) (store.Volume, int64, error)
	ListVolumes(ctx context.Context) (map[string]store.Versioned[store.Volume], error)
	CreateVolume(ctx context.Context, v store.Volume) (bool, store.Volume, int64, error)
	UpdateVolume(ctx context.Context, v store.Volume, rev, claimRev int64, guards ...store.Guard) (int64, error)
	DeleteVolume(ctx context.Context, name string, rev int64) error
	GetClaim(ctx context.Context, name string) (store.Claim, int64, error)
	ListClaims(ctx context.Context) (map[string]store.Versioned[store.Claim], error)
	PutClaim(ctx context.Context, c store.Claim, claimRev, volRev int64, guards ...store.Guard) (int64, error)
	HostState(ctx context.Context, host string) (store.HostState, error)
	GetFence(ctx context.Context, host string) (store.Fence, int64, error)
	GetMaintenance(ctx context.Context, host string) (store.Maintenance, int64, error)
	MarkFence(ctx context.Context, f store.Fence, guards ...store.Guard) (int64, error)
	HostGone(host string) store.Guard
	FencedBy(host string, markRev int64) store.Guard
	HostLease(host string, lease int64) store.Guard
	// Await runs check until done, watching families between runs.
	Await(ctx context.Context, families []store.Family, recheck time.Duration, check func(context.Context) (bool, error)) error
}

// Listing is every volume record as of now, from a cache following etcd
// (implemented by *store.VolumeCache); false when it cannot answer for now
// (then List reads etcd).
type Listing interface {
	Volumes(ctx context.Context) ([]store.Volume, bool)
}

// Fencer cuts a dead host off the shared storage (fencing.None,
// scsi3.Fencer).
type Fencer interface {
	fencing.Method
	// Join (re-)registers this host with the storage when it joins, once
	// its host key is in etcd.
	Join(ctx context.Context) error
}

// Mounter mounts filesystems (implemented by fsutil.FS).
type Mounter interface {
	Mount(ctx context.Context, dev, fstype, target string) error
	Unmount(ctx context.Context, target string) error
	MountSource(target string) (string, bool, error)
	Mounts(root string) (map[string]string, error)
	DeviceBusy(dev string) (bool, error)
	// GrowsOnline says whether this process can grow a mounted
	// filesystem of type fstype, and if not why; Grow grows one online,
	// GrowOffline one that nothing mounts.
	GrowsOnline(fstype string) (bool, string)
	Grow(ctx context.Context, fstype, dev, target string) error
	GrowOffline(ctx context.Context, fstype, dev string) error
}

// ActiveLister is an optional ability of a backend: listing the volumes
// whose storage is active on this host, whether mounted or not. Backends
// whose storage other hosts may see active on a shared kernel (loop in
// development) must not offer it.
type ActiveLister interface {
	Active(ctx context.Context) ([]string, error)
}

// Liveness tells whether this host's lease is current, and which lease
// this process renews: the host's own claim writes are guarded by it.
type Liveness interface {
	Alive() bool
	Lease() clientv3.LeaseID
}

// Options configure a Driver.
type Options struct {
	Host      string
	MountRoot string // the plugin's propagatedMount
	Defaults  spec.Defaults
	// Timeout bounds one Docker request; Create gets four times as long
	// because mkfs of a large volume takes a while.
	Timeout time.Duration
	Log     logrus.FieldLogger
	// Observe, when set, hears each step of a mount that changes state on
	// this host (phase fenced, claimed, activated or mounted, and how long it
	// took): the controller turns those into a relocation's timeline. It
	// must not block.
	Observe func(volume, phase string, took time.Duration)
	// Cluster is the identity of this host's cluster, written on the
	// storage when the host joins (none when empty); Etcd names this host's
	// etcd in the messages about it.
	Cluster store.Cluster
	Etcd    string
	// Grace is how long after this host first saw a claim holder's lease
	// gone it waits before fencing the holder and taking its volume over;
	// the same grace the leader waits (liveness.Timings.Grace). Default:
	// the grace of the default lease TTL.
	Grace time.Duration
	// Docker, when set, is the local engine, asked before a Mount joins a
	// volume mounted here already whether a Swarm task would share it
	// (checkSwarmJoin); DockerName names it in messages.
	Docker     Containers
	DockerName string
	// Listing, when set, serves List from memory while it follows etcd
	// (store.VolumeCache); without it, or while it does not, List reads
	// etcd.
	Listing Listing
	// Known keeps the names of the cluster's volumes this host has seen,
	// for Get and List while etcd does not answer (OpenKnown); default:
	// in memory only.
	Known *Known
}

// Driver implements volume.Driver.
type Driver struct {
	opt     Options
	store   Store
	backend backends.Backend
	mounter Mounter
	fencer  Fencer
	live    Liveness
	log     logrus.FieldLogger

	locks keyedMutex

	mu sync.Mutex
	// mounts holds this host's mount IDs per volume: the reference counts.
	mounts map[string]map[string]mountRef
	// unsettled are volumes with no mount ID left here whose unmount or
	// deactivation failed (something still holds the device): they stay
	// in Mounts() until their device is closed and deactivated, so that
	// self-fencing never reports done over an open device.
	unsettled map[string]bool
	// deadSince is when this host first saw each claim holder dead.
	deadSince map[string]deadSighting
	// devs are the devices of the volumes this process mounted, for Get
	// (Docker calls it before every Unmount): no lookup while they are
	// mounted.
	devs map[string]string

	// growNames are volumes whose grow RunGrows is to look at; growWake
	// wakes it.
	growMu    sync.Mutex
	growNames map[string]bool
	growWake  chan struct{}
}

var _ volume.Driver = (*Driver)(nil)

// New returns a driver. It serves requests once its host has prepared
// and joined (Prepare, Join: the heartbeat calls them).
func New(st Store, be backends.Backend, m Mounter, f Fencer, live Liveness, opt Options) *Driver {
	if opt.Timeout == 0 {
		opt.Timeout = 30 * time.Second
	}
	if opt.Log == nil {
		opt.Log = logrus.StandardLogger()
	}
	if opt.Grace == 0 {
		opt.Grace = liveness.For(5 * time.Second).Grace
	}
	if opt.Known == nil {
		opt.Known = memoryKnown()
	}
	return &Driver{
		opt: opt, store: st, backend: be, mounter: m, fencer: f, live: live,
		log:    opt.Log.WithField("host", opt.Host),
		mounts: map[string]map[string]mountRef{}, unsettled: map[string]bool{}, deadSince: map[string]deadSighting{}, devs: map[string]string{},
		growNames: map[string]bool{}, growWake: make(chan struct{}, 1),
	}
}

// fsPath is where the volume's filesystem is mounted; dataPath, a folder in
// it, is what containers get, so they never see lost+found at their root.
func (d *Driver) fsPath(name string) string   { return filepath.Join(d.opt.MountRoot, name) }
func (d *Driver) dataPath(name string) string { return filepath.Join(d.opt.MountRoot, name, "data") }

func (d *Driver) reqCtx(scale int) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Duration(scale)*d.opt.Timeout)
}

// ---- Mount / Unmount ----

// ---- Path / Get / List / Capabilities ----

// ---- helpers ----

func (d *Driver) fail(op, name string, err error) error {
	out := dockerError(op, name, d.opt.Host, err)
	entry := d.log.WithError(err).WithFields(logrus.Fields{"op": op, "volume": name})
	var e *Error
	switch {
	case errors.Is(err, ErrNotFound) && (op == "inspect" || op == "find"):
		entry.Debug("no such volume") // Docker probes names before it creates them
	case errors.As(err, &e) && !errors.Is(err, ErrFence):
		entry.Info("request refused")
	default:
		entry.Error("request failed")
	}
	return out
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// keyedMutex serializes work per volume name.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*lockEntry
}

type lockEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(name string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*lockEntry{}
	}
	e := k.locks[name]
	if e == nil {
		e = &lockEntry{}
		k.locks[name] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.locks, name)
		}
		k.mu.Unlock()
	}
}
