package plugin

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/backends"
	"github.com/relocvol/relocvol/internal/store"
)

// Recover rebuilds this host's mount counts from the mount table and etcd,
// and cleans up what peers took over while this host was away. It runs
// before the host registers (at start-up and at every rejoin after a lost
// lease), so the host never mounts anything until its state is sound:
//
//   - claimed here and mounted here: the claim's mount IDs are the counts
//     (a plugin restart or upgrade keeps every mount, none doubled);
//   - claimed here but not mounted: the mounts died with the host (reboot),
//     so the storage is deactivated and the claim released;
//   - mounted here but claimed by another host: this host was declared dead
//     and fenced; it unmounts and deactivates before it may rejoin.
//
// Afterwards the host's fencing mark, if any, is cleared and the fencing
// method re-registers it.
func (d *Driver) Recover(ctx context.Context) error {
	mounted, err := d.mounter.Mounts(d.opt.MountRoot)
	if err != nil {
		return fmt.Errorf("read the mount table: %w", err)
	}
	claims, err := d.store.ListClaims(ctx)
	if err != nil {
		return fmt.Errorf("read claims: %w", err)
	}
	names := map[string]bool{}
	isMounted := map[string]bool{}
	for mp := range mounted {
		names[filepath.Base(mp)] = true
		isMounted[filepath.Base(mp)] = true
	}
	for n, c := range claims {
		if c.Value.Host == d.opt.Host {
			names[n] = true
		}
	}
	d.mu.Lock()
	for n := range d.mounts {
		names[n] = true
	}
	d.mu.Unlock()
	// Volumes active here without a mount (a crash between activation and
	// mount, or left when this host was fenced) must be settled too.
	if al, ok := d.backend.(ActiveLister); ok {
		active, err := al.Active(ctx)
		if err != nil {
			return fmt.Errorf("list the volumes active on this host: %w", err)
		}
		for _, n := range active {
			names[n] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)

	var errs []error
	for _, name := range sorted {
		if err := d.recoverVolume(ctx, name, isMounted[name]); err != nil {
			errs = append(errs, fmt.Errorf("volume %q: %w", name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	f, frev, err := d.store.GetFence(ctx, d.opt.Host)
	if err != nil {
		return err
	}
	if frev != 0 {
		if err := d.fencer.Join(ctx); err != nil {
			return fmt.Errorf("re-register with the storage after being fenced: %w", err)
		}
		if err := d.store.ClearFence(ctx, d.opt.Host, frev); err != nil {
			return err
		}
		d.log.WithFields(logrus.Fields{"fenced_by": f.By, "fenced_at": f.At, "method": f.Method}).Warn("this host had been fenced; cleaned up and cleared the mark")
		return nil
	}
	return d.fencer.Join(ctx)
}

// recoverVolume recovers one volume. Failing to settle a volume this host
// claims does not block the host (the claim stays held, which is safe, and
// is retried); failing to clean up a volume a peer took over does, because
// rejoining would make this host's leftover mount writable again.
func (d *Driver) recoverVolume(ctx context.Context, name string, mounted bool) error {
	defer d.locks.lock(name)()
	c, _, err := d.store.GetClaim(ctx, name)
	if err != nil {
		return err
	}
	if c.Host != d.opt.Host {
		return d.dropTakenOver(ctx, c, mounted)
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
			for id, since := range c.Mounts {
				d.addMount(name, id, since)
			}
			log.WithField("mounts", len(c.Mounts)).Info("recovered mounted volume")
		}
		return d.settle(ctx, name) // no IDs left: unmount; else claim = local IDs
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
		d.dropMounts(name)
		for id, since := range c.Mounts {
			d.addMount(name, id, since)
		}
		log.WithField("mounts", len(c.Mounts)).Info("re-mounted a volume that containers still use after a plugin restart")
		return nil
	default:
		log.Info("volume was claimed here but nothing uses it any more (host or plugin restarted): releasing it")
		d.dropMounts(name)
		return d.settle(ctx, name)
	}
}

// dropTakenOver unmounts and deactivates what is left here of a volume that
// another host holds (or nobody does) now.
func (d *Driver) dropTakenOver(ctx context.Context, c store.Claim, mounted bool) error {
	name := c.Volume
	log := d.log.WithFields(logrus.Fields{"volume": name, "epoch": c.Epoch, "owner": c.Host})
	if mounted {
		log.Error("volume is mounted here but claimed by another host (this host was fenced): unmounting it; any container still using it must be stopped")
	}
	d.dropMounts(name)
	err := d.deactivate(ctx, name)
	if errors.Is(err, backends.ErrInUse) {
		// Unmounted here, but the device is still open: a container still
		// holds the filesystem, or (development) another "host" shares this
		// kernel. Nothing more can be done without stopping containers,
		// which is the controller's job.
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

func (d *Driver) dropMounts(name string) {
	d.mu.Lock()
	delete(d.mounts, name)
	d.mu.Unlock()
}
