package plugin

import (
	"context"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/internal/store"
)

// ClusterMarker is an optional ability of a backend: keeping the identity
// of the relocvol cluster that uses the storage next to the data (loop: a
// file in the SAN folder; lvm: a VG tag). Two clusters on one storage
// (two hosts each on its own embedded etcd, or on other etcd prefixes)
// would each grant the same volume to one of their hosts: two writers.
type ClusterMarker interface {
	// ClusterMark returns the identity written on the storage ("": none).
	ClusterMark(ctx context.Context) (string, error)
	// MarkCluster writes id, if no identity is there yet; the identity
	// found there (which may be another one, written meanwhile) is returned.
	MarkCluster(ctx context.Context, id string) (string, error)
	// Storage names the storage for messages, e.g. "SAN folder /srv/san".
	Storage() string
	// ClearHint says how an operator removes the mark id by hand.
	ClearHint(id string) string
}

// errOtherCluster: the storage belongs to another relocvol cluster.
var errOtherCluster = errors.New("storage belongs to another relocvol cluster")

// checkMark is the decision of CheckCluster: found is the identity on the
// storage, ours this cluster's. An empty mark is to be written.
func checkMark(found, ours string) (write bool, err error) {
	switch found {
	case "":
		return true, nil
	case ours:
		return false, nil
	}
	return false, errOtherCluster
}

// CheckCluster refuses storage that carries another cluster's identity,
// saying how to fix it. It only reads: the identity is written when the
// host joins (Driver.Join), once it is registered with the storage and may
// write it. etcd names this host's etcd (endpoints, prefix) for messages.
func CheckCluster(ctx context.Context, be any, c store.Cluster, etcd string) error {
	return settleMark(ctx, be, c, etcd, false, nil)
}

// markCluster writes this cluster's identity (Options.Cluster) on the
// storage if it has none yet, and refuses another cluster's; then the
// cluster's app key, if the storage has none (markAppKey).
func (d *Driver) markCluster(ctx context.Context) error {
	if d.opt.Cluster.ID == "" {
		return nil
	}
	if err := settleMark(ctx, d.backend, d.opt.Cluster, d.opt.Etcd, true, d.log); err != nil {
		return err
	}
	return d.markAppKey(ctx)
}

// settleMark reads the identity on the storage, writes c's where there is
// none (write), and refuses another cluster's.
func settleMark(ctx context.Context, be any, c store.Cluster, etcd string, write bool, log logrus.FieldLogger) error {
	cm, ok := be.(ClusterMarker)
	if !ok {
		return nil
	}
	found, err := cm.ClusterMark(ctx)
	if err != nil {
		return fmt.Errorf("read the cluster identity on the %s: %w", cm.Storage(), err)
	}
	absent, err := checkMark(found, c.ID)
	if absent && write {
		if found, err = cm.MarkCluster(ctx, c.ID); err != nil {
			return fmt.Errorf("write the cluster identity on the %s: %w", cm.Storage(), err)
		}
		if found == c.ID {
			log.WithFields(logrus.Fields{"cluster": c.ID, "storage": cm.Storage()}).Info("marked the storage as this cluster's")
		}
		_, err = checkMark(found, c.ID)
	}
	if err != nil {
		return fmt.Errorf("the %s belongs to relocvol cluster %s, but this host's etcd (%s) is cluster %s (etcd cluster ID %s, created by host %s): %w; "+
			"point RELOCVOL_ETCD_ENDPOINTS (and RELOCVOL_ETCD_PREFIX) at the etcd of the cluster that uses this storage; "+
			"only if that cluster is gone for good and none of its hosts will run again, remove its mark (%s) and start again",
			cm.Storage(), found, etcd, c.ID, c.EtcdClusterID, c.CreatedBy, err, cm.ClearHint(found))
	}
	return nil
}
