package liveness

import (
	"strings"
	"testing"
	"time"
)

// The order of the timings holds for every TTL a host may be configured
// with: this is what makes self-fencing finish before a peer may take over.
func TestOrderForEveryAllowedTTL(t *testing.T) {
	for ttl := MinTTL; ttl <= MaxTTL; ttl += time.Second {
		tm := For(ttl)
		if err := tm.Check(); err != nil {
			t.Errorf("TTL %s: %v (%+v)", ttl, err, tm)
			continue
		}
		// Spelled out, so that a change to Check cannot weaken it unseen.
		steps := []struct {
			name string
			d    time.Duration
		}{
			{"renew", tm.Renew},
			{"a renewal lost", 2 * tm.Renew},
			{"self-fence (mount cut-off)", tm.SelfFence},
			{"self-fence stopped containers", tm.SelfFence + tm.StopTimeout},
			{"self-fence deadline", tm.Deadline},
			{"earliest lease expiry", tm.TTL},
			{"earliest takeover", tm.TTL + tm.Grace},
		}
		for i := 1; i < len(steps); i++ {
			if steps[i-1].d >= steps[i].d {
				t.Errorf("TTL %s: %s (%s) is not before %s (%s)", ttl, steps[i-1].name, steps[i-1].d, steps[i].name, steps[i].d)
			}
		}
		if tm.Cutoff() != tm.SelfFence {
			t.Errorf("TTL %s: Mounts are accepted until %s but self-fencing starts at %s", ttl, tm.Cutoff(), tm.SelfFence)
		}
	}
}

func TestTimingsOfTheDefaultTTL(t *testing.T) {
	tm := For(5 * time.Second)
	want := Timings{
		TTL: 5 * time.Second, Renew: 833333333, SelfFence: 3250 * time.Millisecond,
		StopTimeout: time.Second, Deadline: 4750 * time.Millisecond, Grace: 1250 * time.Millisecond,
	}
	if tm != want {
		t.Fatalf("For(5s) = %+v, want %+v", tm, want)
	}
}

func TestCheckRefusesTTLsOutOfRange(t *testing.T) {
	for _, tt := range []struct {
		ttl  time.Duration
		want string
	}{
		{ttl: time.Second, want: "from 2s to 2m0s"},
		{ttl: 2500 * time.Millisecond, want: "whole seconds"},
		{ttl: 121 * time.Second, want: "from 2s to 2m0s"},
		{ttl: 0, want: "whole seconds"},
	} {
		err := For(tt.ttl).Check()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Check(%s) = %v, want an error saying %q", tt.ttl, err, tt.want)
		}
	}
	// A broken derivation is caught too.
	tm := For(5 * time.Second)
	tm.SelfFence = tm.Deadline
	if err := tm.Check(); err == nil {
		t.Error("Check accepted self-fencing that cannot finish before its deadline")
	}
}
