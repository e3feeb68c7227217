package plugin

import (
	"context"
	"errors"
	"fmt"
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
	return &volume.PathResponse{Mountpoint: d.mountpoint(r.Name)}, nil
}

// Get implements volume.Driver. Its Status is what `docker volume inspect`
// shows: where the volume is active, under which epoch, and its spec.
func (d *Driver) Get(r *volume.GetRequest) (*volume.GetResponse, error) {
	ctx, cancel := d.reqCtx(1)
	defer cancel()
	if !d.live.Alive() && d.opt.Known.Has(r.Name) {
		// Past its cut-off the host is self-fencing, and Docker calls Get
		// before each Unmount of a stopped container: waiting on an etcd
		// this host may not reach would hold the unmount past the moment
		// peers may take the volume over.
		return &volume.GetResponse{Volume: unknownVolume(r.Name, d.mountpoint(r.Name),
			fmt.Sprintf("host %s has no current etcd lease, so it does not read the cluster's state", d.opt.Host))}, nil
	}
	v, err := d.get(ctx, r.Name)
	var ee *store.EtcdError
	if errors.Is(err, store.ErrUnavailable) && errors.As(err, &ee) && d.opt.Known.Has(r.Name) {
		// Any error would make Docker forget the volume (Known).
		d.log.WithError(err).WithField("volume", r.Name).Warn("etcd does not answer: Get answers from the volumes this host knows")
		return &volume.GetResponse{Volume: unknownVolume(r.Name, d.mountpoint(r.Name), ee.Error())}, nil
	}
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
	if vol.Grow != nil {
		status["grown"] = growStatus(vol.Grow)
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
	v := &volume.Volume{Name: name, CreatedAt: vol.CreatedAt.Format(time.RFC3339), Status: status, Mountpoint: d.mountpoint(name)}
	if v.Mountpoint != "" {
		if dev, _ := d.device(ctx, name); dev != "" {
			status["device"] = dev
		}
	}
	return v, nil
}

// List implements volume.Driver: every volume of the cluster, from the
// cache following etcd when there is one (Options.Listing), else read from
// etcd; from the volumes this host knows while etcd does not answer.
func (d *Driver) List() (*volume.ListResponse, error) {
	mark := d.opt.Known.Mark()
	vols, err := d.listVolumes()
	if errors.Is(err, store.ErrUnavailable) {
		d.log.WithError(err).Warn("etcd does not answer: List answers the volumes this host knows")
		return knownList(d.opt.Known, d.mountpoint), nil
	}
	if err != nil {
		return nil, d.fail("list", "", err)
	}
	names := make([]string, 0, len(vols))
	resp := &volume.ListResponse{Volumes: make([]*volume.Volume, 0, len(vols))}
	for _, v := range vols {
		names = append(names, v.Name)
		resp.Volumes = append(resp.Volumes, &volume.Volume{Name: v.Name, CreatedAt: v.CreatedAt.Format(time.RFC3339), Mountpoint: d.mountpoint(v.Name)})
	}
	if err := d.opt.Known.Sync(mark, names); err != nil {
		d.log.WithError(err).Warn("cannot keep the known volumes")
	}
	return resp, nil
}

// listVolumes is every volume record, sorted by name.
func (d *Driver) listVolumes() ([]store.Volume, error) {
	ctx, cancel := d.reqCtx(1)
	defer cancel()
	if d.opt.Listing != nil {
		if vols, ok := d.opt.Listing.Volumes(ctx); ok {
			return vols, nil
		}
	}
	recs, err := d.store.ListVolumes(ctx)
	if err != nil {
		return nil, err
	}
	vols := make([]store.Volume, 0, len(recs))
	for name, r := range recs {
		r.Value.Name = name
		vols = append(vols, r.Value)
	}
	sort.Slice(vols, func(i, j int) bool { return vols[i].Name < vols[j].Name })
	return vols, nil
}

// Capabilities implements volume.Driver: volumes are cluster-wide.
func (d *Driver) Capabilities() *volume.CapabilitiesResponse { return capabilities() }

func capabilities() *volume.CapabilitiesResponse {
	return &volume.CapabilitiesResponse{Capabilities: volume.Capability{Scope: "global"}}
}

func (d *Driver) getVolume(ctx context.Context, name string) (store.Volume, int64, error) {
	v, rev, err := d.store.GetVolume(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		d.know(name, false)
		err = newErr(ErrNotFound, "volume %q not found: create it with `docker volume create -d relocvol %s`", name, name)
	case err == nil:
		d.know(name, true)
	}
	return v, rev, err
}

// know records what etcd said of name: a volume of the cluster or not. A
// failure to keep it is logged: the set only serves Get while etcd is down.
func (d *Driver) know(name string, exists bool) {
	record := d.opt.Known.Forget
	if exists {
		record = d.opt.Known.Add
	}
	if err := record(name); err != nil {
		d.log.WithError(err).Warn("cannot keep the known volumes")
	}
}

// mountpoint is where containers find name's data when it is mounted on
// this host, else "".
func (d *Driver) mountpoint(name string) string {
	if d.MountCount(name) > 0 {
		return d.dataPath(name)
	}
	return ""
}
