package plugin

import (
	"context"

	"github.com/relocvol/relocvol/internal/store"
)

// VolumeChanged is a volume cache's OnChange (store.VolumeCache): a record
// whose grow is pending, of a volume this host has mounted, is handed to
// RunGrows. It never blocks, and decides nothing: RunGrows reads etcd.
func (d *Driver) VolumeChanged(v store.Volume) {
	if !v.Grow.Pending() || v.Grow.Error != "" || d.MountCount(v.Name) == 0 {
		return
	}
	d.growMu.Lock()
	d.growNames[v.Name] = true
	d.growMu.Unlock()
	select {
	case d.growWake <- struct{}{}:
	default: // RunGrows is awake already and takes every name
	}
}

// RunGrows grows, until ctx ends, the filesystems of the volumes mounted
// here whose storage another host grew (VolumeChanged names them), and at
// its start those whose grow was pending while the plugin was away.
func (d *Driver) RunGrows(ctx context.Context) {
	for name := range d.Mounts() {
		d.growMu.Lock()
		d.growNames[name] = true
		d.growMu.Unlock()
	}
	for {
		d.growMu.Lock()
		names := d.growNames
		d.growNames = map[string]bool{}
		d.growMu.Unlock()
		for name := range names {
			if err := d.growFilesystem(ctx, name); err != nil && ctx.Err() == nil {
				d.log.WithError(err).WithField("volume", name).Warn("cannot grow the filesystem of a grown volume")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-d.growWake:
		}
	}
}
