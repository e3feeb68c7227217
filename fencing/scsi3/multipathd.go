package scsi3

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/internal/sysblock"
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
// (`multipathd unsetprkey`: multipathd's prkeys entry only, no command to
// the storage, so always safe). The heartbeat calls it at the host's
// cut-off, before peers may fence it, and before a fenced host or a failed
// join gives its lease up; Prepare at every join: multipathd registers a
// path it adds or reinstates with the key it holds wherever the key is
// still listed; its read-keys-then-register
// races a peer's preempt (multipath-tools before 0.13, upstream
// 601d09a7), which could put a fenced host's key back on a new I_T nexus.
// Without the key multipathd registers nothing. The next join hands it
// back (handKeys), or a check if a late renewal made the host alive again
// (handBack); until then a path that comes back stays unregistered, which
// costs only writes the host may not make anyway. It runs every
// time: a join that failed half way may have handed multipathd the key
// again (mpathpersist does on its REGISTER), and unsetting a key that is
// not set is harmless.
//
// It asks neither LVM nor the storage (at the cut-off LVM can hang on a map
// with queue_if_no_path when the SAN is cut, and must not be waited for):
// it takes every multipath map of the host from sysfs, and unsets the key
// where multipathd holds this host's (another application's map keeps its
// own). It waits for a PR operation under way for at most half of what ctx
// allows, and a hand-over that ran meanwhile takes the key back itself
// (handKeysLive).
//
// It reports whether every map is confirmed clear (the heartbeat tries
// again at its next tick when not).
func (f *Fencer) ReleaseKeys(ctx context.Context) bool {
	f.mu.Lock()
	f.relGen++
	f.mu.Unlock()
	unlock := f.lockOps(ctx)
	defer unlock()
	return f.unsetKeys(ctx, f.hostMaps())
}

// hostMaps are the host's multipath maps (sysfs only), those this process
// registered on first.
func (f *Fencer) hostMaps() []path {
	sys := sysblock.Sysfs(f.sysfs)
	entries, err := os.ReadDir(filepath.Join(f.sysfs, "class", "block"))
	if err != nil {
		f.log.WithError(err).Warn("cannot list the host's block devices (sysfs) to take this host's key back from multipathd")
	}
	f.mu.Lock()
	joined := maps.Clone(f.joined)
	f.mu.Unlock()
	var mine, others []path
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "dm-") || !sys.IsMultipathMap(e.Name()) {
			continue
		}
		p := path{dev: "/dev/" + e.Name(), multipath: true}
		if joined[p.dev] {
			mine = append(mine, p)
		} else {
			others = append(others, p)
		}
	}
	return append(mine, others...)
}

// unsetParallel is how many maps unsetKeys works on at once: a release
// must reach this host's maps before peers may fence it, however many
// maps the host has and however slowly multipathd answers.
const unsetParallel = 16

// unsetKeys takes this host's key back from multipathd for each map of
// mps where multipathd holds it (or cannot say: then it is unset anyway),
// several maps at once; it reports whether every map is confirmed clear.
func (f *Fencer) unsetKeys(ctx context.Context, mps []path) bool {
	var wg sync.WaitGroup
	var failed atomic.Bool
	sem := make(chan struct{}, unsetParallel)
	for _, p := range mps {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			name := filepath.Base(p.dev)
			out, err := f.run.Run(ctx, MultipathD.Name, "getprkey", "map", name)
			if k, ok := parseMapKey(string(out)); err == nil && (!ok || k != f.key) {
				return
			}
			out, err = f.run.Run(ctx, MultipathD.Name, "unsetprkey", "map", name)
			if err != nil || strings.TrimSpace(string(out)) != "ok" {
				failed.Store(true)
				f.log.WithError(err).WithFields(logrus.Fields{"dev": p.dev, "multipathd": strings.TrimSpace(string(out))}).Warn("multipathd did not give up this host's reservation key for the map: a path it adds while this host is fenced could be registered again")
			}
		}()
	}
	wg.Wait()
	return !failed.Load()
}

// lockOps takes opMu, waiting at most half of what ctx allows (then it
// goes on without it, with time left for its own commands: what it does
// must be safe anyway); it returns the unlock.
func (f *Fencer) lockOps(ctx context.Context) (unlock func()) {
	wait := ctx
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		wait, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(dl)/2))
		defer cancel()
	}
	for !f.opMu.TryLock() {
		select {
		case <-wait.Done():
			f.log.Warn("a storage operation is still under way: taking the key back from multipathd without waiting for it")
			return func() {}
		case <-time.After(10 * time.Millisecond):
		}
	}
	return f.opMu.Unlock
}

// handKeysLive is handKeys outside the join: only while this host is
// alive, and if a release came meanwhile (the cut-off passed during the
// hand-over) or the host is past its cut-off once done, it takes the key
// back from those maps again.
func (f *Fencer) handKeysLive(ctx context.Context, paths []path, log logrus.FieldLogger) {
	f.mu.Lock()
	gen := f.relGen
	f.mu.Unlock()
	if _, ok := f.alive(); !ok {
		return
	}
	f.handKeys(ctx, paths, log)
	f.mu.Lock()
	_, alive := f.alive()
	moved := f.relGen != gen
	if !moved && alive {
		f.handedGen = gen // in the same step as the check: a release after it counts
	}
	f.mu.Unlock()
	if moved || !alive {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseBound)
		defer cancel()
		f.unsetKeys(uctx, paths)
	}
}

// releaseBound bounds taking the key back after a hand-over that a release
// overtook.
const releaseBound = 2 * time.Second

// handBack gives multipathd the key again after a release, at a check
// that found this host registered while it is alive (a renewal that
// landed after the cut-off made it alive again): the paths it adds are
// then registered again.
func (f *Fencer) handBack(ctx context.Context) {
	f.mu.Lock()
	released := f.relGen != f.handedGen
	f.mu.Unlock()
	if !released {
		return
	}
	paths, err := f.paths(ctx)
	if err != nil {
		return
	}
	f.handKeysLive(ctx, paths, f.log)
}
