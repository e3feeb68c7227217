package controller

import (
	"fmt"
	"testing"
	"time"
)

// planSnapshot is a cluster of hosts hosts, dead of them dead for a minute,
// and vols volumes, each claimed by a host in turn and used by one app
// placed there; every tenth app may run on three hosts only
// (relocvol.hosts).
func planSnapshot(vols, hosts, dead int) (Snapshot, time.Time) {
	now := time.Now()
	s := Snapshot{Hosts: map[string]HostView{}, Apps: map[string]AppView{}, Claims: map[string]string{}}
	name := func(i int) string { return fmt.Sprintf("h%04d", i%hosts) }
	for i := range hosts {
		h := HostView{Alive: true, Agent: true}
		if i < dead {
			h = HostView{Agent: true, DownSince: now.Add(-time.Minute)}
		}
		s.Hosts[name(i)] = h
	}
	for i := range vols {
		v := fmt.Sprintf("v%06d", i)
		s.Claims[v] = name(i)
		a := AppView{Volumes: []string{v}, Host: name(i)}
		if i%10 == 0 {
			a.Allowed = []string{name(i + 1), name(i + 7), name(i + 13)}
		}
		s.Apps[fmt.Sprintf("app%06d", i)] = a
	}
	return s, now
}

// BenchmarkPlan is the leader's plan for a cluster of each size (issue 14:
// 10,000 volumes / 500 hosts / 50 dead ≤ 10 ms, 100,000 / 2,000 / 200 ≤
// 150 ms). `go test -run XXX -bench Plan -benchmem ./controller`.
func BenchmarkPlan(b *testing.B) {
	for _, size := range []struct{ vols, hosts, dead int }{{10_000, 500, 50}, {100_000, 2_000, 200}} {
		s, now := planSnapshot(size.vols, size.hosts, size.dead)
		b.Run(fmt.Sprintf("volumes=%d/hosts=%d/dead=%d", size.vols, size.hosts, size.dead), func(b *testing.B) {
			b.ReportAllocs()
			var n int
			for b.Loop() {
				n = len(Plan(s, now, 10*time.Second))
			}
			b.ReportMetric(float64(n), "actions")
		})
	}
}
