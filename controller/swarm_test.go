package controller

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

// swarmLabels are the labels Docker puts on a Swarm task's container
// (daemon/cluster/executor/container), plus extra.
func swarmLabels(service string, extra map[string]string) map[string]string {
	l := map[string]string{
		"com.docker.swarm.task.id":      "t" + service,
		"com.docker.swarm.task.name":    service + ".1.t" + service,
		"com.docker.swarm.service.id":   "s" + service,
		"com.docker.swarm.service.name": service,
		"com.docker.swarm.node.id":      "n1",
	}
	maps.Copy(l, extra)
	return l
}

func TestAdoption(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels map[string]string
		adopt  bool
		why    bool // a reason is logged
	}{
		{name: "not labelled", labels: nil},
		{name: "relocvol.relocate=false", labels: map[string]string{LabelRelocate: "false"}},
		{name: "relocatable standalone container", labels: relocate, adopt: true},
		{name: "relocatable, with host constraints", labels: map[string]string{LabelRelocate: "yes", LabelHosts: "a,b"}, adopt: true},
		{name: "a Swarm task labelled relocvol.relocate=true", labels: swarmLabels("db", relocate), why: true},
		{name: "a Swarm task without the label", labels: swarmLabels("db", nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			adopt, why := adoption(tc.labels)
			if adopt != tc.adopt || (why != "") != tc.why {
				t.Fatalf("adoption = %v, %q; want %v, reason given %v", adopt, why, tc.adopt, tc.why)
			}
		})
	}
}

func TestRestartAfterSelfFencing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   bool
	}{
		{name: "plain container using a relocvol volume", want: true},
		{name: "relocatable app", labels: relocate, want: true},
		{name: "Swarm task: Swarm has replaced it", labels: swarmLabels("db", nil)},
		{name: "Swarm task labelled relocvol.relocate=true", labels: swarmLabels("db", relocate)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := restartAfterSelfFencing(tc.labels); got != tc.want {
				t.Fatalf("restartAfterSelfFencing = %v, want %v", got, tc.want)
			}
		})
	}
}

// Swarm tasks are Swarm's: the agent never records one as an app, even
// labelled relocvol.relocate=true; self-fencing stops them like any
// container using a relocvol volume, but once the host is back the agent
// never starts them again (Swarm has started their replacement, maybe on
// another host), while a plain container comes back as before.
func TestAgentLeavesSwarmTasksToSwarm(t *testing.T) {
	st, hb, d, a, ctx := agentEnv(t)
	for _, v := range []string{"db2", "db3", "db4"} {
		if _, _, _, err := st.CreateVolume(ctx, store.Volume{Name: v, State: store.StateReady}); err != nil {
			t.Fatal(err)
		}
	}
	d.add("pg", true, relocate, "db")
	d.add("db.1.tdb", true, swarmLabels("db", relocate), "db2")
	d.add("web.1.tweb", true, swarmLabels("web", nil), "db3")
	d.add("job", true, nil, "db4")
	go a.Run(ctx)
	testenv.WaitFor(t, "pg recorded", 10*time.Second, func() bool { _, _, err := st.GetApp(ctx, "pg"); return err == nil })
	time.Sleep(1200 * time.Millisecond) // a reconcile pass after pg's
	if apps, _ := st.ListApps(ctx); len(apps) != 1 {
		t.Fatalf("apps %v: want pg only, no Swarm task", slices.Collect(maps.Keys(apps)))
	}

	if _, err := st.Client().Revoke(ctx, hb.Lease()); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "everything using relocvol stopped", 10*time.Second, func() bool {
		return d.state("db.1.tdb") == "exited" && d.state("web.1.tweb") == "exited" && d.state("job") == "exited"
	})
	testenv.WaitFor(t, "heartbeat rejoined", 10*time.Second, hb.Alive)
	testenv.WaitFor(t, "job and pg running again", 10*time.Second, func() bool { return d.state("job") == "running" && d.state("pg") == "running" })
	time.Sleep(2500 * time.Millisecond) // a full reconcile period: nothing changes any more
	for _, name := range []string{"db.1.tdb", "web.1.tweb"} {
		if got := d.state(name); got != "exited" {
			t.Errorf("Swarm task %s is %s after the host came back, want exited; docker calls %v", name, got, d.log())
		}
	}
	if apps, _ := st.ListApps(ctx); len(apps) != 1 {
		t.Fatalf("apps %v: want pg only", slices.Collect(maps.Keys(apps)))
	}
}
