package lvm

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/relocvol/relocvol/internal/execx"
)

// appKeyTag prefixes the VG tag that holds the cluster's app key (hex),
// plugin.AppKeyKeeper: next to the data, readable by root on the hosts that
// see the VG, never in etcd. The tag is passed to LVM as a secret
// (execx.WithSecret): never in the log or an error.
const appKeyTag = "relocvol-appkey-"

// appKeys are the app keys among the VG's tags, sorted, so that every
// host picks the same (the first) should two have got there.
func appKeys(tags []string) [][]byte {
	var keys []string
	for _, t := range tags {
		if h, ok := strings.CutPrefix(t, appKeyTag); ok {
			keys = append(keys, h)
		}
	}
	slices.Sort(keys)
	var out [][]byte
	for _, h := range keys {
		if k, err := hex.DecodeString(h); err == nil && len(k) >= 16 {
			out = append(out, k)
		}
	}
	return out
}

// AppKey implements plugin.AppKeyKeeper.
func (l *LVM) AppKey(ctx context.Context) ([]byte, error) {
	tags, err := l.vgTags(ctx)
	if err != nil {
		return nil, err
	}
	if keys := appKeys(tags); len(keys) > 0 {
		return keys[0], nil
	}
	return nil, nil
}

// MakeAppKey implements plugin.AppKeyKeeper: under the VG lock, the tags are
// read and the key's tag added only if there is none, so that of hosts
// joining at once one adds it and the others read it.
func (l *LVM) MakeAppKey(ctx context.Context, key []byte) ([]byte, error) {
	tag := appKeyTag + hex.EncodeToString(key)
	var found []byte
	err := l.lock.WithLock(ctx, "vg/"+l.vg, func(ctx context.Context) error {
		k, err := l.AppKey(ctx)
		if err != nil || k != nil {
			found = k
			return err
		}
		_, err = l.lvm(execx.WithSecret(ctx, tag), "vgchange", "--addtag", tag, l.vg)
		return l.classify(err)
	})
	var ee *execx.ExecError
	switch {
	case err != nil && !errors.As(err, &ee):
		return nil, fmt.Errorf("lock the metadata of VG %s: %w", l.vg, err)
	case err != nil:
		return nil, fmt.Errorf("tag VG %s with the app key: %w", l.vg, err)
	case found != nil:
		return found, nil
	}
	return l.AppKey(ctx)
}
