package controller

import (
	"strings"
	"testing"
	"time"
)

func TestPlan(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	const grace = 8 * time.Second
	alive := HostView{Alive: true, Agent: true}
	noAgent := HostView{Alive: true} // serves volumes only (--docker-host empty)
	dead := HostView{DownSince: now.Add(-10 * time.Second)}
	justDown := HostView{DownSince: now.Add(-3 * time.Second)}                  // within grace
	deadFenced := HostView{DownSince: now.Add(-30 * time.Second), Fenced: true} // a mark names it
	deadProven := HostView{DownSince: now.Add(-30 * time.Second), Fenced: true, Proven: true}
	backFenced := HostView{Alive: true, Agent: true, Fenced: true} // rejoining, not clean yet
	app := func(host string, vols ...string) AppView { return AppView{Host: host, Volumes: vols} }
	only := func(host string, allowed ...string) AppView { return AppView{Host: host, Allowed: allowed} }

	for _, tc := range []struct {
		name string
		s    Snapshot
		want []string
	}{
		{name: "all alive: nothing", s: Snapshot{
			Hosts: map[string]HostView{"a": alive, "b": alive},
			Apps:  map[string]AppView{"db": app("a", "db")}, Claims: map[string]string{"db": "a"},
		}},
		{name: "empty cluster", s: Snapshot{}},
		{name: "a dead host in maintenance keeps its apps and volumes", s: Snapshot{
			Hosts: map[string]HostView{"a": {DownSince: now.Add(-time.Hour), Maintenance: true}, "b": alive},
			Apps:  map[string]AppView{"db": app("a", "db")}, Claims: map[string]string{"db": "a"},
		}},
		{name: "a live host in maintenance gets no apps", s: Snapshot{
			Hosts: map[string]HostView{"a": dead, "b": {Alive: true, Agent: true, Maintenance: true}, "c": alive},
			Apps:  map[string]AppView{"db": app("a", "db"), "x": app("c"), "y": app("c")}, Claims: map[string]string{"db": "a"},
		}, want: []string{"fence a", "release db from a", "place db on c"}},
		{name: "one dead host with one app", s: Snapshot{
			Hosts: map[string]HostView{"a": dead, "b": alive},
			Apps:  map[string]AppView{"db": app("a", "db")}, Claims: map[string]string{"db": "a"},
		}, want: []string{"fence a", "release db from a", "place db on b"}},
		{name: "order is fence, release, place", s: Snapshot{
			Hosts:  map[string]HostView{"a": dead, "b": alive},
			Apps:   map[string]AppView{"db": app("a", "db", "wal"), "web": app("a", "static")},
			Claims: map[string]string{"db": "a", "wal": "a", "static": "a"},
		}, want: []string{"fence a", "release db from a", "release static from a", "release wal from a", "place db on b", "place web on b"}},
		{name: "within the grace period: wait", s: Snapshot{
			Hosts: map[string]HostView{"a": justDown, "b": alive},
			Apps:  map[string]AppView{"db": app("a", "db")}, Claims: map[string]string{"db": "a"},
		}},
		{name: "exactly at the grace period: act", s: Snapshot{
			Hosts: map[string]HostView{"a": {DownSince: now.Add(-grace)}, "b": alive},
			Apps:  map[string]AppView{"db": app("a", "db")}, Claims: map[string]string{"db": "a"},
		}, want: []string{"fence a", "release db from a", "place db on b"}},
		{name: "flapping host back alive: nothing", s: Snapshot{
			Hosts: map[string]HostView{"a": alive, "b": alive},
			Apps:  map[string]AppView{"db": app("a", "db")}, Claims: map[string]string{"db": "a"},
		}},
		{name: "least loaded survivor", s: Snapshot{
			Hosts:  map[string]HostView{"a": dead, "b": alive, "c": alive},
			Apps:   map[string]AppView{"db": app("a", "db"), "x": app("b"), "y": app("b")},
			Claims: map[string]string{"db": "a"},
		}, want: []string{"fence a", "release db from a", "place db on c"}},
		{name: "ties go by name", s: Snapshot{
			Hosts: map[string]HostView{"a": dead, "c": alive, "b": alive},
			Apps:  map[string]AppView{"db": app("a")},
		}, want: []string{"fence a", "place db on b"}},
		{name: "several apps spread over survivors", s: Snapshot{
			Hosts: map[string]HostView{"a": dead, "b": alive, "c": alive},
			Apps:  map[string]AppView{"p1": app("a"), "p2": app("a"), "p3": app("a")},
		}, want: []string{"fence a", "place p1 on b", "place p2 on c", "place p3 on b"}},
		{name: "two dead hosts", s: Snapshot{
			Hosts:  map[string]HostView{"a": dead, "b": dead, "c": alive},
			Apps:   map[string]AppView{"x": app("a", "vx"), "y": app("b", "vy")},
			Claims: map[string]string{"vx": "a", "vy": "b"},
		}, want: []string{"fence a", "fence b", "release vx from a", "release vy from b", "place x on c", "place y on c"}},
		{name: "two dead hosts, one within grace", s: Snapshot{
			Hosts: map[string]HostView{"a": dead, "b": justDown, "c": alive},
			Apps:  map[string]AppView{"x": app("a"), "y": app("b")},
		}, want: []string{"fence a", "place x on c"}},
		{name: "never onto a dead host", s: Snapshot{
			Hosts: map[string]HostView{"a": dead, "b": dead, "c": alive},
			Apps:  map[string]AppView{"x": app("a"), "y": app("c"), "z": app("c")},
		}, want: []string{"fence a", "place x on c"}},
		{name: "never onto a host within grace", s: Snapshot{
			Hosts: map[string]HostView{"a": dead, "b": justDown, "c": alive},
			Apps:  map[string]AppView{"x": app("a"), "y": app("c"), "z": app("c")},
		}, want: []string{"fence a", "place x on c"}},
		{name: "never onto a fenced host that came back", s: Snapshot{
			Hosts: map[string]HostView{"a": dead, "b": backFenced, "c": alive},
			Apps:  map[string]AppView{"x": app("a"), "y": app("c")},
		}, want: []string{"fence a", "place x on c"}},
		{name: "constraint picks the allowed host", s: Snapshot{
			Hosts: map[string]HostView{"a": dead, "b": alive, "c": alive},
			Apps:  map[string]AppView{"db": only("a", "a", "c"), "busy": app("c")},
		}, want: []string{"fence a", "place db on c"}},
		{name: "constraint cannot be met", s: Snapshot{
			Hosts: map[string]HostView{"a": dead, "b": alive},
			Apps:  map[string]AppView{"db": only("a", "a", "c")},
		}, want: []string{"fence a", "stuck db: none of its allowed hosts (relocvol.hosts=a,c) is alive with an agent; live hosts with one: b"}},
		{name: "constraint names a dead host only", s: Snapshot{
			Hosts: map[string]HostView{"a": dead, "b": alive},
			Apps:  map[string]AppView{"db": only("a", "a")},
		}, want: []string{"fence a", "stuck db: none of its allowed hosts (relocvol.hosts=a) is alive with an agent; live hosts with one: b"}},
		{name: "no survivors", s: Snapshot{
			Hosts: map[string]HostView{"a": dead, "b": dead},
			Apps:  map[string]AppView{"db": app("a", "db")}, Claims: map[string]string{"db": "a"},
		}, want: []string{"fence a", "release db from a", "stuck db: no live host is left"}},
		{name: "dead host with nothing on it: nothing", s: Snapshot{
			Hosts: map[string]HostView{"a": dead, "b": alive},
			Apps:  map[string]AppView{"db": app("b", "db")}, Claims: map[string]string{"db": "b"},
		}},
		{name: "dead host holding a claim without an app", s: Snapshot{
			Hosts:  map[string]HostView{"a": dead, "b": alive},
			Claims: map[string]string{"scratch": "a"},
		}, want: []string{"fence a", "release scratch from a"}},
		{name: "a mark alone does not replace fencing (leader changed after marking, or a stale mark)", s: Snapshot{
			Hosts: map[string]HostView{"a": deadFenced, "b": alive},
			Apps:  map[string]AppView{"db": app("a", "db")}, Claims: map[string]string{"db": "a"},
		}, want: []string{"fence a", "release db from a", "place db on b"}},
		{name: "fenced by this leader since it went down: not again", s: Snapshot{
			Hosts: map[string]HostView{"a": deadProven, "b": alive},
			Apps:  map[string]AppView{"db": app("a", "db")}, Claims: map[string]string{"db": "a"},
		}, want: []string{"release db from a", "place db on b"}},
		{name: "already released (leader changed after releasing)", s: Snapshot{
			Hosts: map[string]HostView{"a": deadFenced, "b": alive},
			Apps:  map[string]AppView{"db": app("a", "db")}, Claims: map[string]string{"db": ""},
		}, want: []string{"fence a", "place db on b"}},
		{name: "stuck app on a proven host: no fencing every step", s: Snapshot{
			Hosts: map[string]HostView{"a": deadProven},
			Apps:  map[string]AppView{"db": app("a", "db")}, Claims: map[string]string{"db": ""},
		}, want: []string{"stuck db: no live host is left"}},
		{name: "already placed (leader changed at the end)", s: Snapshot{
			Hosts: map[string]HostView{"a": deadFenced, "b": alive},
			Apps:  map[string]AppView{"db": app("b", "db")}, Claims: map[string]string{"db": ""},
		}},
		{name: "volume already taken by the new host", s: Snapshot{
			Hosts: map[string]HostView{"a": deadFenced, "b": alive},
			Apps:  map[string]AppView{"db": app("b", "db")}, Claims: map[string]string{"db": "b"},
		}},
		{name: "half the apps moved before the leader changed", s: Snapshot{
			Hosts: map[string]HostView{"a": deadFenced, "b": alive, "c": alive},
			Apps:  map[string]AppView{"p1": app("b"), "p2": app("a")},
		}, want: []string{"fence a", "place p2 on c"}},
		{name: "app placed on a host this leader never saw", s: Snapshot{
			Hosts: map[string]HostView{"b": alive},
			Apps:  map[string]AppView{"db": app("gone", "db")}, Claims: map[string]string{"db": "gone"},
		}, want: []string{"fence gone", "release db from gone", "place db on b"}},
		{name: "unplaced app is left alone", s: Snapshot{
			Hosts: map[string]HostView{"a": dead, "b": alive},
			Apps:  map[string]AppView{"new": app("")},
		}},
		{name: "a host without an agent is never picked, however idle", s: Snapshot{
			Hosts: map[string]HostView{"a": dead, "b": noAgent, "c": alive},
			Apps:  map[string]AppView{"db": app("a", "db"), "x": app("c"), "y": app("c")},
		}, want: []string{"fence a", "place db on c"}},
		{name: "only hosts without an agent survive: stuck", s: Snapshot{
			Hosts: map[string]HostView{"a": dead, "b": noAgent},
			Apps:  map[string]AppView{"db": app("a", "db")}, Claims: map[string]string{"db": "a"},
		}, want: []string{"fence a", "release db from a", "stuck db: no live host runs an agent (hosts without one, --docker-host empty: b)"}},
		{name: "the only allowed host has no agent: stuck", s: Snapshot{
			Hosts: map[string]HostView{"a": dead, "b": noAgent, "c": alive},
			Apps:  map[string]AppView{"db": only("a", "b")},
		}, want: []string{"fence a", "stuck db: none of its allowed hosts (relocvol.hosts=b) is alive with an agent; live hosts with one: c"}},
		{name: "survivor load counts the new placements", s: Snapshot{
			Hosts: map[string]HostView{"a": dead, "b": alive, "c": alive},
			Apps:  map[string]AppView{"p1": app("a"), "p2": app("a"), "q": app("b")},
		}, want: []string{"fence a", "place p1 on c", "place p2 on b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, a := range Plan(tc.s, now, grace) {
				got = append(got, a.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("plan:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

// A plan carried out step by step and planned again converges: the second
// plan of the resulting state is empty.
func TestPlanIsIdempotent(t *testing.T) {
	now := time.Now()
	s := Snapshot{
		Hosts:  map[string]HostView{"a": {DownSince: now.Add(-time.Minute)}, "b": {Alive: true, Agent: true}, "c": {Alive: true, Agent: true}},
		Apps:   map[string]AppView{"x": {Host: "a", Volumes: []string{"vx"}}, "y": {Host: "a", Volumes: []string{"vy"}}},
		Claims: map[string]string{"vx": "a", "vy": "a"},
	}
	for _, a := range Plan(s, now, time.Second) {
		switch a.Kind {
		case ActFence:
			h := s.Hosts[a.Host]
			h.Fenced, h.Proven = true, true
			s.Hosts[a.Host] = h
		case ActRelease:
			s.Claims[a.Volume] = ""
		case ActPlace:
			app := s.Apps[a.App]
			app.Host = a.To
			s.Apps[a.App] = app
		}
	}
	if again := Plan(s, now, time.Second); len(again) != 0 {
		t.Fatalf("second plan not empty: %v", again)
	}
}
