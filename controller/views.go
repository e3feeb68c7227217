package controller

import (
	"context"
	"sort"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
)

// The API's views of the cluster. Each reads the store once (one
// revision, store.Snapshot), so that a host, its claims and its fencing
// mark are shown as they were at one moment.

// Status implements api.Service.
func (c *Controller) Status(ctx context.Context) (api.Status, error) {
	s := api.Status{Host: c.opt.Host, Version: c.opt.Version, Alive: c.opt.Beat.Alive()}
	var err error
	if s.Leader, err = c.st.Leader(ctx); err != nil {
		return s, err
	}
	snap, err := c.st.Snapshot(ctx)
	if err != nil {
		return s, err
	}
	hosts := c.hostsOf(ctx, snap, s.Leader)
	s.Hosts = len(hosts)
	for _, h := range hosts {
		if h.Alive {
			s.HostsAlive++
		}
	}
	s.Volumes = len(snap.Volumes)
	s.Apps = len(snap.Apps)
	for _, a := range snap.Apps {
		if a.Value.Relocation != nil {
			s.Relocating++
		}
	}
	return s, nil
}

// Hosts implements api.Service: live hosts, and dead ones that still hold
// claims, apps or a fencing mark.
func (c *Controller) Hosts(ctx context.Context) ([]api.Host, error) {
	leader, err := c.st.Leader(ctx)
	if err != nil {
		return nil, err
	}
	snap, err := c.st.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return c.hostsOf(ctx, snap, leader), nil
}

// hostsOf is Hosts from a snapshot; each live host's lease age is asked of
// etcd (a lease's time to live is no record).
func (c *Controller) hostsOf(ctx context.Context, snap store.Snapshot, leader string) []api.Host {
	byName := map[string]*api.Host{}
	get := func(name string) *api.Host {
		if h, ok := byName[name]; ok {
			return h
		}
		h := &api.Host{Name: name, Leader: name == leader}
		byName[name] = h
		return h
	}
	for name, h := range snap.Hosts {
		hv := get(name)
		hv.Alive, hv.Version, hv.Agent = true, h.Value.Version, h.Value.Agent
		started := h.Value.Started
		hv.Started = &started
		if st, err := c.st.HostState(ctx, name); err == nil {
			hv.Alive = st.Alive
			hv.LeaseAgeSeconds = st.LastRenewed.Seconds()
		}
	}
	for name, m := range snap.Maintenance {
		am := apiMaintenance(m.Value)
		get(name).Maintenance = &am
	}
	for name, f := range snap.Fences {
		hv := get(name)
		at := f.Value.At
		hv.Fenced, hv.FencedBy, hv.FencedAt = true, f.Value.By, &at
	}
	for _, a := range snap.Apps {
		get(a.Value.Host).Apps++
	}
	for _, cl := range snap.Claims {
		if cl.Value.Held() {
			get(cl.Value.Host).Volumes++
		}
	}
	out := make([]api.Host, 0, len(byName))
	for _, h := range byName {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Volumes implements api.Service.
func (c *Controller) Volumes(ctx context.Context) ([]api.Volume, error) {
	snap, err := c.st.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.Volume, 0, len(snap.Volumes))
	for name, v := range snap.Volumes {
		cl := snap.Claims[name].Value
		_, alive := snap.Hosts[cl.Host]
		out = append(out, api.Volume{
			Name: name, Backend: v.Value.Backend, Size: v.Value.Size, SizeHuman: spec.FormatSize(v.Value.Size),
			FS: v.Value.FS, State: v.Value.State, Owner: cl.Host, OwnerAlive: cl.Held() && alive,
			Epoch: cl.Epoch, Mounts: len(cl.Mounts), CreatedBy: v.Value.CreatedBy, CreatedAt: v.Value.CreatedAt,
		})
		if v.Value.Grow != nil {
			g := growView(name, v.Value)
			out[len(out)-1].Grow = &g
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Apps implements api.Service.
func (c *Controller) Apps(ctx context.Context) ([]api.App, error) {
	snap, err := c.st.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.App, 0, len(snap.Apps))
	for name, a := range snap.Apps {
		v := a.Value
		out = append(out, api.App{Name: name, Image: v.Spec.Image, Volumes: v.Volumes, DesiredHost: v.Host,
			ActualHost: snap.Running[name], Allowed: v.Allowed, Stopped: v.Stopped})
		if v.Relocation != nil {
			r := apiRelocation(*v.Relocation)
			out[len(out)-1].Relocation = &r
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Events implements api.Service: the newest events matching f, oldest
// first.
func (c *Controller) Events(ctx context.Context, f api.EventFilter) ([]api.Event, error) {
	all, err := c.st.ListEvents(ctx, eventScan(f))
	if err != nil {
		return nil, err
	}
	return pickEvents(all, f), nil
}

// FollowEvents implements api.Service: fn gets what Events returns, one
// event at a time, then listed is told, then fn gets each new event
// matching f as it is written, until ctx ends or fn fails. Nothing polls:
// the store watches etcd from the list's revision.
func (c *Controller) FollowEvents(ctx context.Context, f api.EventFilter, listed func() error, fn func(api.Event) error) error {
	return c.st.FollowEvents(ctx, eventScan(f),
		func(past []store.Event) error {
			for _, e := range pickEvents(past, f) {
				if err := fn(e); err != nil {
					return err
				}
			}
			return listed()
		},
		func(e store.Event) error {
			if !eventMatches(e, f) {
				return nil
			}
			return fn(api.Event(e))
		})
}

// eventScan is how many of the newest events to read for f: a filtered
// list looks through all that are kept.
func eventScan(f api.EventFilter) int64 {
	if f.App != "" || f.Relocation != "" {
		return eventsKept
	}
	return int64(f.Limit)
}

// pickEvents is the newest f.Limit of all (oldest first) that match f.
func pickEvents(all []store.Event, f api.EventFilter) []api.Event {
	out := make([]api.Event, 0, len(all))
	for _, e := range all {
		if eventMatches(e, f) {
			out = append(out, api.Event(e)) // the same fields: a change to one breaks this build
		}
	}
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[len(out)-f.Limit:]
	}
	return out
}

func eventMatches(e store.Event, f api.EventFilter) bool {
	return (f.App == "" || e.App == f.App) && (f.Relocation == "" || e.Relocation == f.Relocation)
}

// apiRelocation is a relocation as the API shows it.
func apiRelocation(r store.Relocation) api.Relocation {
	return api.Relocation{ID: r.ID, Kind: r.Kind, From: r.From, To: r.To, Started: r.Started}
}
