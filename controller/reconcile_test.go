package controller

import (
	"fmt"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/relocvol/relocvol/internal/store"
)

func TestReconcilePlan(t *testing.T) {
	ctr := func(name, state string) container.Summary {
		return container.Summary{ID: "id-" + name, Names: []string{"/" + name}, State: state, Labels: map[string]string{LabelRelocate: "true"}}
	}
	moving := &store.Relocation{ID: "r1", Kind: "failover", From: "b", To: "a"}
	app := func(host string, rel *store.Relocation, stopped bool) store.Versioned[store.App] {
		return store.Versioned[store.App]{Value: store.App{Host: host, Relocation: rel, Stopped: stopped}, Rev: 7}
	}
	allowedOnly := func(a store.Versioned[store.App], hosts ...string) store.Versioned[store.App] {
		a.Value.Allowed = hosts
		return a
	}
	unsigned := func(names ...string) map[string]error {
		out := map[string]error{}
		for _, n := range names {
			out[n] = errUnsigned
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		view    hostView
		want    string // the steps, "kind name" joined by "; "
		running int
	}{
		{"nothing here, nothing placed", hostView{}, "", 0},
		{"an unknown relocatable container is adopted",
			hostView{Containers: []container.Summary{ctr("db", "running")}}, "adopt db", 0},
		{"a container without the label is not ours",
			hostView{Containers: []container.Summary{{Names: []string{"/x"}, State: "running"}}}, "", 0},
		{"an app running where placed and recorded so: nothing",
			hostView{Containers: []container.Summary{ctr("db", "running")}, Apps: map[string]store.Versioned[store.App]{"db": app("a", nil, false)},
				Running: map[string]string{"db": "a"}}, "", 1},
		{"an app running where placed, not yet recorded",
			hostView{Containers: []container.Summary{ctr("db", "running")}, Apps: map[string]store.Versioned[store.App]{"db": app("a", nil, false)}},
			"mark running db", 1},
		{"a relocated app running here: recorded and finished",
			hostView{Containers: []container.Summary{ctr("db", "running")}, Apps: map[string]store.Versioned[store.App]{"db": app("a", moving, false)}},
			"mark running db; finish db", 1},
		{"relocated here stopped as its user left it: finished, not started",
			hostView{Containers: []container.Summary{ctr("db", "exited")}, Apps: map[string]store.Versioned[store.App]{"db": app("a", moving, true)}},
			"finish db", 0},
		{"relocated here, its container exists stopped: started",
			hostView{Containers: []container.Summary{ctr("db", "exited")}, Apps: map[string]store.Versioned[store.App]{"db": app("a", moving, false)}},
			"start existing db", 0},
		{"self-fencing stopped it and etcd still places it here: restarted",
			hostView{Containers: []container.Summary{ctr("db", "exited")}, Apps: map[string]store.Versioned[store.App]{"db": app("a", nil, false)},
				SelfStopped: map[string]bool{"db": true}}, "start existing db (restart)", 0},
		{"stopped by its user, still recorded running here: the record goes",
			hostView{Containers: []container.Summary{ctr("db", "exited")}, Apps: map[string]store.Versioned[store.App]{"db": app("a", nil, true)},
				Running: map[string]string{"db": "a"}}, "clear running db", 0},
		{"stopped by its user, not recorded running: left as it is",
			hostView{Containers: []container.Summary{ctr("db", "exited")}, Apps: map[string]store.Versioned[store.App]{"db": app("a", nil, true)}}, "", 0},
		{"a copy of an app placed elsewhere is removed",
			hostView{Containers: []container.Summary{ctr("db", "running")}, Apps: map[string]store.Versioned[store.App]{"db": app("b", nil, false)}},
			"remove copy db", 0},
		{"an app with work in progress is left alone",
			hostView{Containers: []container.Summary{ctr("db", "running")}, Apps: map[string]store.Versioned[store.App]{"db": app("b", nil, false), "web": app("a", moving, false)},
				Busy: map[string]bool{"db": true, "web": true}}, "", 0},
		{"placed here by a relocation, no container yet: created",
			hostView{Apps: map[string]store.Versioned[store.App]{"db": app("a", moving, false)}}, "start new db", 0},
		{"placed here and settled, its container gone: forgotten",
			hostView{Apps: map[string]store.Versioned[store.App]{"db": app("a", nil, false)}}, "forget db@7", 0},
		{"placed elsewhere, no container here: nothing",
			hostView{Apps: map[string]store.Versioned[store.App]{"db": app("b", moving, false)}}, "", 0},
		{"a plain container self-fencing stopped comes back; a busy one waits",
			hostView{SelfStopped: map[string]bool{"cache": true, "job": true}, Busy: map[string]bool{"job": true}}, "restart plain cache", 0},
		{"an app self-fencing stopped is not restarted as a plain container",
			hostView{SelfStopped: map[string]bool{"db": true}, Apps: map[string]store.Versioned[store.App]{"db": app("b", nil, false)}}, "", 0},
		{"an unsigned record of a container running here: recorded again, and signed",
			hostView{Containers: []container.Summary{ctr("db", "running")}, Apps: map[string]store.Versioned[store.App]{"db": app("a", nil, false)},
				Running: map[string]string{"db": "a"}, Unsigned: unsigned("db")}, "record db@7", 1},
		{"an unsigned record relocated here, its container running: recorded again and finished",
			hostView{Containers: []container.Summary{ctr("db", "running")}, Apps: map[string]store.Versioned[store.App]{"db": app("a", moving, false)}, Unsigned: unsigned("db")},
			"record db@7; mark running db; finish db", 1},
		{"an unsigned record placed here by a relocation: refused, never created",
			hostView{Apps: map[string]store.Versioned[store.App]{"db": app("a", moving, false)}, Unsigned: unsigned("db")}, "refuse db", 0},
		{"an unsigned record of a stopped container here, relocated: refused, not started",
			hostView{Containers: []container.Summary{ctr("db", "exited")}, Apps: map[string]store.Versioned[store.App]{"db": app("a", moving, false)}, Unsigned: unsigned("db")},
			"refuse db", 0},
		{"an unsigned record of a container self-fencing stopped: refused, not restarted",
			hostView{Containers: []container.Summary{ctr("db", "exited")}, Apps: map[string]store.Versioned[store.App]{"db": app("a", nil, false)},
				SelfStopped: map[string]bool{"db": true}, Unsigned: unsigned("db")}, "refuse db", 0},
		{"an unsigned record placed here and settled, no container: forgotten as any",
			hostView{Apps: map[string]store.Versioned[store.App]{"db": app("a", nil, false)}, Unsigned: unsigned("db")}, "forget db@7", 0},
		{"placed here by a relocation, its signed label allows only b: refused, never created",
			hostView{Host: "a", Apps: map[string]store.Versioned[store.App]{"db": allowedOnly(app("a", moving, false), "b")}}, "refuse db", 0},
		{"its container here, relocated, its label allows only b: refused, not started",
			hostView{Host: "a", Containers: []container.Summary{ctr("db", "exited")}, Apps: map[string]store.Versioned[store.App]{"db": allowedOnly(app("a", moving, false), "b")}},
			"refuse db", 0},
		{"running here although its label allows only b: left running, not recorded again",
			hostView{Host: "a", Containers: []container.Summary{ctr("db", "running")}, Apps: map[string]store.Versioned[store.App]{"db": allowedOnly(app("a", nil, false), "b")},
				Running: map[string]string{"db": "a"}}, "", 1},
		{"its own container, self-fencing stopped it, though its label allows only b: restarted as it is",
			hostView{Host: "a", Containers: []container.Summary{ctr("db", "exited")}, Apps: map[string]store.Versioned[store.App]{"db": allowedOnly(app("a", nil, false), "b")},
				SelfStopped: map[string]bool{"db": true}}, "start existing db (restart)", 0},
		{"placed here by a relocation, its label allows a: started",
			hostView{Host: "a", Apps: map[string]store.Versioned[store.App]{"db": allowedOnly(app("a", moving, false), "a", "b")}}, "start new db", 0},
		{"an unsigned record of a container stopped by its user: left as it is",
			hostView{Containers: []container.Summary{ctr("db", "exited")}, Apps: map[string]store.Versioned[store.App]{"db": app("a", nil, true)}, Unsigned: unsigned("db")}, "", 0},
		{"many at once, containers by name, then plain restarts, then apps by name",
			hostView{
				Containers: []container.Summary{ctr("web", "running"), ctr("db", "running"), ctr("new", "created")},
				Apps: map[string]store.Versioned[store.App]{
					"db": app("a", nil, false), "web": app("b", nil, false), "queue": app("a", moving, false), "old": app("a", nil, false)},
				Running:     map[string]string{"db": "a"},
				SelfStopped: map[string]bool{"cron": true},
			},
			"adopt new; remove copy web; restart plain cron; forget old@7; start new queue", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.view.Host = "a"
			steps, running := reconcilePlan(tc.view)
			var got []string
			for _, s := range steps {
				w := s.Kind.String() + " " + s.Name
				switch {
				case s.Kind == stepForget || s.Kind == stepRecord:
					w += fmt.Sprintf("@%d", s.Rev)
				case s.Restart:
					w += " (restart)"
				}
				if s.Kind == stepRefuse && s.Why == nil {
					t.Errorf("step %s says no why", w)
				}
				if (s.Kind == stepAdopt || s.Kind == stepStartExisting || s.Kind == stepRemoveCopy || s.Kind == stepRecord) && s.Container.ID != "id-"+s.Name {
					t.Errorf("step %s carries container %q", w, s.Container.ID)
				}
				got = append(got, w)
			}
			if g := strings.Join(got, "; "); g != tc.want {
				t.Errorf("steps\n%s\nwant\n%s", g, tc.want)
			}
			if running != tc.running {
				t.Errorf("running %d, want %d", running, tc.running)
			}
		})
	}
}
