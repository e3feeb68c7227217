package controller

import (
	"context"
	"errors"
	"time"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/plugin"
)

// Grower grows volumes: the plugin's driver (plugin.Driver.Grow).
type Grower interface {
	Grow(ctx context.Context, name, size string, wait time.Duration) (store.Volume, error)
}

// growWait is how long a grow request waits for the host that mounts the
// volume to grow its filesystem; the answer then says it is still growing.
const growWait = 30 * time.Second

// GrowVolume implements api.Service.
func (c *Controller) GrowVolume(ctx context.Context, name, size string) (api.Grow, error) {
	if c.opt.Grower == nil {
		return api.Grow{}, api.Errorf(api.ErrUnsupported, "host %s serves no volumes: ask the API of a host that runs the plugin", c.opt.Host)
	}
	vol, err := c.opt.Grower.Grow(ctx, name, size, growWait)
	if err != nil {
		return api.Grow{}, apiError(err)
	}
	g := growView(name, vol)
	if g.Filesystem == api.FSFailed {
		return g, api.Errorf(api.ErrInternal, "volume %q: its storage grew from %s to %s, but its filesystem did not: %s. Look at the plugin's log on host %s; ask for the grow again to retry",
			name, g.FromHuman, g.SizeHuman, g.Detail, g.Host)
	}
	return g, nil
}

// VGChanger changes the shared VG: the plugin's driver
// (plugin.Driver.ExtendVG, VGName).
type VGChanger interface {
	ExtendVG(ctx context.Context, devices []string) error
	VGName() string
}

// ExtendVG implements api.Service.
func (c *Controller) ExtendVG(ctx context.Context, devices []string) (api.VGExtend, error) {
	if c.opt.VG == nil {
		return api.VGExtend{}, api.Errorf(api.ErrUnsupported, "host %s serves no volumes: ask the API of a host that runs the plugin", c.opt.Host)
	}
	if err := c.opt.VG.ExtendVG(ctx, devices); err != nil {
		return api.VGExtend{}, apiError(err)
	}
	return api.VGExtend{VG: c.opt.VG.VGName(), Devices: devices, Host: c.opt.Host}, nil
}

// growView is a volume's last grow as the API shows it; a volume never
// grown has its size "from" its size, its filesystem grown.
func growView(name string, v store.Volume) api.Grow {
	out := api.Grow{Volume: name, Size: v.Size, SizeHuman: spec.FormatSize(v.Size), From: v.Size, FromHuman: spec.FormatSize(v.Size), Filesystem: api.FSGrown}
	g := v.Grow
	if g == nil {
		return out
	}
	out.From, out.FromHuman, out.By, out.At = g.From, spec.FormatSize(g.From), g.By, g.At
	switch {
	case g.Done:
		out.Host = g.FSHost
	case g.Error != "":
		out.Filesystem, out.Host, out.Detail = api.FSFailed, g.FSHost, g.Error
	case g.Waiting != "":
		out.Filesystem, out.Host, out.Detail = api.FSNextMount, g.FSHost, g.Waiting
	case g.Owner != "":
		out.Filesystem, out.Host = api.FSGrowing, g.Owner
	default:
		out.Filesystem, out.Detail = api.FSNextMount, "no host had the volume mounted"
	}
	return out
}

// apiError is a plugin's refusal in the API's kinds; anything else passes
// as it is (statusOf maps the store's errors).
func apiError(err error) error {
	var pe *plugin.Error
	if !errors.As(err, &pe) {
		return err
	}
	kind := api.ErrInternal
	switch {
	case errors.Is(err, plugin.ErrInvalid):
		kind = api.ErrInvalid
	case errors.Is(err, plugin.ErrNotFound):
		kind = api.ErrNotFound
	case errors.Is(err, plugin.ErrBusy), errors.Is(err, plugin.ErrConflict), errors.Is(err, plugin.ErrInUse):
		kind = api.ErrConflict
	case errors.Is(err, plugin.ErrNotAlive), errors.Is(err, plugin.ErrStarting):
		kind = api.ErrUnavailable
	}
	return api.Errorf(kind, "%s", pe.Msg)
}
