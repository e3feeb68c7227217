package plugin

import (
	"fmt"
	"time"

	"github.com/relocvol/relocvol/internal/store"
)

// mountAction is what a Mount must do about a volume's claim.
type mountAction int

const (
	// actAcquire: nobody holds the claim; take it with the next epoch.
	actAcquire mountAction = iota
	// actJoin: this host holds the claim; add the mount ID.
	actJoin
	// actRefuse: a live host, or one in maintenance, holds the claim;
	// never a second writer.
	actRefuse
	// actTakeover: a dead host holds the claim; fence it, then take the
	// claim with the next epoch.
	actTakeover
)

func (a mountAction) String() string {
	return [...]string{"acquire", "join", "refuse", "takeover"}[a]
}

// decideMount is the claim protocol of ARCHITECTURE.md as a pure function:
// claim is the volume's current claim, self this host, owner the liveness of
// the claim's holder (only read when another host holds it).
func decideMount(claim store.Claim, self string, owner store.HostState) mountAction {
	switch {
	case !claim.Held():
		return actAcquire
	case claim.Host == self:
		return actJoin
	case owner.Alive, owner.Maintenance != nil:
		// A host in maintenance may have its plugin down while its
		// containers run: nobody takes it over before the deadline.
		return actRefuse
	default:
		return actTakeover
	}
}

// takeoverHint tells whoever is refused a volume that a live host holds
// when a Mount could take it over should that host be down (a Swarm task
// retried after a node failure, an operator deciding whether to wait): its
// lease runs out within expiresIn (as etcd reports it, rounded down to
// whole seconds, so up to a second more; negative: unknown), then peers
// wait the grace.
func takeoverHint(host string, expiresIn, grace time.Duration) string {
	if expiresIn < 0 {
		return fmt.Sprintf("takeover possible once its lease runs out and peers have waited the %s grace, if %s is down", grace.Round(100*time.Millisecond), host)
	}
	lease := expiresIn.Truncate(time.Second) + time.Second
	return fmt.Sprintf("takeover possible in about %s if %s is down (its lease runs out within %s, then peers wait the %s grace)",
		(lease + grace).Round(time.Second), host, lease, grace.Round(100*time.Millisecond))
}
