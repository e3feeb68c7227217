package plugin

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/store"
)

func TestDecideMount(t *testing.T) {
	alive := store.HostState{Alive: true}
	dead := store.HostState{}
	for _, tc := range []struct {
		name  string
		claim store.Claim
		owner store.HostState
		want  mountAction
	}{
		{name: "never claimed", claim: store.Claim{}, want: actAcquire},
		{name: "released after use", claim: store.Claim{Epoch: 7}, want: actAcquire},
		{name: "released, owner info ignored", claim: store.Claim{Epoch: 7}, owner: alive, want: actAcquire},
		{name: "held here", claim: store.Claim{Host: "me", Epoch: 3}, want: actJoin},
		{name: "held here, taken over earlier", claim: store.Claim{Host: "me", Epoch: 3, TakenFrom: "g"}, want: actJoin},
		{name: "held by a live peer", claim: store.Claim{Host: "g", Epoch: 3}, owner: alive, want: actRefuse},
		{name: "held by a live peer with no mounts", claim: store.Claim{Host: "g", Epoch: 3, Mounts: nil}, owner: alive, want: actRefuse},
		{name: "held by a dead peer", claim: store.Claim{Host: "g", Epoch: 3}, owner: dead, want: actTakeover},
		{name: "held by a dead peer that took it over itself", claim: store.Claim{Host: "g", Epoch: 9, TakenFrom: "h"}, owner: dead, want: actTakeover},
		{name: "held by a dead peer in maintenance", claim: store.Claim{Host: "g", Epoch: 3}, owner: store.HostState{Maintenance: &store.Maintenance{Host: "g"}}, want: actRefuse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := decideMount(tc.claim, "me", tc.owner); got != tc.want {
				t.Fatalf("decideMount = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestDockerError(t *testing.T) {
	user := newErr(ErrInUse, `volume "db" is in use on host node-2 (alive, last renewed 1.2s ago, 1 mounts): stop it`)
	unanswered := &store.EtcdError{Endpoints: []string{"http://10.0.0.1:2379"}, What: "get /relocvol/claims/db", Timeout: 5 * time.Second, Err: context.DeadlineExceeded}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"operator errors pass as they are", user, user.Msg},
		{"etcd does not answer", fmt.Errorf("claim: %w", unanswered),
			`relocvol: cannot mount volume "db" on host node-1: etcd at http://10.0.0.1:2379 did not answer within 5s (get /relocvol/claims/db): check that etcd runs and that this host reaches it (network, RELOCVOL_ETCD_ENDPOINTS, TLS files)`},
		{"anything else", errString("activate: attach /srv/san/db.img: no such file"),
			`relocvol: cannot mount volume "db" on host node-1: activate: attach /srv/san/db.img: no such file (the plugin log has details: docker plugin inspect relocvol, dockerd's log)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dockerError("mount", "db", "node-1", tc.err).Error(); got != tc.want {
				t.Fatalf("Docker sees\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestTakeoverHint(t *testing.T) {
	for _, tc := range []struct {
		name      string
		expiresIn time.Duration
		grace     time.Duration
		want      string
	}{
		{"just renewed", 4 * time.Second, 5 * time.Second,
			"takeover possible in about 10s if node-2 is down (its lease runs out within 5s, then peers wait the 5s grace)"},
		{"etcd says 0s left: up to a second", 0, 5 * time.Second,
			"takeover possible in about 6s if node-2 is down (its lease runs out within 1s, then peers wait the 5s grace)"},
		{"etcd did not say", -1, 5 * time.Second,
			"takeover possible once its lease runs out and peers have waited the 5s grace, if node-2 is down"},
		{"a grace of a fraction of a second (1 s heartbeats)", 1500 * time.Millisecond, 1250 * time.Millisecond,
			"takeover possible in about 3s if node-2 is down (its lease runs out within 2s, then peers wait the 1.3s grace)"},
		{"a long TTL", 57 * time.Second, 20 * time.Second,
			"takeover possible in about 1m18s if node-2 is down (its lease runs out within 58s, then peers wait the 20s grace)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := takeoverHint("node-2", tc.expiresIn, tc.grace); got != tc.want {
				t.Fatalf("takeoverHint =\n%q, want\n%q", got, tc.want)
			}
		})
	}
}
