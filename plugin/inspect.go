package plugin

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
)

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

func (d *Driver) getVolume(ctx context.Context, name string) (store.Volume, int64, error) {
	v, rev, err := d.store.GetVolume(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return v, 0, newErr(ErrNotFound, "volume %q not found: create it with `docker volume create -d relocvol %s`", name, name)
	}
	return v, rev, err
}
