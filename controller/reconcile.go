package controller

import (
	"maps"
	"slices"
	"sort"

	"github.com/docker/docker/api/types/container"

	"github.com/relocvol/relocvol/internal/store"
)

// hostView is what the agent's reconciliation decides from: this host's
// relocatable containers as the engine lists them, the apps and who runs
// them as etcd has them, and the agent's own state (apps with work in
// progress, containers self-fencing stopped).
type hostView struct {
	Host        string
	Containers  []container.Summary // this host's containers labelled relocvol.relocate
	Apps        map[string]store.Versioned[store.App]
	Running     map[string]string // app → the host recorded running it
	Busy        map[string]bool   // apps with a start, stop or removal in progress here
	SelfStopped map[string]bool   // containers self-fencing stopped (restart candidates)
	// Unsigned are the apps placed here whose record no agent of this
	// cluster signed as it is (verifyApp's error): never started from it.
	Unsigned map[string]error
}

// stepKind is one thing the agent does to bring this host in line.
type stepKind int

const (
	// stepAdopt records a relocatable container etcd does not know (if it
	// may be an app at all: adoption decides).
	stepAdopt stepKind = iota
	// stepMarkRunning records that this host runs an app placed here.
	stepMarkRunning
	// stepFinish ends the app's relocation: it runs here, or stays stopped
	// as its user left it.
	stepFinish
	// stepStartExisting starts the app's stopped container here (a
	// relocation's target, or a container self-fencing stopped).
	stepStartExisting
	// stepClearRunning drops this host's stale "running" record of an app
	// stopped here.
	stepClearRunning
	// stepRemoveCopy removes this host's copy of an app placed elsewhere.
	stepRemoveCopy
	// stepRestartPlain starts again a container self-fencing stopped that
	// is no app: it never moves.
	stepRestartPlain
	// stepForget deletes the record of an app placed here, settled, whose
	// container is gone (removed while no event reached the agent).
	stepForget
	// stepStartNew creates and starts a relocated app's container here.
	stepStartNew
	// stepRecord records again, and signs, an app placed here whose
	// container runs here but whose record is not signed as it is (one
	// an older relocvol wrote): what runs here is what an agent records.
	stepRecord
	// stepRefuse reports that an app placed here is not started: no agent
	// of this cluster signed its record as it is.
	stepRefuse
)

var stepNames = map[stepKind]string{
	stepAdopt: "adopt", stepMarkRunning: "mark running", stepFinish: "finish", stepStartExisting: "start existing",
	stepClearRunning: "clear running", stepRemoveCopy: "remove copy", stepRestartPlain: "restart plain",
	stepForget: "forget", stepStartNew: "start new", stepRecord: "record", stepRefuse: "refuse",
}

func (k stepKind) String() string { return stepNames[k] }

// step is one action of a reconciliation, on the app (or plain container)
// Name.
type step struct {
	Kind      stepKind
	Name      string
	Container container.Summary // adopt, start existing, remove copy
	App       store.App         // start existing, remove copy, start new
	Rev       int64             // forget, record: the record's revision
	Restart   bool              // start existing: self-fencing stopped it
	Why       error             // refuse: why the record is not trusted
}

// untrusted says why this host may not start app from its record (nil: it
// may): no agent signed it as it is, or it is placed on a host its signed
// label relocvol.hosts leaves out.
func untrusted(v hostView, name string, app store.App) error {
	if err := v.Unsigned[name]; err != nil {
		return err
	}
	return allowedHere(app, v.Host)
}

// reconcilePlan decides what brings this host in line with etcd, and how
// many apps placed here run here. Apps with work in progress are left
// alone; everything else follows where etcd places each app: it runs
// where placed, its copies elsewhere go, a container nobody knows is
// adopted. Only a record an agent signed is started from (a container
// running here is recorded again instead); the others are refused. Steps
// come in a stable order (containers by name, then apps by name), so that
// a table test can state them.
func reconcilePlan(v hostView) (steps []step, running int) {
	containers := append([]container.Summary(nil), v.Containers...)
	sort.Slice(containers, func(i, j int) bool { return containerName(containers[i].Names) < containerName(containers[j].Names) })
	local := map[string]bool{}
	for _, c := range containers {
		if !relocatable(c.Labels) {
			continue
		}
		name := containerName(c.Names)
		local[name] = true
		if v.Busy[name] {
			continue
		}
		app, known := v.Apps[name]
		switch {
		case !known:
			steps = append(steps, step{Kind: stepAdopt, Name: name, Container: c})
		case app.Value.Host != v.Host:
			steps = append(steps, step{Kind: stepRemoveCopy, Name: name, Container: c, App: app.Value})
		case c.State == "running":
			running++
			if v.Unsigned[name] != nil {
				steps = append(steps, step{Kind: stepRecord, Name: name, Container: c, App: app.Value, Rev: app.Rev})
			}
			if v.Running[name] != v.Host {
				steps = append(steps, step{Kind: stepMarkRunning, Name: name})
			}
			if app.Value.Relocation != nil {
				steps = append(steps, step{Kind: stepFinish, Name: name})
			}
		case app.Value.Relocation != nil && app.Value.Stopped:
			steps = append(steps, step{Kind: stepFinish, Name: name}) // relocated as the user left it: stopped
		case app.Value.Relocation == nil && v.SelfStopped[name] && v.Unsigned[name] != nil:
			// Its own container, stopped by self-fencing: restarted as
			// it is, if its record is one an agent signed.
			steps = append(steps, step{Kind: stepRefuse, Name: name, App: app.Value, Why: v.Unsigned[name]})
		case app.Value.Relocation != nil && untrusted(v, name, app.Value) != nil:
			steps = append(steps, step{Kind: stepRefuse, Name: name, App: app.Value, Why: untrusted(v, name, app.Value)})
		case v.SelfStopped[name] || app.Value.Relocation != nil:
			steps = append(steps, step{Kind: stepStartExisting, Name: name, Container: c, App: app.Value, Restart: v.SelfStopped[name]})
		case v.Running[name] == v.Host:
			steps = append(steps, step{Kind: stepClearRunning, Name: name})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(v.SelfStopped)) {
		if _, app := v.Apps[name]; !app && !v.Busy[name] {
			steps = append(steps, step{Kind: stepRestartPlain, Name: name})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(v.Apps)) {
		app := v.Apps[name]
		if app.Value.Host != v.Host || local[name] || v.Busy[name] {
			continue
		}
		switch {
		case app.Value.Relocation == nil:
			steps = append(steps, step{Kind: stepForget, Name: name, Rev: app.Rev})
		case untrusted(v, name, app.Value) != nil:
			steps = append(steps, step{Kind: stepRefuse, Name: name, App: app.Value, Why: untrusted(v, name, app.Value)})
		default:
			steps = append(steps, step{Kind: stepStartNew, Name: name, App: app.Value})
		}
	}
	return steps, running
}
