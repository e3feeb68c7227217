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
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/relocvol/relocvol/backends"
	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/failpoint"
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
	UpdateVolume(ctx context.Context, v store.Volume, rev, claimRev int64) (int64, error)
	DeleteVolume(ctx context.Context, name string, rev int64) error
	GetClaim(ctx context.Context, name string) (store.Claim, int64, error)
	ListClaims(ctx context.Context) (map[string]store.Versioned[store.Claim], error)
	PutClaim(ctx context.Context, c store.Claim, claimRev, volRev int64, guards ...store.Guard) (int64, error)
	HostState(ctx context.Context, host string) (store.HostState, error)
	GetFence(ctx context.Context, host string) (store.Fence, int64, error)
	GetMaintenance(ctx context.Context, host string) (store.Maintenance, int64, error)
	MarkFence(ctx context.Context, f store.Fence, guards ...store.Guard) (int64, error)
	HostGone(host string) store.Guard
	HostLease(host string, lease int64) store.Guard
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
	// deadSince is when this host first saw each claim holder dead.
	deadSince map[string]time.Time
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
	return &Driver{
		opt: opt, store: st, backend: be, mounter: m, fencer: f, live: live,
		log:    opt.Log.WithField("host", opt.Host),
		mounts: map[string]map[string]mountRef{}, deadSince: map[string]time.Time{},
	}
}

// fsPath is where the volume's filesystem is mounted; dataPath, a folder in
// it, is what containers get, so they never see lost+found at their root.
func (d *Driver) fsPath(name string) string   { return filepath.Join(d.opt.MountRoot, name) }
func (d *Driver) dataPath(name string) string { return filepath.Join(d.opt.MountRoot, name, "data") }

func (d *Driver) reqCtx(scale int) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Duration(scale)*d.opt.Timeout)
}

// inUseErr words the refusal of an operation on a volume another host (or
// this one) holds, with what the operator can do about it.
func (d *Driver) inUseErr(ctx context.Context, op string, c store.Claim) error {
	mounts := fmt.Sprintf("%d mounts", len(c.Mounts))
	if c.Host == d.opt.Host {
		return newErr(ErrInUse, "volume %q is in use on host %s (this host, %s): stop the containers that use it first", c.Volume, c.Host, mounts)
	}
	st, err := d.store.HostState(ctx, c.Host)
	switch {
	case err != nil:
		return newErr(ErrInUse, "volume %q is in use on host %s (%s; its liveness is unknown: %v)", c.Volume, c.Host, mounts, err)
	case !st.Alive && st.Maintenance != nil:
		return maintenanceErr(c.Volume, *st.Maintenance)
	case st.Alive:
		what := "stop the containers that use it there first"
		if op == "mount" {
			what = "stop the container using it there, or move it with relocvol; " + takeoverHint(c.Host, st.ExpiresIn, d.opt.Grace)
		}
		return newErr(ErrInUse, "volume %q is in use on host %s (alive, last renewed %s ago, %s): %s",
			c.Volume, c.Host, st.LastRenewed.Round(100*time.Millisecond), mounts, what)
	default:
		return newErr(ErrInUse, "volume %q is claimed by host %s, which is not alive: mount it on a live host to take it over (with fencing), then stop that container and remove it", c.Volume, c.Host)
	}
}

// ---- Mount / Unmount ----

// Mount implements volume.Driver.
func (d *Driver) Mount(r *volume.MountRequest) (*volume.MountResponse, error) {
	ctx, cancel := d.reqCtx(2)
	defer cancel()
	mp, err := d.mount(ctx, r.Name, r.ID)
	if err != nil {
		return nil, d.fail("mount", r.Name, err)
	}
	return &volume.MountResponse{Mountpoint: mp}, nil
}

func (d *Driver) mount(ctx context.Context, name, id string) (string, error) {
	if err := spec.ValidateName(name); err != nil {
		return "", newErr(ErrInvalid, "%s", err)
	}
	if id == "" {
		return "", newErr(ErrInvalid, "mount of volume %q has no mount ID: Docker always sends one; check the caller", name)
	}
	defer d.locks.lock(name)()
	if !d.live.Alive() {
		return "", d.notAliveErr(ctx, name)
	}
	vol, vrev, err := d.getVolume(ctx, name)
	if err != nil {
		return "", err
	}
	if vol.State != store.StateReady {
		return "", newErr(ErrBusy, "volume %q is %s (by host %s): try again in a moment", name, vol.State, vol.CreatedBy)
	}
	if vol.Backend != d.backend.Name() {
		return "", newErr(ErrConflict, "volume %q is on backend %s but this host uses %s: configure the same backend on every host", name, vol.Backend, d.backend.Name())
	}
	if err := d.checkSwarmJoin(ctx, name, id); err != nil {
		return "", err
	}
	start := time.Now()
	if err := d.claim(ctx, vol, vrev, id); err != nil {
		return "", err
	}
	if d.MountCount(name) == 0 {
		d.observe(name, "claimed", start)
	}
	err = d.activate(ctx, vol)
	if err == nil && !d.live.Alive() {
		// The host passed its cut-off while activating (a slow LVM
		// activation): its self-fencing may have swept past this volume
		// already, so Docker must not get it.
		err = d.notAliveErr(ctx, name)
		if uerr := d.settle(context.WithoutCancel(ctx), name); uerr != nil {
			d.log.WithError(uerr).WithField("volume", name).Error("cannot undo a mount refused at the cut-off; retrying in the background")
			d.retrySync(name)
		}
		return "", err
	}
	if err != nil {
		// Give back what this call took: the mount ID, and the claim itself
		// if no other mount holds it.
		if serr := d.syncClaim(context.WithoutCancel(ctx), name); serr != nil {
			d.log.WithError(serr).WithField("volume", name).Error("cannot release the claim of a failed mount; retrying in the background")
			d.retrySync(name)
		}
		return "", fmt.Errorf("activate: %w", err)
	}
	d.addMount(name, id, time.Now().UTC())
	failpoint.Hit(failpoint.MountBeforeReply)
	return d.dataPath(name), nil
}

// activate makes the volume's filesystem mounted on this host (no-op when it
// already is), undoing its own steps on failure.
func (d *Driver) activate(ctx context.Context, vol store.Volume) (err error) {
	target := d.fsPath(vol.Name)
	if d.MountCount(vol.Name) > 0 {
		if _, ok, merr := d.mounter.MountSource(target); merr == nil && ok {
			return nil
		}
	}
	log := d.log.WithField("volume", vol.Name)
	wasActive, err := d.backend.Device(ctx, vol.Name)
	if err != nil {
		return err
	}
	if err := d.readyToWrite(ctx); err != nil {
		return err
	}
	start := time.Now()
	dev, err := d.backend.Activate(ctx, vol.Name)
	if err != nil {
		return err
	}
	d.observe(vol.Name, "activated", start)
	failpoint.Hit(failpoint.MountAfterAttach)
	start = time.Now()
	defer func() {
		if err != nil && wasActive == "" {
			if derr := d.backend.Deactivate(context.WithoutCancel(ctx), vol.Name); derr != nil {
				log.WithError(derr).Error("cannot deactivate after a failed mount")
			}
		}
	}()
	if err := d.mounter.Mount(ctx, dev, vol.FS, target); err != nil {
		return err
	}
	if err := os.MkdirAll(d.dataPath(vol.Name), 0o755); err != nil {
		_ = d.mounter.Unmount(context.WithoutCancel(ctx), target)
		return fmt.Errorf("create the data folder: %w", err)
	}
	d.observe(vol.Name, "mounted", start)
	log.WithField("dev", dev).Info("mounted volume")
	return nil
}

func (d *Driver) observe(name, phase string, start time.Time) {
	if d.opt.Observe != nil {
		d.opt.Observe(name, phase, time.Since(start))
	}
}

// Unmount implements volume.Driver. It always drops the mount ID, even when
// the unmount itself or etcd fails; what is left is retried.
func (d *Driver) Unmount(r *volume.UnmountRequest) error {
	ctx, cancel := d.reqCtx(2)
	defer cancel()
	if err := d.unmount(ctx, r.Name, r.ID); err != nil {
		return d.fail("unmount", r.Name, err)
	}
	return nil
}

func (d *Driver) unmount(ctx context.Context, name, id string) error {
	if err := spec.ValidateName(name); err != nil {
		return newErr(ErrInvalid, "%s", err)
	}
	if id == "" {
		return newErr(ErrInvalid, "unmount of volume %q has no mount ID: Docker always sends one; check the caller", name)
	}
	defer d.locks.lock(name)()
	if !d.delMount(name, id) {
		// Docker repeats an Unmount it saw fail, and an ID collected as an
		// orphan may still come: Docker must never be left holding an ID
		// it cannot release.
		d.log.WithFields(logrus.Fields{"volume": name, "id": shortID(id)}).Warn("unmount of a mount ID this host does not count: nothing to do")
		return nil
	}
	err := d.settle(ctx, name)
	if err != nil {
		d.retrySync(name)
	}
	return err
}

// settle brings this host's storage and the claim in line with the local
// mount IDs: with none left it unmounts and deactivates, then the claim gets
// the remaining IDs, or is released once nothing is active here.
func (d *Driver) settle(ctx context.Context, name string) error {
	var errs []error
	if d.MountCount(name) == 0 {
		if err := d.deactivate(ctx, name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := d.syncClaim(ctx, name); err != nil {
		errs = append(errs, fmt.Errorf("update the claim: %w", err))
	}
	return errors.Join(errs...)
}

func (d *Driver) deactivate(ctx context.Context, name string) error {
	if err := d.mounter.Unmount(ctx, d.fsPath(name)); err != nil {
		return fmt.Errorf("unmount: %w", err)
	}
	if err := d.backend.Deactivate(ctx, name); err != nil {
		return fmt.Errorf("deactivate: %w", err)
	}
	d.log.WithField("volume", name).Info("unmounted volume")
	return nil
}

// syncClaim writes this host's mount IDs into the claim, if this host holds
// it, releasing it when no ID is left and nothing is active here any more.
// A claim kept held is written under this host's own lease; a release is
// not (a host whose lease is gone may still give up what it no longer
// uses, which only ever makes the volume free). Nothing is written when
// the claim already says it.
func (d *Driver) syncClaim(ctx context.Context, name string) error {
	for attempt := 0; ; attempt++ {
		c, crev, err := d.store.GetClaim(ctx, name)
		if err != nil {
			return err
		}
		if c.Host != d.opt.Host {
			return nil
		}
		next := c
		next.Mounts, next.Counts = d.localMounts(name)
		var guards []store.Guard
		if len(next.Mounts) == 0 && !d.activeHere(ctx, name) {
			next = next.Released("")
		} else if sameMounts(c, next) {
			return nil
		} else {
			guards = append(guards, d.ownLease())
		}
		_, vrev, err := d.store.GetVolume(ctx, name)
		if err != nil {
			return err
		}
		_, err = d.store.PutClaim(ctx, next, crev, vrev, guards...)
		if errors.Is(err, store.ErrConflict) && attempt < 5 {
			continue
		}
		if err == nil && !next.Held() {
			d.log.WithFields(logrus.Fields{"volume": name, "epoch": c.Epoch}).Info("released volume")
		}
		return err
	}
}

// activeHere reports whether anything of the volume is still mounted or
// active on this host; an unknown state counts as active, so a claim is
// never released on a guess.
func (d *Driver) activeHere(ctx context.Context, name string) bool {
	if _, ok, err := d.mounter.MountSource(d.fsPath(name)); err != nil || ok {
		return true
	}
	dev, err := d.backend.Device(ctx, name)
	return err != nil || dev != ""
}

// retrySync keeps settling a volume in the background until it works, so a
// failed unmount or an etcd outage does not leave a claim held for ever.
func (d *Driver) retrySync(name string) {
	go func() {
		for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
			time.Sleep(delay)
			ctx, cancel := d.reqCtx(1)
			unlock := d.locks.lock(name)
			err := d.settle(ctx, name)
			unlock()
			cancel()
			if err == nil {
				return
			}
			d.log.WithError(err).WithField("volume", name).Warn("volume still not settled; retrying")
		}
	}()
}

// ---- Path / Get / List / Capabilities ----

// Path implements volume.Driver: the mountpoint when mounted on this host.
func (d *Driver) Path(r *volume.PathRequest) (*volume.PathResponse, error) {
	ctx, cancel := d.reqCtx(1)
	defer cancel()
	if err := spec.ValidateName(r.Name); err != nil {
		return nil, d.fail("find", r.Name, newErr(ErrInvalid, "%s", err))
	}
	if _, _, err := d.getVolume(ctx, r.Name); err != nil {
		return nil, d.fail("find", r.Name, err)
	}
	resp := &volume.PathResponse{}
	if d.MountCount(r.Name) > 0 {
		resp.Mountpoint = d.dataPath(r.Name)
	}
	return resp, nil
}

// Get implements volume.Driver. Its Status is what `docker volume inspect`
// shows: where the volume is active, under which epoch, and its spec.
func (d *Driver) Get(r *volume.GetRequest) (*volume.GetResponse, error) {
	ctx, cancel := d.reqCtx(1)
	defer cancel()
	v, err := d.get(ctx, r.Name)
	if err != nil {
		return nil, d.fail("inspect", r.Name, err)
	}
	return &volume.GetResponse{Volume: v}, nil
}

func (d *Driver) get(ctx context.Context, name string) (*volume.Volume, error) {
	if err := spec.ValidateName(name); err != nil {
		return nil, newErr(ErrInvalid, "%s", err)
	}
	vol, _, err := d.getVolume(ctx, name)
	if err != nil {
		return nil, err
	}
	c, _, err := d.store.GetClaim(ctx, name)
	if err != nil {
		return nil, err
	}
	status := map[string]interface{}{
		"backend":   vol.Backend,
		"size":      spec.FormatSize(vol.Size),
		"fs":        vol.FS,
		"state":     vol.State,
		"createdBy": vol.CreatedBy,
		"epoch":     c.Epoch,
		"owner":     "",
		"mounts":    len(c.Mounts),
	}
	if c.Held() {
		status["owner"] = c.Host
		status["since"] = c.Since.Format(time.RFC3339)
		if c.TakenFrom != "" {
			status["takenFrom"] = c.TakenFrom
		}
		if c.Host != d.opt.Host {
			if st, err := d.store.HostState(ctx, c.Host); err == nil {
				status["ownerAlive"] = st.Alive
			}
		} else {
			status["ownerAlive"] = d.live.Alive()
		}
	}
	v := &volume.Volume{Name: name, CreatedAt: vol.CreatedAt.Format(time.RFC3339), Status: status}
	if d.MountCount(name) > 0 {
		v.Mountpoint = d.dataPath(name)
		if dev, err := d.backend.Device(ctx, name); err == nil && dev != "" {
			status["device"] = dev
		}
	}
	return v, nil
}

// List implements volume.Driver: every volume of the cluster.
func (d *Driver) List() (*volume.ListResponse, error) {
	ctx, cancel := d.reqCtx(1)
	defer cancel()
	vols, err := d.store.ListVolumes(ctx)
	if err != nil {
		return nil, d.fail("list", "", err)
	}
	names := make([]string, 0, len(vols))
	for n := range vols {
		names = append(names, n)
	}
	sort.Strings(names)
	resp := &volume.ListResponse{Volumes: []*volume.Volume{}}
	for _, n := range names {
		v := &volume.Volume{Name: n, CreatedAt: vols[n].Value.CreatedAt.Format(time.RFC3339)}
		if d.MountCount(n) > 0 {
			v.Mountpoint = d.dataPath(n)
		}
		resp.Volumes = append(resp.Volumes, v)
	}
	return resp, nil
}

// Capabilities implements volume.Driver: volumes are cluster-wide.
func (d *Driver) Capabilities() *volume.CapabilitiesResponse { return capabilities() }

func capabilities() *volume.CapabilitiesResponse {
	return &volume.CapabilitiesResponse{Capabilities: volume.Capability{Scope: "global"}}
}

// ---- helpers ----

func (d *Driver) getVolume(ctx context.Context, name string) (store.Volume, int64, error) {
	v, rev, err := d.store.GetVolume(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return v, 0, newErr(ErrNotFound, "volume %q not found: create it with `docker volume create -d relocvol %s`", name, name)
	}
	return v, rev, err
}

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
