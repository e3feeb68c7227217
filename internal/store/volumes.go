package store

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Volume states.
const (
	StateCreating = "creating"
	StateReady    = "ready"
	StateRemoving = "removing"
)

// Volume is the cluster-wide record of a Docker volume.
type Volume struct {
	Name      string    `json:"name"`
	Backend   string    `json:"backend"`
	Size      int64     `json:"size"`
	FS        string    `json:"fs"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy"`
	// CreateID identifies the create that makes (made) the storage, which
	// carries it: only storage with this identity is ever removed in the
	// volume's name ("" for volumes made before creates carried one).
	CreateID string `json:"createID,omitempty"`
	// Grow is the volume's last grow; Size is already its new size.
	Grow *Grow `json:"grow,omitempty"`
}

// Grow is a volume's last grow. Its storage was extended first (by host
// By, which any host may do), then the record written; the filesystem
// follows on the host that has the volume mounted (Owner when the grow was
// asked for), online, or at the volume's next Mount when no host had it
// mounted. Done says it was; Error is the last failure to; Waiting, why the
// host that mounts it leaves it to the volume's next Mount (it cannot grow
// that filesystem while mounted).
type Grow struct {
	Size  int64     `json:"size"`
	From  int64     `json:"from"`
	By    string    `json:"by"`
	At    time.Time `json:"at"`
	Owner string    `json:"owner,omitempty"`
	Done  bool      `json:"done,omitempty"`
	// FSHost grew the filesystem, at FSAt.
	FSHost  string    `json:"fsHost,omitempty"`
	FSAt    time.Time `json:"fsAt,omitzero"`
	Error   string    `json:"error,omitempty"`
	Waiting string    `json:"waiting,omitempty"`
}

// Pending says the filesystem of a grown volume has not followed its
// storage yet.
func (g *Grow) Pending() bool { return g != nil && !g.Done }

// GetVolume returns the volume record and its revision, or ErrNotFound.
func (s *Store) GetVolume(ctx context.Context, name string) (Volume, int64, error) {
	var v Volume
	rev, err := s.get(ctx, s.key("volumes", name), &v)
	if err == nil && rev == 0 {
		err = ErrNotFound
	}
	return v, rev, err
}

// ListVolumes returns every volume record by name.
func (s *Store) ListVolumes(ctx context.Context) (map[string]Versioned[Volume], error) {
	return list[Volume](ctx, s, "volumes")
}

// CreateVolume writes v if no record of that name exists. Otherwise it
// returns created=false with the existing record.
func (s *Store) CreateVolume(ctx context.Context, v Volume) (created bool, cur Volume, rev int64, err error) {
	key := s.key("volumes", v.Name)
	created, rev, _, err = s.createOrGet(ctx, "create "+key, key, v, &cur)
	switch {
	case err != nil:
		return false, Volume{}, 0, err
	case created:
		return true, v, rev, nil
	}
	return false, cur, rev, nil
}

// UpdateVolume replaces the record read at rev. With claimRev >= 0 it also
// requires the claim to be unchanged, so that a volume is never marked for
// removal while some host is taking its claim; every guard must hold too
// (a takeover of an unfinished create: its dead creator still gone and
// still carrying the mark the taker proved).
func (s *Store) UpdateVolume(ctx context.Context, v Volume, rev, claimRev int64, guards ...Guard) (int64, error) {
	key := s.key("volumes", v.Name)
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}
	if claimRev >= 0 {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.key("claims", v.Name)), "=", claimRev))
	}
	return s.guardedTxn(ctx, "update "+key, guards, cmps, clientv3.OpPut(key, mustJSON(v)))
}

// DeleteVolume removes the volume record read at rev and its claim.
func (s *Store) DeleteVolume(ctx context.Context, name string, rev int64) error {
	key := s.key("volumes", name)
	_, err := s.guardedTxn(ctx, "delete "+key, nil,
		[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)},
		clientv3.OpDelete(key), clientv3.OpDelete(s.key("claims", name)))
	return err
}
