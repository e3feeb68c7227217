package scsi3

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
)

// parseMapKey reads `multipathd getprkey map NAME`: a key in hex, with
// ":aptpl" where multipathd registers with APTPL (0.9.4 prints
// "0x5256…:aptpl"), or "none" (ok false).
func parseMapKey(out string) (key uint64, ok bool) {
	s, _ := strings.CutSuffix(strings.TrimSpace(out), ":aptpl")
	k, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
	return k, err == nil && k != 0
}

// handKeys makes sure multipathd holds this host's key for every map that
// is a PV. multipathd registers a path it adds later (one that comes back
// as a new I_T nexus after a re-login) only with that key and only where
// the key is registered through the map's other paths; without it, every
// write dm-multipath sends through such a path fails with a reservation
// conflict. mpathpersist's REGISTER hands the key over where it reads
// reservation_key file in the host's multipath.conf; a map registered
// before that (an upgrade, the setting added since) would never get it, so
// the join hands it over itself. Only the join does: the host has just
// proven its registration, so multipathd may register new paths with it.
// A multipathd that refuses (no reservation_key file) is logged; the
// doctor's multipath check fails and says what to write.
func (f *Fencer) handKeys(ctx context.Context, paths []path, log logrus.FieldLogger) {
	for _, p := range paths {
		if !p.multipath {
			continue
		}
		name := filepath.Base(p.dev)
		plog := log.WithField("dev", p.dev)
		out, err := f.run.Run(ctx, MultipathD.Name, "getprkey", "map", name)
		if k, ok := parseMapKey(string(out)); err == nil && ok && k == f.key {
			continue
		}
		// With APTPL where this host registered with it, so that the
		// paths multipathd registers keep theirs through a power loss too.
		key := hexKey(f.key)
		if f.aptpl(ctx, p) {
			key += ":aptpl"
		}
		out, err = f.run.Run(ctx, MultipathD.Name, "setprkey", "map", name, "key", key)
		if err != nil || strings.TrimSpace(string(out)) != "ok" {
			plog.WithError(err).WithField("multipathd", strings.TrimSpace(string(out))).Warn("multipathd holds no reservation key for this map and refused this host's: a path it adds later will not be registered, and writes through it fail: " + MultipathFix)
			continue
		}
		plog.WithField("key", key).Info("handed multipathd this host's reservation key: it registers the paths it adds to this map with it")
	}
}

// ReleaseKeys takes this host's key back from multipathd for every map
// that is a PV (`multipathd unsetprkey`: multipathd's prkeys entry only,
// no command to the storage, so always safe). A host that lost its lease
// calls it first, before it asks etcd anything: peers may fence it soon,
// and multipathd registers a path it adds or reinstates with the key it
// holds wherever the key is still listed; its read-keys-then-register
// races a peer's preempt (multipath-tools before 0.13, upstream
// 601d09a7), which could put a fenced host's key back on a new I_T nexus.
// Without the key multipathd registers nothing. The next join hands it
// back (handKeys); until then a path that comes back stays unregistered,
// which costs only writes the host may not make anyway. It runs every
// time: a join that failed half way may have handed multipathd the key
// again (mpathpersist does on its REGISTER), and unsetting a key that is
// not set is harmless.
func (f *Fencer) ReleaseKeys(ctx context.Context) {
	paths, err := f.paths(ctx)
	if err != nil {
		f.log.WithError(err).Warn("cannot list the VG's PVs to take this host's key back from multipathd")
		return
	}
	for _, p := range paths {
		if !p.multipath {
			continue
		}
		out, err := f.run.Run(ctx, MultipathD.Name, "unsetprkey", "map", filepath.Base(p.dev))
		if err != nil || strings.TrimSpace(string(out)) != "ok" {
			f.log.WithError(err).WithFields(logrus.Fields{"dev": p.dev, "multipathd": strings.TrimSpace(string(out))}).Warn("multipathd did not give up this host's reservation key for the map: a path it adds while this host is fenced could be registered again")
		}
	}
}
