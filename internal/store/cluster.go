package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"
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
	tctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(tctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, mustJSON(c))).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return Cluster{}, s.etcdErr("read the cluster identity "+key, err)
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return Cluster{}, fmt.Errorf("cluster identity %s: %w", key, ErrConflict)
		}
		if err := json.Unmarshal(kvs[0].Value, &c); err != nil {
			return Cluster{}, fmt.Errorf("decode %s: %w", key, err)
		}
	}
	c.EtcdClusterID = strconv.FormatUint(resp.Header.ClusterId, 16)
	return c, nil
}
