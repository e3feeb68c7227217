package plugin

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"
)

// AppKeyLen is the length of the cluster's app key.
const AppKeyLen = 32

// AppKeyKeeper is an optional ability of a backend: keeping, next to the
// data and never in etcd, the cluster's app key, with which agents sign
// the app records they write and check those they start from (controller,
// appmac.go). Write access to etcd is root on every host; the key keeps
// that power from whoever can write etcd but not read the storage, and
// every host of the cluster finds it where it joins, with no install step.
// loop: a file in the SAN folder (mode 0600); lvm: a VG tag. Neither the
// key nor anything that holds it is ever logged, shown by the API, the
// doctor or the events.
type AppKeyKeeper interface {
	// AppKey returns the key on the storage (nil: none yet).
	AppKey(ctx context.Context) ([]byte, error)
	// MakeAppKey writes key if the storage has none yet, and returns the
	// one there (which may be another host's, written meanwhile).
	MakeAppKey(ctx context.Context, key []byte) ([]byte, error)
}

// errNoAppKey: the storage keeps no app key (yet).
var errNoAppKey = errors.New("the storage has no app key yet")

// ReadAppKey returns the cluster's app key from the storage be: written by
// the first host that joined (markAppKey), so a host that joined finds it.
func ReadAppKey(ctx context.Context, be any) ([]byte, error) {
	kk, ok := be.(AppKeyKeeper)
	if !ok {
		return nil, fmt.Errorf("the %T backend keeps no app key: app records cannot be signed", be)
	}
	key, err := kk.AppKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the app key on the %s: %w", storageName(be), err)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("%s: %w (a host writes it when it joins)", storageName(be), errNoAppKey)
	}
	return key, nil
}

// markAppKey makes the cluster's app key on the storage if it has none:
// when a host joins, once it may write the storage (like the cluster's
// identity, markCluster).
func (d *Driver) markAppKey(ctx context.Context) error {
	kk, ok := d.backend.(AppKeyKeeper)
	if !ok {
		return nil
	}
	key, err := kk.AppKey(ctx)
	if err != nil {
		return fmt.Errorf("read the app key on the %s: %w", storageName(d.backend), err)
	}
	if len(key) > 0 {
		return nil
	}
	key = make([]byte, AppKeyLen)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("make the app key: %w", err)
	}
	got, err := kk.MakeAppKey(ctx, key)
	if err != nil {
		return fmt.Errorf("write the app key on the %s: %w", storageName(d.backend), err)
	}
	if string(got) == string(key) {
		d.log.WithFields(logrus.Fields{"storage": storageName(d.backend)}).Info("made the cluster's app key on the storage (it signs the app records)")
	}
	return nil
}

// storageName names be's storage for messages.
func storageName(be any) string {
	if cm, ok := be.(ClusterMarker); ok {
		return cm.Storage()
	}
	return fmt.Sprintf("%T storage", be)
}
