package controller

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// The failover decision is a pure function of what the leader sees, so that
// every case (one dead host, two, a flapping host, constraints that cannot
// be met, no survivors, a new leader half way through) is a table test, and
// so that running it again on the state a half-finished failover left
// behind does exactly the remaining steps. An executor performs the actions
// in the order given: fence, release, place.

// HostView is what the leader knows of one host.
type HostView struct {
	Alive bool
	// Agent: the host runs an agent (it has a Docker engine to start apps
	// with); only such hosts are given apps.
	Agent bool
	// DownSince is when the leader first saw the host's lease gone; zero
	// while alive.
	DownSince time.Time
	// Fenced: a fencing mark names the host (it is being or was fenced and
	// has not cleaned up and rejoined yet): nothing is placed on it. A mark
	// alone never counts as fenced.
	Fenced bool
	// Proven: this leader fenced the host itself (the method proved it cut
	// off) since the host went down, so it need not fence it again.
	Proven bool
	// Maintenance: the host announced maintenance (its plugin may be down
	// while its containers run): it is neither failed over nor given apps
	// until the maintenance ends.
	Maintenance bool
}

// AppView is one relocatable container as the leader knows it.
type AppView struct {
	Volumes []string
	// Host is the placement in etcd: where the app should run.
	Host string
	// Allowed are the hosts the app may run on (label relocvol.hosts);
	// empty means any.
	Allowed []string
}

// Snapshot is the cluster state one plan is made from.
type Snapshot struct {
	Hosts map[string]HostView
	Apps  map[string]AppView
	// Claims maps a volume to the host holding its claim ("" released).
	Claims map[string]string
}

// ActionKind is a step of a failover.
type ActionKind string

const (
	// ActFence cuts a dead host off the storage and records its mark.
	ActFence ActionKind = "fence"
	// ActRelease gives up a fenced host's claim on a volume.
	ActRelease ActionKind = "release"
	// ActPlace sets an app's placement to another host, whose agent starts it.
	ActPlace ActionKind = "place"
	// ActStuck reports an app that no live host may take.
	ActStuck ActionKind = "stuck"
)

// Action is one step; fields not relevant to its kind are empty.
type Action struct {
	Kind   ActionKind
	Host   string // the dead host (fence, release, place: where it ran)
	Volume string // release
	App    string // place, stuck
	To     string // place
	Reason string
}

func (a Action) String() string {
	switch a.Kind {
	case ActFence:
		return "fence " + a.Host
	case ActRelease:
		return "release " + a.Volume + " from " + a.Host
	case ActPlace:
		return "place " + a.App + " on " + a.To
	default:
		return "stuck " + a.App + ": " + a.Reason
	}
}

// Plan returns the steps that move the apps of dead hosts to live ones. A
// host counts as dead once its lease has been gone for grace (the lease TTL
// plus a margin, so that a partitioned host has stopped its containers by
// itself first). A host in maintenance is not failed over. Apps go to an
// allowed live, unfenced host that runs an agent and is not in
// maintenance, the least loaded one first (ties by name).
func Plan(s Snapshot, now time.Time, grace time.Duration) []Action {
	dead := map[string]bool{}
	for name, h := range s.Hosts {
		if !h.Alive && !h.Maintenance && !h.DownSince.IsZero() && now.Sub(h.DownSince) >= grace {
			dead[name] = true
		}
	}
	// Apps placed on hosts the leader has never heard of are dead too:
	// their host record expired before this leader started.
	for _, a := range s.Apps {
		if _, known := s.Hosts[a.Host]; a.Host != "" && !known {
			dead[a.Host] = true
		}
	}
	load := map[string]int{}
	var live, agentless []string
	for name, h := range s.Hosts {
		switch {
		case h.Alive && !h.Fenced && !h.Maintenance && h.Agent:
			live = append(live, name)
		case h.Alive && !h.Fenced && !h.Maintenance:
			agentless = append(agentless, name)
		}
	}
	sort.Strings(live)
	sort.Strings(agentless)
	for _, a := range s.Apps {
		if a.Host != "" {
			load[a.Host]++
		}
	}

	// What each dead host holds, in one pass over the claims and the apps.
	held, apps := map[string][]string{}, map[string][]string{}
	for vol, owner := range s.Claims {
		if dead[owner] {
			held[owner] = append(held[owner], vol)
		}
	}
	for name, a := range s.Apps {
		if dead[a.Host] {
			apps[a.Host] = append(apps[a.Host], name)
		}
	}
	place := newPlacer(live, load)
	var fences, releases, places []Action
	for _, host := range sortedKeys(dead) {
		vols, names := held[host], apps[host]
		if len(vols) == 0 && len(names) == 0 {
			continue
		}
		sort.Strings(vols)
		sort.Strings(names)
		if !s.Hosts[host].Proven {
			fences = append(fences, Action{Kind: ActFence, Host: host, Reason: "lease gone"})
		}
		for _, vol := range vols {
			releases = append(releases, Action{Kind: ActRelease, Host: host, Volume: vol})
		}
		for _, name := range names {
			a := s.Apps[name]
			to := place.pick(a.Allowed)
			if to == "" {
				places = append(places, Action{Kind: ActStuck, Host: host, App: name, Reason: stuckReason(a, live, agentless)})
				continue
			}
			place.add(to, 1)
			place.add(host, -1)
			places = append(places, Action{Kind: ActPlace, Host: host, App: name, To: to})
		}
	}
	return append(append(fences, releases...), places...)
}

func stuckReason(a AppView, live, agentless []string) string {
	switch {
	case len(live) == 0 && len(agentless) == 0:
		return "no live host is left"
	case len(live) == 0:
		return fmt.Sprintf("no live host runs an agent (hosts without one, --docker-host empty: %s)", strings.Join(agentless, ","))
	}
	return fmt.Sprintf("none of its allowed hosts (relocvol.hosts=%s) is alive with an agent; live hosts with one: %s",
		strings.Join(a.Allowed, ","), strings.Join(live, ","))
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
