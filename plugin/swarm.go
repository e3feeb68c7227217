package plugin

import (
	"context"
	"fmt"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/relocvol/relocvol/internal/swarm"
)

// Containers is what the plugin asks of the local Docker engine (the
// engine's API client implements it): which containers use a volume.
type Containers interface {
	ContainerList(ctx context.Context, opts container.ListOptions) ([]container.Summary, error)
}

// volumeUser is a container of this host that uses a volume, as the engine
// lists it.
type volumeUser struct {
	Name   string
	State  string // created, running, paused, restarting, exited, dead, removing
	Labels map[string]string
}

// holds reports whether the container has the volume mounted now.
func (u volumeUser) holds() bool {
	switch u.State {
	case "running", "paused", "restarting":
		return true
	}
	return false
}

// starting reports whether the container is one the engine may be mounting
// the volume for: created, never started. Swarm makes a new container for
// every task and never restarts one, so a task being started is always
// created; the exited containers of earlier tasks are not.
func (u volumeUser) starting() bool { return u.State == "created" }

// swarmJoin decides whether one more mount ID may join a volume that this
// host has mounted already. Across hosts the claim keeps a second writer
// out; on one host, Docker itself shares a volume between containers, which
// relocvol allows (a backup sidecar, docker cp) except for a Swarm task:
// Swarm runs one task per slot, so a second task starting with the volume
// while a container still uses it is a second writer, which is what an
// update with --update-order start-first does. The engine does not say
// which container a Mount is for, so a Swarm task waiting to start with the
// volume while another container runs with it refuses the Mount (with ""
// the Mount may join). A refused Swarm task fails and Swarm retries it,
// which succeeds once the running container has stopped.
func swarmJoin(host, name string, users []volumeUser) string {
	var holders, waiting []volumeUser
	for _, u := range users {
		switch {
		case u.holds():
			holders = append(holders, u)
		case u.starting() && swarm.Task(u.Labels):
			waiting = append(waiting, u)
		}
	}
	if len(holders) == 0 || len(waiting) == 0 {
		return ""
	}
	h, w := holders[0], waiting[0]
	holder := "container " + h.Name
	stop := "stop " + h.Name
	if svc := swarm.Service(h.Labels); svc != "" {
		holder += fmt.Sprintf(" (a task of Swarm service %s)", svc)
		stop = fmt.Sprintf("Swarm starts it once that task stopped, which an update with --update-order start-first never does: "+
			"docker service update --update-order stop-first %s", svc)
	}
	return fmt.Sprintf("volume %q is in use on host %s by %s: a Swarm task has a relocvol volume to itself, "+
		"so task %s cannot start with it there meanwhile; %s", name, host, holder, w.Name, stop)
}

// checkSwarmJoin asks the engine for the volume's containers when a Mount
// would join mount IDs this host already has, and refuses it as swarmJoin
// decides. Without an engine (no --docker-host) there is nothing to ask.
func (d *Driver) checkSwarmJoin(ctx context.Context, name, id string) error {
	if d.opt.Docker == nil || !d.mountedByOthers(name, id) {
		return nil
	}
	list, err := d.opt.Docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("volume", name))})
	if err != nil {
		return wrapErr(ErrBusy, err, "volume %q is mounted on host %s already and the plugin cannot ask Docker (%s) whether a Swarm task would share it: try again",
			name, d.opt.Host, d.opt.DockerName)
	}
	users := make([]volumeUser, 0, len(list))
	for _, c := range list {
		users = append(users, volumeUser{Name: containerName(c), State: c.State, Labels: c.Labels})
	}
	if why := swarmJoin(d.opt.Host, name, users); why != "" {
		return newErr(ErrInUse, "%s", why)
	}
	return nil
}

// mountedByOthers reports whether this host counts mount IDs of the volume
// other than id.
func (d *Driver) mountedByOthers(name, id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for other := range d.mounts[name] {
		if other != id {
			return true
		}
	}
	return false
}

// containerName is a listed container's name, without the leading slash
// (its short ID when it has none).
func containerName(c container.Summary) string {
	if len(c.Names) > 0 {
		return strings.TrimPrefix(c.Names[0], "/")
	}
	if len(c.ID) > 12 {
		return c.ID[:12]
	}
	return c.ID
}
