package plugin_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-plugins-helpers/volume"

	"github.com/relocvol/relocvol/plugin"
)

// engine is a fake Docker engine's container list: what the test says the
// containers using each volume are. A fake, for this unit test only; the
// same refusal runs through real Docker in TestSwarm (e2e/cluster).
type engine struct {
	mu    sync.Mutex
	users []container.Summary
	err   error
	asked int
}

func (e *engine) set(err error, users ...container.Summary) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.users, e.err = users, err
}

func (e *engine) ContainerList(_ context.Context, opts container.ListOptions) ([]container.Summary, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.asked++
	if !opts.All || opts.Filters.Get("volume")[0] != "db" {
		return nil, errors.New("the plugin must list every container, stopped too, that uses the volume")
	}
	return e.users, e.err
}

func swarmTask(name, state string) container.Summary {
	return container.Summary{Names: []string{"/" + name}, State: state, Labels: map[string]string{
		"com.docker.swarm.task.id": name, "com.docker.swarm.service.name": "db"}}
}

// TestSwarmStartFirstRefused: Docker shares a volume between the containers
// of one host, so the claim alone lets a Swarm task updated with
// --update-order start-first write the volume beside the task it replaces.
// The second Mount is refused while a Swarm task waits to start with the
// volume and another container still runs with it.
func TestSwarmStartFirstRefused(t *testing.T) {
	c := newCluster(t)
	docker := &engine{}
	a := c.hostWith("node-a", "", "", hostOpts{docker: docker})
	mustCreate(t, a, "db", nil)

	// The first Mount asks nothing: there is nobody to share with.
	mustMount(t, a, "db", "old")
	if docker.asked != 0 {
		t.Fatalf("the engine was asked %d times for a first Mount", docker.asked)
	}

	// start-first: the old task runs, the new one is created and starting.
	docker.set(nil, swarmTask("db.1.old", "running"), swarmTask("db.1.new", "created"))
	_, err := a.drv.Mount(&volume.MountRequest{Name: "db", ID: "new"})
	wantErr(t, err, plugin.ErrInUse, `volume "db" is in use on host node-a by container db.1.old (a task of Swarm service db)`,
		"docker service update --update-order stop-first db")
	if n := a.drv.MountCount("db"); n != 1 {
		t.Fatalf("count %d after a refused Mount, want 1", n)
	}

	// An engine that does not answer refuses too: sharing cannot be checked.
	docker.set(errors.New("connection refused"))
	_, err = a.drv.Mount(&volume.MountRequest{Name: "db", ID: "new"})
	wantErr(t, err, plugin.ErrBusy, "cannot ask Docker (unix:///test/docker.sock)", "connection refused")

	// A plain container beside the running one (a backup sidecar) joins.
	docker.set(nil, container.Summary{Names: []string{"/db"}, State: "running"}, container.Summary{Names: []string{"/backup"}, State: "created"})
	mustMount(t, a, "db", "sidecar")
	mustUnmount(t, a, "db", "sidecar")

	// stop-first: the old task exited and unmounted; the new one mounts.
	mustUnmount(t, a, "db", "old")
	docker.set(nil, swarmTask("db.1.old", "exited"), swarmTask("db.1.new", "created"))
	mustMount(t, a, "db", "new")
	mustUnmount(t, a, "db", "new")
}
