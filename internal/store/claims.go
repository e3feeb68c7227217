package store

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Claim says which host has a volume active. Host is empty when released;
// the record (and its epoch) outlives releases so the epoch only grows.
type Claim struct {
	Volume string               `json:"volume"`
	Host   string               `json:"host,omitempty"`
	Epoch  int64                `json:"epoch"`
	Mounts map[string]time.Time `json:"mounts,omitempty"` // mount ID -> since
	// Counts says how many times Docker mounted an ID it mounted more than
	// once (docker cp into a running container mounts the container's ID
	// again, and unmounts it as often); an ID not in it counts once.
	Counts map[string]int `json:"counts,omitempty"`
	Since  time.Time      `json:"since,omitempty"`
	// TakenFrom names the dead host this claim was taken from by fencing.
	TakenFrom string `json:"takenFrom,omitempty"`
}

// Held reports whether some host holds the claim.
func (c Claim) Held() bool { return c.Host != "" }

// Released is c given up: no holder, no mounts. The epoch stays, so the
// next holder's is higher; takenFrom names a holder that was fenced ("" when
// the holder released the claim itself).
func (c Claim) Released(takenFrom string) Claim {
	c.Host, c.Mounts, c.Counts, c.Since, c.TakenFrom = "", nil, nil, time.Time{}, takenFrom
	return c
}

// Refs is how many mounts of id the claim holds (0: none).
func (c Claim) Refs(id string) int {
	if _, ok := c.Mounts[id]; !ok {
		return 0
	}
	return max(c.Counts[id], 1)
}

// GetClaim returns a volume's claim and its revision; an absent claim is the
// zero Claim at revision 0.
func (s *Store) GetClaim(ctx context.Context, name string) (Claim, int64, error) {
	c := Claim{Volume: name}
	rev, err := s.get(ctx, s.key("claims", name), &c)
	return c, rev, err
}

// ListClaims returns every claim by volume name.
func (s *Store) ListClaims(ctx context.Context) (map[string]Versioned[Claim], error) {
	return list[Claim](ctx, s, "claims")
}

// PutClaim writes c if the claim is still at claimRev (0: absent) and the
// volume record still at volRev, so a claim is never taken on a volume that
// is being removed or was re-created, and if every guard still holds: a
// host writes its own claims under HostLease, a takeover under HostGone of
// the previous holder.
func (s *Store) PutClaim(ctx context.Context, c Claim, claimRev, volRev int64, guards ...Guard) (int64, error) {
	key := s.key("claims", c.Volume)
	return s.guardedTxn(ctx, "claim volume "+c.Volume, guards, []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(key), "=", claimRev),
		clientv3.Compare(clientv3.ModRevision(s.key("volumes", c.Volume)), "=", volRev),
	}, clientv3.OpPut(key, mustJSON(c)))
}

// ReleaseClaim gives up the claim read at rev on behalf of its fenced
// holder; the epoch stays, so the next holder's is higher, and TakenFrom
// names the fenced holder until the next holder releases it in turn. The
// holder's host key must still be absent when the release lands
// (ErrHostAlive otherwise: a holder that rejoined keeps its claim), and
// its fencing mark must still be the one at markRev, the mark the releaser
// wrote before it proved the holder cut off (ErrMarkChanged otherwise: an
// absent key alone proves no fencing).
func (s *Store) ReleaseClaim(ctx context.Context, c Claim, rev, markRev int64, guards ...Guard) error {
	key := s.key("claims", c.Volume)
	guards = append(guards, s.HostGone(c.Host), s.FencedBy(c.Host, markRev))
	_, err := s.guardedTxn(ctx, "release "+key, guards,
		[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}, clientv3.OpPut(key, mustJSON(c.Released(c.Host))))
	return err
}
