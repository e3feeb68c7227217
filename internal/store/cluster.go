package store

import (
	"context"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Cluster is a relocvol cluster's identity: made once, by the first host
// that starts on an etcd under a prefix, and written next to the data
// (plugin.CheckCluster) so that a host of another cluster refuses it. A
// random ID rather than etcd's own cluster ID: two embedded etcds started
// with the same settings get the same etcd cluster ID.
type Cluster struct {
	ID string `json:"id"`
	// EtcdClusterID is the etcd cluster's own ID, for the operator.
	EtcdClusterID string    `json:"etcdClusterID"`
	CreatedBy     string    `json:"createdBy"`
	CreatedAt     time.Time `json:"createdAt"`
}

// Cluster returns this cluster's identity, creating it (as host) if it has
// none yet; concurrent first starts agree on one.
func (s *Store) Cluster(ctx context.Context, host string) (Cluster, error) {
	key := s.key("cluster", "")
	c := Cluster{ID: uuid.NewString(), CreatedBy: host, CreatedAt: time.Now().UTC()}
	proposed := c
	_, _, etcdID, err := s.createOrGet(ctx, "read the cluster identity "+key, key, proposed, &c)
	if err != nil {
		return Cluster{}, err
	}
	c.EtcdClusterID = strconv.FormatUint(etcdID, 16)
	return c, nil
}
