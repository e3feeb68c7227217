package controller

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
)

// The placer's heap picks what a scan of every live host would: the least
// loaded allowed one, ties by name, through a run of picks that change
// the loads.
func TestPlacerPicksAsAScanWould(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var live []string
		load, scanLoad := map[string]int{}, map[string]int{}
		for i := range 1 + r.IntN(12) {
			h := fmt.Sprintf("h%02d", i)
			if r.IntN(4) > 0 {
				live = append(live, h)
			}
			load[h] = r.IntN(4)
			scanLoad[h] = load[h]
		}
		sort.Strings(live)
		p := newPlacer(live, load)
		for step := range 30 {
			var allowed []string
			if r.IntN(3) == 0 {
				for range 1 + r.IntN(3) {
					allowed = append(allowed, fmt.Sprintf("h%02d", r.IntN(14)))
				}
			}
			want := ""
			for _, h := range live {
				ok := len(allowed) == 0
				for _, a := range allowed {
					ok = ok || a == h
				}
				if ok && (want == "" || scanLoad[h] < scanLoad[want]) {
					want = h
				}
			}
			if got := p.pick(allowed); got != want {
				t.Fatalf("round %d step %d: pick(%v) = %q, a scan of %v with loads %v picks %q", round, step, allowed, got, live, scanLoad, want)
			}
			if want != "" {
				p.add(want, 1)
				scanLoad[want]++
			}
			from := fmt.Sprintf("h%02d", r.IntN(14))
			p.add(from, -1)
			scanLoad[from]--
		}
	}
}
