package store

import (
	"context"
	"fmt"
	"math"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Maintenance announces that a host's plugin may be down for a while with
// its containers still running (a setting changed with disable, set,
// enable; an upgrade): peers neither fence the host nor take its volumes or
// apps before Until. The key is bound to a lease of that length, so etcd
// ends the maintenance by itself at the deadline, and every takeover
// requires the key absent in its own transaction (HostGone).
type Maintenance struct {
	Host  string    `json:"host"`
	Until time.Time `json:"until"`
	Set   time.Time `json:"set"`
	// By says who announced it: an operator (the API) or the plugin
	// itself when it stopped with volumes mounted ("plugin-stop"), which
	// it ends when it has joined again.
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
	Lease  int64  `json:"lease"`
}

// MaintenanceByPluginStop is Maintenance.By of the mark a plugin leaves
// when it stops cleanly with volumes mounted.
const MaintenanceByPluginStop = "plugin-stop"

// Limits of a maintenance window.
const (
	MinMaintenance = 10 * time.Second
	MaxMaintenance = 24 * time.Hour
)

// ValidateMaintenance checks a maintenance window's length.
func ValidateMaintenance(d time.Duration) error {
	if d < MinMaintenance || d > MaxMaintenance {
		return fmt.Errorf("maintenance of %s: use from %s to %s (e.g. 10m)", d, MinMaintenance, MaxMaintenance)
	}
	return nil
}

// SetMaintenance puts host in maintenance for d from now, replacing the
// earlier window of it read here, if any, in a transaction that requires
// that window unchanged (ErrConflict: it ended or was replaced meanwhile)
// and every guard to hold: the host's own lease when it announces its own
// maintenance, the host's lease read by an operator's request, so that a
// window never lands on a host taken over meanwhile.
func (s *Store) SetMaintenance(ctx context.Context, host string, d time.Duration, by, reason string, guards ...Guard) (Maintenance, error) {
	if err := ValidateMaintenance(d); err != nil {
		return Maintenance{}, err
	}
	key := s.key("maintenance", host)
	prev, prevRev, err := s.GetMaintenance(ctx, host)
	if err != nil {
		return Maintenance{}, err
	}
	tctx, cancel := s.ctx(ctx)
	defer cancel()
	now := time.Now().UTC()
	grant, err := s.cli.Grant(tctx, int64(math.Ceil(d.Seconds())))
	if err != nil {
		return Maintenance{}, s.etcdErr("grant the maintenance lease of "+host, err)
	}
	m := Maintenance{Host: host, Until: now.Add(d), Set: now, By: by, Reason: reason, Lease: int64(grant.ID)}
	if _, err := s.guardedTxn(ctx, "announce the maintenance of "+host, guards,
		[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", prevRev)},
		clientv3.OpPut(key, mustJSON(m), clientv3.WithLease(grant.ID))); err != nil {
		s.revokeQuietly(ctx, int64(grant.ID))
		return Maintenance{}, err
	}
	if prev.Lease != 0 {
		_, _ = s.cli.Revoke(tctx, clientv3.LeaseID(prev.Lease))
	}
	return m, nil
}

// EndMaintenance ends host's maintenance (false: it had none). With by set,
// only a window announced by by is ended.
func (s *Store) EndMaintenance(ctx context.Context, host, by string) (bool, error) {
	m, rev, err := s.GetMaintenance(ctx, host)
	if err != nil || rev == 0 || (by != "" && m.By != by) {
		return false, err
	}
	key := s.key("maintenance", host)
	if _, err := s.guardedTxn(ctx, "end the maintenance of "+host, nil,
		[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}, clientv3.OpDelete(key)); err != nil {
		return false, err
	}
	s.revokeQuietly(ctx, m.Lease)
	return true, nil
}

// GetMaintenance returns host's maintenance and its revision (0: none).
func (s *Store) GetMaintenance(ctx context.Context, host string) (Maintenance, int64, error) {
	var m Maintenance
	rev, err := s.get(ctx, s.key("maintenance", host), &m)
	return m, rev, err
}

// ListMaintenance returns every host in maintenance.
func (s *Store) ListMaintenance(ctx context.Context) (map[string]Versioned[Maintenance], error) {
	return list[Maintenance](ctx, s, "maintenance")
}
