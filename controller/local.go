package controller

import (
	"context"
	"sort"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/internal/spec"
)

// Local is this host as it sees itself, from memory only: it answers while
// etcd does not, which is when an operator needs to see whether the host's
// self-fencing finished.
func (c *Controller) Local(context.Context) (api.Local, error) {
	joined, since := c.opt.Beat.Joined()
	out := api.Local{
		Host: c.opt.Host, Alive: c.opt.Beat.Alive(), Mounted: []api.LocalVolume{},
		CutoffSeconds: c.opt.Beat.Timings().Cutoff().Seconds(),
	}
	gap := c.opt.Beat.MaxRenewalGap()
	out.MaxRenewalGapSeconds = gap.Seconds()
	out.SlackSeconds = (c.opt.Beat.Timings().Cutoff() - gap).Seconds()
	if joined || since < time.Hour {
		out.SinceRenewalSeconds = since.Seconds()
	}
	if c.agent != nil {
		if sf := c.agent.SelfFencing(); sf.Passes > 0 || sf.Active {
			out.SelfFencing = &sf
		}
	}
	if c.opt.Volumes != nil {
		for name, last := range c.opt.Volumes.Mounts() {
			v := api.LocalVolume{Name: name}
			if !last.IsZero() {
				v.LastMounted = &last
			}
			out.Mounted = append(out.Mounted, v)
		}
		sort.Slice(out.Mounted, func(i, j int) bool { return out.Mounted[i].Name < out.Mounted[j].Name })
	}
	return out, nil
}

// ForgetMounts drops this host's mount IDs of a volume that Docker will
// never unmount (the volume shows in use while no container uses it), then
// unmounts, deactivates and releases it. Where an agent runs, it refuses
// while a running container of the engine mounts the volume; without one
// the operator vouches for it.
func (c *Controller) ForgetMounts(ctx context.Context, name string) error {
	if err := spec.ValidateName(name); err != nil {
		return api.Errorf(api.ErrInvalid, "%v", err)
	}
	if c.opt.Volumes == nil {
		return api.Errorf(api.ErrUnsupported, "host %s serves no volumes: ask the API of the host that holds %q", c.opt.Host, name)
	}
	if _, ok := c.opt.Volumes.Mounts()[name]; !ok {
		return api.Errorf(api.ErrNotFound, "host %s counts no mount of volume %q: nothing to forget (ask the API of the host that holds it: relocvol volumes shows the owner)", c.opt.Host, name)
	}
	listed := time.Now()
	if c.opt.Docker != nil {
		list, err := c.opt.Docker.ContainerList(ctx, container.ListOptions{})
		if err != nil {
			return api.Errorf(api.ErrUnavailable, "cannot check the containers of host %s before forgetting the mounts of %q: %v", c.opt.Host, name, err)
		}
		for _, ct := range list {
			if usesAny(ct.Mounts, map[string]time.Time{name: {}}) {
				return api.Errorf(api.ErrConflict, "volume %q is used by the running container %s on host %s: its mounts are not orphans; stop the container instead", name, containerName(ct.Names), c.opt.Host)
			}
		}
	}
	dropped, err := c.opt.Volumes.Drop(ctx, name, "an operator asked (relocvol forget-mounts)", listed)
	switch {
	case err != nil:
		return api.Errorf(api.ErrConflict, "forgot the mount IDs of volume %q on host %s, but it is not released yet: %v (something on this host still uses it; relocvol retries by itself)", name, c.opt.Host, err)
	case !dropped:
		return api.Errorf(api.ErrConflict, "volume %q was mounted again on host %s just now: its mounts are in use; nothing forgotten", name, c.opt.Host)
	}
	return nil
}
