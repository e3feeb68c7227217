package plugin

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/backends"
	"github.com/relocvol/relocvol/internal/store"
)

// FenceChecker is an optional ability of a Fencer: telling whether this
// host's own access was cut off (its key preempted), even when no fencing
// mark says so.
type FenceChecker interface {
	Fenced(ctx context.Context) (bool, error)
}

// RegistrationChecker is an optional ability of a Fencer: checking, while
// the host is alive, that it is still registered with the storage
// (repairing what a VG change left out); fencing.ErrCutOff when it was
// fenced.
type RegistrationChecker interface {
	CheckRegistration(ctx context.Context) error
}

// StorageJoiner is an optional ability of a Fencer: registering this host
// on storage it has not joined yet (a PV added to the VG), before it writes.
type StorageJoiner interface {
	EnsureJoined(ctx context.Context) error
}

// KeyReleaser is an optional ability of a Fencer: taking this host's key
// back from what would register it by itself on paths that come back
// (multipathd: scsi3.(*Fencer).ReleaseKeys), from the host's cut-off on.
type KeyReleaser interface {
	// ReleaseKeys reports whether every map is confirmed clear.
	ReleaseKeys(ctx context.Context) bool
}

// releaseTimeout bounds ReleaseKeys in Prepare.
const releaseTimeout = 10 * time.Second

// Release takes this host's key back from multipathd (KeyReleaser), as
// heartbeat.Releaser: at the cut-off, before peers may fence this host, and
// before a fenced host gives its lease up; the next join hands it back, and
// so does the periodic check if a late renewal made the host alive again.
func (d *Driver) Release(ctx context.Context) bool {
	if kr, ok := d.fencer.(KeyReleaser); ok {
		return kr.ReleaseKeys(ctx)
	}
	return true
}

// readyToWrite makes sure this host may write every PV of the VG before it
// creates, activates or removes storage.
func (d *Driver) readyToWrite(ctx context.Context) error {
	sj, ok := d.fencer.(StorageJoiner)
	if !ok {
		return nil
	}
	if err := sj.EnsureJoined(ctx); err != nil {
		return fmt.Errorf("register host %s on the storage before writing to it: %w", d.opt.Host, err)
	}
	return nil
}

// Join implements heartbeat.Member: it registers this host with the
// storage, once its host key is in etcd, and then marks the storage as
// this cluster's if it is not yet (a write, so only once registered).
func (d *Driver) Join(ctx context.Context) error {
	if err := d.fencer.Join(ctx); err != nil {
		return err
	}
	return d.markCluster(ctx)
}

// Check implements heartbeat.Member: it verifies, while the host is
// alive, that it is still registered with the storage.
func (d *Driver) Check(ctx context.Context) error {
	if rc, ok := d.fencer.(RegistrationChecker); ok {
		return rc.CheckRegistration(ctx)
	}
	return nil
}

// Prepare implements heartbeat.Member: it rebuilds this host's mount counts from the mount table, the
// backend and etcd, and cleans up, before the host registers: at start-up
// and at every rejoin after a lost lease. First of all it takes the host's
// key back from multipathd (KeyReleaser). It returns the revision of the
// fencing mark it cleaned up after (0: none), which the registration clears
// in the same transaction that requires no other mark. The host mounts
// nothing until it has registered, and joins the storage only after that.
//
// A host that was not fenced keeps what still serves containers:
//   - claimed here and mounted here: the claim's mount IDs are the counts
//     (a plugin restart or upgrade keeps every mount, none doubled);
//   - claimed here, not in this plugin's mount table, device busy: Docker
//     lazily unmounted it when the plugin stopped while containers still use
//     it; it is mounted again with its counts;
//   - claimed here and unused: released (the host or plugin restarted);
//   - active or mounted here but claimed by another host (or nobody):
//     unmounted and deactivated.
//
// A fenced host (a fencing mark names it, or its reservation key is gone)
// could write to none of the VG's volumes, so it keeps none: everything is
// unmounted and deactivated and its own claims released; only then may it
// register (clearing the mark) and join the storage again.
func (d *Driver) Prepare(ctx context.Context) (int64, error) {
	if kr, ok := d.fencer.(KeyReleaser); ok {
		// Before etcd is asked anything: cut off it, the host may be
		// fenced any moment (the join hands the key back).
		rctx, cancel := context.WithTimeout(ctx, releaseTimeout)
		kr.ReleaseKeys(rctx)
		cancel()
	}
	f, frev, err := d.store.GetFence(ctx, d.opt.Host)
	if err != nil {
		return 0, err
	}
	fenced := frev != 0
	if fc, ok := d.fencer.(FenceChecker); ok && !fenced {
		if fenced, err = fc.Fenced(ctx); err != nil {
			return 0, fmt.Errorf("check whether this host was fenced: %w", err)
		}
	}
	names, mounted, err := d.localVolumes(ctx)
	if err != nil {
		return 0, err
	}
	switch {
	case frev != 0:
		d.log.WithFields(logrus.Fields{"fenced_by": f.By, "fenced_at": f.At, "volumes": len(names)}).Warn("this host was fenced: unmounting and deactivating every volume before it may rejoin")
	case fenced:
		d.log.WithField("volumes", len(names)).Warn("this host's reservation key is not registered (first start, or preempted): making sure nothing is mounted or active before registering")
	}
	var errs []error
	for _, name := range names {
		if err := d.recoverVolume(ctx, name, mounted[name], fenced); err != nil {
			errs = append(errs, fmt.Errorf("volume %q: %w", name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	if frev != 0 {
		d.log.WithFields(logrus.Fields{"fenced_by": f.By, "fenced_at": f.At, "method": f.Method}).Warn("cleaned up after being fenced; the registration clears the mark")
	}
	return frev, nil
}

// localVolumes lists, sorted, every volume this host may have something of:
// mounted under the mount root, claimed by it, counted, or (where the
// backend can tell) active here.
func (d *Driver) localVolumes(ctx context.Context) ([]string, map[string]bool, error) {
	mountTable, err := d.mounter.Mounts(d.opt.MountRoot)
	if err != nil {
		return nil, nil, fmt.Errorf("read the mount table: %w", err)
	}
	claims, err := d.store.ListClaims(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("read claims: %w", err)
	}
	set, mounted := map[string]bool{}, map[string]bool{}
	for mp := range mountTable {
		set[filepath.Base(mp)] = true
		mounted[filepath.Base(mp)] = true
	}
	for n, c := range claims {
		if c.Value.Host == d.opt.Host {
			set[n] = true
		}
	}
	d.mu.Lock()
	for n := range d.mounts {
		set[n] = true
	}
	d.mu.Unlock()
	// Volumes active here without a mount (a crash between activation and
	// mount, or left when this host was fenced) must be settled too.
	if al, ok := d.backend.(ActiveLister); ok {
		active, err := al.Active(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("list the volumes active on this host: %w", err)
		}
		for _, n := range active {
			set[n] = true
		}
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, mounted, nil
}

// recoverVolume recovers one volume. Failing to settle a volume this host
// holds, when it was not fenced, does not block the host (the claim stays
// held, which is safe, and is retried); every other failure does, because
// rejoining would make a leftover mount writable again.
func (d *Driver) recoverVolume(ctx context.Context, name string, mounted, fenced bool) error {
	defer d.locks.lock(name)()
	c, _, err := d.store.GetClaim(ctx, name)
	if err != nil {
		return err
	}
	switch {
	case fenced:
		if err := d.dropLocal(ctx, c, mounted); err != nil {
			return err
		}
		if c.Host != d.opt.Host {
			return nil
		}
		if err := d.syncClaim(ctx, name, false); err != nil {
			return fmt.Errorf("release the claim: %w", err)
		}
		d.log.WithFields(logrus.Fields{"volume": name, "epoch": c.Epoch}).Warn("released a volume this host held when it was fenced; its containers must be restarted")
		return nil
	case c.Host != d.opt.Host:
		return d.dropLocal(ctx, c, mounted)
	}
	if err := d.recoverOwn(ctx, c, mounted); err != nil {
		d.log.WithError(err).WithField("volume", name).Error("cannot recover volume yet; its claim stays held and is retried in the background")
		d.retrySync(name)
	}
	return nil
}

func (d *Driver) recoverOwn(ctx context.Context, c store.Claim, mounted bool) error {
	name := c.Volume
	log := d.log.WithFields(logrus.Fields{"volume": name, "epoch": c.Epoch, "owner": c.Host})
	switch {
	case mounted:
		if d.MountCount(name) == 0 {
			d.recoverMounts(c)
			log.WithField("mounts", len(c.Mounts)).Info("recovered mounted volume")
		}
		return d.settle(ctx, name, true) // no IDs left: unmount; else claim = local IDs
	case len(c.Mounts) > 0 && d.inUseHere(ctx, name):
		// Not in this plugin's mount table, yet the device is held: Docker
		// lazily unmounted the propagated mount when the plugin stopped,
		// and containers still use the filesystem. Mount it again (the
		// kernel shares the one filesystem) and keep the counts.
		vol, _, err := d.getVolume(ctx, name)
		if err != nil {
			return err
		}
		if err := d.activate(ctx, vol); err != nil {
			return fmt.Errorf("re-mount a volume still in use: %w", err)
		}
		d.recoverMounts(c)
		log.WithField("mounts", len(c.Mounts)).Info("re-mounted a volume that containers still use after a plugin restart")
		return nil
	default:
		log.Info("volume was claimed here but nothing uses it any more (host or plugin restarted): releasing it")
		d.forgetMounts(name)
		return d.settle(ctx, name, true)
	}
}

// dropLocal unmounts and deactivates what is left of a volume on this host.
//
// A device still open after the unmount means a container holds the
// filesystem. With real fencing that blocks rejoining: registering again
// would let that container write to a volume another host owns now. Without
// fencing (loop backend, development) the open device may as well belong to
// another "host" sharing this kernel, and blocking would protect nothing,
// so it is only logged.
func (d *Driver) dropLocal(ctx context.Context, c store.Claim, mounted bool) error {
	name := c.Volume
	log := d.log.WithFields(logrus.Fields{"volume": name, "epoch": c.Epoch, "owner": c.Host})
	if mounted && c.Host != d.opt.Host {
		log.Error("volume is mounted here but claimed by another host (this host was fenced): unmounting it; any container still using it must be stopped")
	}
	d.forgetMounts(name)
	err := d.deactivate(ctx, name)
	if errors.Is(err, backends.ErrInUse) {
		if d.fencer.Name() != "none" {
			return fmt.Errorf("still in use on this host after unmounting it: stop the containers that use it (docker ps --filter volume=%s): %w", name, err)
		}
		log.WithError(err).Warn("volume's device is still open on this machine after unmounting it")
		return nil
	}
	return err
}

// inUseHere reports whether the volume's device is active on this host and
// held open by a mount in any namespace (a container's, after Docker
// detached the plugin's own). An unknown state counts as in use, so that
// recovery never releases a claim that may still back a writer.
func (d *Driver) inUseHere(ctx context.Context, name string) bool {
	dev, err := d.backend.Device(ctx, name)
	if err != nil {
		return true
	}
	if dev == "" {
		return false
	}
	busy, err := d.mounter.DeviceBusy(dev)
	return err != nil || busy
}
