package scsi3

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/sysblock"
)

// state reads one path's keys and reservation.
func (f *Fencer) state(ctx context.Context, p path) (pathState, error) {
	out, err := f.pr(ctx, p, "--in", "--read-keys")
	if err != nil {
		return pathState{}, fmt.Errorf("read keys: %w", err)
	}
	keys, err := ParseKeys(out)
	if err != nil {
		return pathState{}, fmt.Errorf("%s: %w", p.dev, err)
	}
	out, err = f.pr(ctx, p, "--in", "--read-reservation")
	if err != nil {
		return pathState{}, fmt.Errorf("read the reservation: %w", err)
	}
	res, err := ParseReservation(out)
	if err != nil {
		return pathState{}, fmt.Errorf("%s: %w", p.dev, err)
	}
	return pathState{dev: p.dev, keys: keys, res: res}, nil
}

// states reads every path of every PV of the VG, as LVM sees it now.
func (f *Fencer) states(ctx context.Context) ([]path, []pathState, error) {
	return f.statesOf(ctx, nil)
}

// statesOf reads every path of pvs (nil: of every PV of the VG, as LVM
// sees it now).
func (f *Fencer) statesOf(ctx context.Context, pvs []string) ([]path, []pathState, error) {
	var paths []path
	var err error
	switch {
	case pvs == nil:
		paths, err = f.paths(ctx)
	default:
		paths, err = resolveAll(f.sysfs, pvs)
	}
	if err != nil {
		return nil, nil, err
	}
	states := make([]pathState, len(paths))
	for i, p := range paths {
		if states[i], err = f.state(ctx, p); err != nil {
			return nil, nil, err
		}
	}
	return paths, states, nil
}

func (f *Fencer) registeredOnAny(states []pathState) bool {
	for _, s := range states {
		if s.has(f.key) {
			return true
		}
	}
	return false
}

// aptpl tells whether registrations on p persist through a power loss
// (asked once per device): they do where the target can.
func (f *Fencer) aptpl(ctx context.Context, p path) bool {
	f.mu.Lock()
	v, ok := f.ptpl[p.dev]
	f.mu.Unlock()
	if ok {
		return v
	}
	out, err := f.pr(ctx, p, "--in", "--report-capabilities")
	if err == nil {
		v, err = ParseCapabilities(out)
	}
	if err != nil {
		f.log.WithError(err).WithField("dev", p.dev).Warn("cannot tell whether the target keeps registrations through a power loss: registering without APTPL")
		return false
	}
	if !v {
		f.log.WithField("dev", p.dev).Warn("the target cannot keep registrations through a power loss (no APTPL): after the SAN loses power, every host must register again (the plugin does so when it rejoins)")
	}
	f.mu.Lock()
	f.ptpl[p.dev] = v
	f.mu.Unlock()
	return v
}

// apply carries out the steps planPath chose for a path in state cur, then
// reads the path again (unless there was nothing to do) and verifies it.
func (f *Fencer) apply(ctx context.Context, p path, cur pathState, steps []step, victim uint64, log logrus.FieldLogger) (err error) {
	defer func() {
		if err == nil {
			f.joinedOn(p.dev)
		}
	}()
	if len(steps) == 0 {
		return verifyPath(cur, f.key, victim)
	}
	key := hexKey(f.key)
	for _, st := range steps {
		var err error
		switch st {
		case stepRegister:
			args := []string{"--out", "--register-ignore", "--param-sark=" + key}
			if f.aptpl(ctx, p) {
				args = append(args, "--param-aptpl")
			}
			_, err = f.pr(ctx, p, args...)
			log.WithField("aptpl", len(args) == 4).Info("registered this host's key")
			if err == nil && p.multipath {
				f.probePaths(ctx, p, len(args) == 4, log)
			}
		case stepReserve:
			_, err = f.pr(ctx, p, "--out", "--reserve", "--param-rk="+key, "--prout-type=5")
			if errors.Is(err, ErrReservationConflict) {
				err = nil // a peer reserved first: verified below
			} else if err == nil {
				log.Info("took the type 5 reservation")
			}
		case stepPreempt:
			mode := "--preempt-abort"
			if !f.abort {
				mode = "--preempt"
			}
			log.Warn("preempting the host's reservation key")
			_, err = f.pr(ctx, p, "--out", mode, "--param-rk="+key, "--param-sark="+hexKey(victim), "--prout-type=5")
		}
		if err != nil {
			return fmt.Errorf("%s: %w", st, err)
		}
	}
	s, err := f.state(ctx, p)
	if err != nil {
		return err
	}
	return verifyPath(s, f.key, victim)
}

// probePaths makes sure this host's key is registered through every path
// of map p after mpathpersist registered it there: mpathpersist sends the
// REGISTER only through the paths its own checker finds up, and exits 0,
// so a path briefly down (an iSCSI session recovering) stays unregistered
// while dm-multipath keeps it in the map, and every write sent through it
// fails with a reservation conflict, which dm-multipath does not retry on
// another path. Each path's REGISTER of the key over itself succeeds only
// through a registered nexus (the doctor's probe); where it conflicts, the
// key is registered through that path. A path that does not answer is left
// to multipathd, which registers it with the key it holds when it comes
// back. It runs within the caller's registration (between its proofs,
// outside the join).
func (f *Fencer) probePaths(ctx context.Context, p path, aptpl bool, log logrus.FieldLogger) {
	key := hexKey(f.key)
	for _, sp := range f.runningPaths(p, log, "not probing a path of the map that is not running: multipathd registers it when it comes back") {
		plog := log.WithField("path", sp.dev)
		args := []string{"--out", "--register", "--param-rk=" + key, "--param-sark=" + key}
		reg := []string{"--out", "--register-ignore", "--param-sark=" + key}
		if aptpl {
			args, reg = append(args, "--param-aptpl"), append(reg, "--param-aptpl")
		}
		_, err := f.pr(ctx, sp, args...)
		switch {
		case err == nil:
		case errors.Is(err, ErrReservationConflict):
			if _, err := f.pr(ctx, sp, reg...); err != nil {
				plog.WithError(err).Warn("this host's key is not registered through this path of the map and registering it there failed: writes sent through it fail until multipathd registers it")
				continue
			}
			plog.Warn("registered this host's key through a path of the map that mpathpersist had skipped")
		default:
			plog.WithError(err).Warn("cannot check this host's registration through a path of the map (down?): multipathd registers it when it comes back")
		}
	}
}

// runningPaths are the paths (SCSI disks) of map p whose device is
// running. One that is not (an iSCSI session in recovery: blocked) would
// hold a command sent through it, uninterruptibly, until the session
// recovers or gives up; skipped, it is logged with why.
func (f *Fencer) runningPaths(p path, log logrus.FieldLogger, why string) []path {
	sys := sysblock.Sysfs(f.sysfs)
	var out []path
	for _, sd := range sys.Paths(filepath.Base(p.dev)) {
		sp := path{dev: "/dev/" + sd}
		if st, err := os.ReadFile(filepath.Join(sys.Block(sd), "device", "state")); err == nil && strings.TrimSpace(string(st)) != "running" {
			log.WithFields(logrus.Fields{"path": sp.dev, "state": strings.TrimSpace(string(st))}).Info(why)
			continue
		}
		out = append(out, sp)
	}
	return out
}

// joinedOn records that this host is registered on dev.
func (f *Fencer) joinedOn(dev string) {
	f.mu.Lock()
	f.joined[dev] = true
	f.mu.Unlock()
}

// mode is who asks enforce, and so what it may do.
type mode int

const (
	// modeJoin: the join protocol (after clean-up, registered in etcd
	// under a current lease while no mark names this host): register
	// wherever this host's key is missing.
	modeJoin mode = iota
	// modeLive: anything else (the periodic check, registering on a new PV
	// before a write, a takeover's fence): only while this host is alive,
	// each command bounded by its cut-off, and registering only once etcd
	// proves that no peer can have preempted it (prove).
	modeLive
)

// enforce brings every path of every PV of the VG, as LVM sees it now, to
// what planPath wants for victim (0: none) and proves it. Every path is
// planned before any is changed. Outside the join, a registration needs
// etcd's proof that this host is still registered under its lease with no
// fencing mark, just before it and again just after it (prove): a key
// missing while that holds is a registration the storage lost (a target
// reset without APTPL, a LUN added or reused), never a peer's preempt,
// since a peer marks a host, which needs its lease gone, before it
// preempts it. log hears, at warn, each path that needed a step.
func (f *Fencer) enforce(ctx context.Context, victim uint64, m mode, log logrus.FieldLogger, needed string) error {
	return f.enforceOn(ctx, nil, victim, m, log, needed)
}

// enforceOn is enforce on the paths of pvs (nil: of every PV of the VG).
func (f *Fencer) enforceOn(ctx context.Context, pvs []string, victim uint64, m mode, log logrus.FieldLogger, needed string) error {
	// One at a time: a check's withdrawal must not take back the key a
	// join or a fence just put there, nor unregister the holder of a
	// reservation taken meanwhile.
	f.opMu.Lock()
	defer f.opMu.Unlock()
	if m == modeLive {
		if _, ok := f.alive(); !ok {
			return errNotAlive
		}
		ctx = context.WithValue(ctx, cutoffKey{}, f.live)
	}
	paths, states, err := f.statesOf(ctx, pvs)
	if err != nil {
		return err
	}
	if pvs == nil {
		f.forgetGone(paths)
	}
	plans := make([][]step, len(paths))
	registers := false
	for i := range paths {
		if plans[i], err = planPath(states[i], f.key, victim); err != nil {
			return err
		}
		registers = registers || slices.Contains(plans[i], stepRegister)
	}
	proof := m == modeLive && registers
	if proof {
		if err := f.prove(ctx); err != nil {
			return err
		}
	}
	var registered []path
	var applied error
	for i, p := range paths {
		plog := log.WithField("dev", p.dev)
		if len(plans[i]) > 0 {
			plog.WithField("steps", fmt.Sprint(plans[i])).Warn(needed)
		}
		applied = f.apply(ctx, p, states[i], plans[i], victim, plog)
		if slices.Contains(plans[i], stepRegister) {
			registered = append(registered, p)
		}
		if applied != nil {
			break
		}
	}
	if proof && len(registered) > 0 {
		if err := f.prove(ctx); err != nil {
			// Fenced while it registered (paused between the proof and
			// the command: then its cut-off has passed too, since a peer
			// marks it only once its lease is gone), or it cannot tell:
			// it takes back what it put there, where that cannot release
			// a reservation, with no cut-off (removing its own key is
			// always safe), and counts itself fenced.
			f.withdraw(unbounded(ctx), registered, log)
			if errors.Is(err, errNotAlive) {
				// Past its cut-off: peers may be fencing it by now.
				err = fmt.Errorf("%w: its cut-off passed while it registered its key: it takes that back and rejoins through its clean-up", ErrNotRegistered)
			}
			// Any other failure (etcd did not answer) is passing: the key
			// is taken back, and the next check proves and registers again.
			return err
		}
	}
	return applied
}

// unbounded is ctx without its cut-off bound or its cancellation, for at
// most withdrawTimeout: for taking this host's own key back.
func unbounded(ctx context.Context) context.Context {
	c, cancel := context.WithTimeout(context.WithValue(context.WithoutCancel(ctx), cutoffKey{}, nil), withdrawTimeout)
	context.AfterFunc(c, cancel)
	return c
}

// withdrawTimeout bounds taking a registration back.
const withdrawTimeout = 10 * time.Second

// prove asks etcd, within this host's cut-off, whether it is still
// registered under its lease with no fencing mark (Liveness.Proven): a
// host that is not was fenced, or is about to be (ErrNotRegistered).
func (f *Fencer) prove(ctx context.Context) error {
	pctx, cancel, err := bound(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	err = f.live.Proven(pctx)
	if errors.Is(err, fencing.ErrCutOff) {
		return fmt.Errorf("%w: it may not register on the storage again by itself: %w", ErrNotRegistered, err)
	}
	if err != nil {
		return fmt.Errorf("prove this host still registered before registering its key: %w", err)
	}
	return nil
}

// withdraw unregisters this host's key from paths, except where it holds
// the reservation (unregistering the holder would release it, and any host
// could write).
func (f *Fencer) withdraw(ctx context.Context, paths []path, log logrus.FieldLogger) {
	const left = "this host's key is still registered after it unregistered it (a path is down or does not answer): it stops using the storage now; the key stays on that path until a peer fences this host again or it rejoins"
	var survived []path
	for _, p := range paths {
		plog := log.WithField("dev", p.dev)
		s, err := f.state(ctx, p)
		if err != nil || !s.has(f.key) || (s.res.Held && s.res.Key == f.key) {
			plog.WithError(err).Error("registered this host's key after it was fenced, and cannot take it back here (it holds the reservation, or the path does not answer): it stops using the storage now")
			continue
		}
		// REGISTER AND IGNORE with key 0: no key check and no conflict
		// through a nexus that is not registered (REGISTER would fail
		// there, and mpathpersist's own check of the key against its
		// prkeys), and mpathpersist tells multipathd to forget the key.
		if _, err := f.pr(ctx, p, f.unregisterArgs(p)...); err != nil {
			plog.WithError(err).Error("cannot unregister this host's key after it was fenced")
			continue
		}
		f.mu.Lock()
		delete(f.joined, p.dev) // not registered there any more
		f.mu.Unlock()
		// mpathpersist sends it only through the paths it finds up, and
		// exits 0: read again.
		switch {
		case !f.stillRegistered(ctx, p):
			plog.Warn("unregistered this host's key again: it was fenced while it registered")
		case p.multipath:
			survived = append(survived, p)
		default:
			plog.Error(left)
		}
	}
	// Where the key survived on a map (a path mpathpersist skipped), once
	// every map had its own unregister (the withdrawal's time is bounded
	// as a whole): unregister through each running path of the map, and
	// read again. No peer removes this key: it may have landed after the
	// peer's preempt and proof.
	for _, p := range survived {
		plog := log.WithField("dev", p.dev)
		for _, sp := range f.runningPaths(p, plog, "not unregistering through a path of the map that is not running") {
			if _, err := f.pr(ctx, sp, f.unregisterArgs(p)...); err != nil {
				plog.WithError(err).WithField("path", sp.dev).Warn("cannot unregister this host's key through a path of the map")
			}
		}
		if f.stillRegistered(ctx, p) {
			plog.Error(left)
			continue
		}
		plog.Warn("unregistered this host's key again, through each path of the map: it was fenced while it registered")
	}
}

// unregisterArgs remove this host's key (REGISTER AND IGNORE with key 0)
// from the nexus a command goes through, with the APTPL bit where this
// host registered on p with it: the target applies the last REGISTER's
// APTPL to the whole LUN (SPC-4; LIO), so an unregister without it would
// leave every registration and the reservation to be lost at the SAN's
// next power loss. Only the recorded answer counts: a withdrawal asks the
// storage nothing more.
func (f *Fencer) unregisterArgs(p path) []string {
	args := []string{"--out", "--register-ignore", "--param-sark=0"}
	f.mu.Lock()
	aptpl := f.ptpl[p.dev]
	f.mu.Unlock()
	if aptpl {
		args = append(args, "--param-aptpl")
	}
	return args
}

// stillRegistered reads p's keys: whether this host's is among them (or
// the read failed: then it may be).
func (f *Fencer) stillRegistered(ctx context.Context, p path) bool {
	out, err := f.pr(ctx, p, "--in", "--read-keys")
	keys, perr := ParseKeys(out)
	return err != nil || perr != nil || slices.Contains(keys, f.key)
}

// forgetGone drops from joined the devices that are no PV any more, so
// that a new LUN reusing a device name is joined afresh.
func (f *Fencer) forgetGone(paths []path) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for dev := range f.joined {
		if !slices.ContainsFunc(paths, func(p path) bool { return p.dev == dev }) {
			delete(f.joined, dev)
		}
	}
}

// errNotAlive: outside its join, a host acts on the storage only while its
// lease is provably current.
var errNotAlive = errors.New("this host's lease is not current (not joined, or past its cut-off): it acts on the shared storage only once it has rejoined")

// cutoffKey marks a context whose PR commands are each bounded by this
// host's cut-off (pr).
type cutoffKey struct{}

// alive returns this host's cut-off, if it is alive now.
func (f *Fencer) alive() (time.Time, bool) {
	at, ok := f.live.Cutoff()
	return at, ok && time.Now().Before(at)
}

// bound gives one PR command (or etcd read) of a live-mode operation a
// context that ends at this host's cut-off as it is now (renewals move it
// on): a command is not started, and is killed, once peers may soon be
// fencing this host. (A command already at the target may still land:
// every lease-based bound has that limit.)
func bound(ctx context.Context) (context.Context, context.CancelFunc, error) {
	live, ok := ctx.Value(cutoffKey{}).(Liveness)
	if !ok {
		return ctx, func() {}, nil
	}
	at, ok := live.Cutoff()
	if !ok || !time.Now().Before(at) {
		return nil, nil, errNotAlive
	}
	cctx, cancel := context.WithDeadline(ctx, at)
	return cctx, cancel, nil
}

// Fence cuts host off every path of every PV of the VG, as LVM sees it now,
// and proves it: on each path this host's key is registered, a type 5
// reservation is held and host's key is absent. What is missing is repaired
// first (a new PV: register, reserve); a path this host was cut off itself
// fails the fence. It is idempotent: an absent key is only verified. Only
// a live host fences, each command bounded by its cut-off.
func (f *Fencer) Fence(ctx context.Context, host string) error {
	victim := KeyFor(host)
	if victim == f.key {
		return fmt.Errorf("refusing to fence %s: it is this host", host)
	}
	log := f.log.WithFields(logrus.Fields{"fenced_host": host, "key": hexKey(victim)})
	if err := f.enforce(ctx, victim, modeLive, log, "fencing host on this path"); err != nil {
		return fmt.Errorf("cannot fence %s: %w", host, err)
	}
	log.Warn("fenced host on every path")
	return nil
}

// Join registers this host's key on every path (with APTPL where the
// target has it) and makes sure a type 5 reservation is held. It runs when
// the host joins or rejoins, after it cleaned up and registered in etcd
// under a transaction that requires no fencing mark: a registered host can
// write again. The caller bounds it (heartbeat.joinStorage gives it up
// once the lease is no longer provably current).
func (f *Fencer) Join(ctx context.Context) error {
	if err := f.enforce(ctx, 0, modeJoin, f.log, "joining this path"); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if paths, err := f.paths(ctx); err == nil {
		f.mu.Lock()
		gen := f.relGen
		f.mu.Unlock()
		f.handKeys(ctx, paths, f.log)
		f.mu.Lock()
		f.handedGen = gen // a release during the hand-over leaves it released
		f.mu.Unlock()
	}
	if err := ctx.Err(); err != nil {
		// Its bound (the lease no longer provably current) passed
		// meanwhile: not joined.
		return fmt.Errorf("join: %w", err)
	}
	f.log.WithField("key", hexKey(f.key)).Info("registered the reservation key")
	return nil
}

// JoinPVs registers this host's key on every path of pvs, devices that
// are not (yet) in the VG, and reserves them where no reservation is held:
// the step of `relocvol vg extend` each live host takes before the PVs join
// the VG, so that no LV lands on a LUN a host cannot write or fence. It
// runs only while the host is alive, each registration proven by etcd just
// before and after (as a live host's repair of a new PV: enforce), and
// hands multipathd the key for the maps among them.
func (f *Fencer) JoinPVs(ctx context.Context, pvs []string) error {
	if len(pvs) == 0 {
		return nil
	}
	log := f.log.WithField("pvs", strings.Join(pvs, ","))
	if err := f.enforceOn(ctx, pvs, 0, modeLive, log, "registering on a PV being added to the VG"); err != nil {
		return fmt.Errorf("register on %s: %w", strings.Join(pvs, ", "), err)
	}
	if paths, err := resolveAll(f.sysfs, pvs); err == nil {
		f.handKeysLive(ctx, paths, log)
	}
	return nil
}

// ClearKeys removes from every path of pvs (devices about to join the VG)
// every relocvol key (KeyFor's 0x5256 prefix) but this host's and those of
// keep (the hosts alive now that registered there), preempting each as a
// fence does: a host that died or was fenced since it registered there,
// or a failed extend's leftovers, must not keep a registration on a PV of
// the VG that no fence of it covered. A key of another system is refused:
// the LUN is someone else's. Live mode: only while this host is alive.
func (f *Fencer) ClearKeys(ctx context.Context, pvs []string, keep []string) error {
	kept := map[uint64]bool{f.key: true}
	for _, h := range keep {
		kept[KeyFor(h)] = true
	}
	_, states, err := f.statesOf(ctx, pvs)
	if err != nil {
		return err
	}
	var stale []uint64
	for _, s := range states {
		for _, k := range s.keys {
			if kept[k] || slices.Contains(stale, k) {
				continue
			}
			if k&^(1<<48-1) != keyPrefix {
				return fmt.Errorf("%s carries the reservation key %s, not a relocvol host's: another system uses this LUN; relocvol adds only LUNs no one else reserves", s.dev, hexKey(k))
			}
			stale = append(stale, k)
		}
	}
	slices.Sort(stale)
	for _, k := range stale {
		log := f.log.WithFields(logrus.Fields{"stale_key": hexKey(k), "pvs": strings.Join(pvs, ",")})
		if err := f.enforceOn(ctx, pvs, k, modeLive, log, "removing the key of a host that is not alive from a PV being added to the VG"); err != nil {
			return fmt.Errorf("remove the key %s of a host that is not alive from %s: %w", hexKey(k), strings.Join(pvs, ", "), err)
		}
	}
	return nil
}

// CheckRegistration runs while the host is alive: it repairs what a VG
// change or a target reset left out (a new PV: register there; a path with
// no key or no reservation: register, reserve), and reports
// ErrNotRegistered when its key is missing somewhere and etcd no longer
// proves it registered (enforce): it was fenced, and must stop and rejoin
// through its clean-up rather than register again. A host that is not
// alive checks nothing: its heartbeat is rejoining already.
func (f *Fencer) CheckRegistration(ctx context.Context) error {
	err := f.enforce(ctx, 0, modeLive, f.log, "this host's registration or the reservation is missing on a path (a PV added to the VG, or a target that lost its state): repairing it")
	if errors.Is(err, errNotAlive) {
		return nil
	}
	if err == nil {
		f.handBack(ctx)
	}
	return err
}

// EnsureJoined registers this host on every PV of the VG it has not joined
// yet (one added with vgextend since), before the host writes anything: a
// peer may have reserved the new LUN already, and then an unregistered
// host's writes (mkfs, LVM metadata) fail. It asks the storage only when the
// VG has a PV this host has not seen registered; otherwise it costs one
// `pvs`. A host that is not alive (a fresh process re-mounting a volume in
// use before it has registered) registers nowhere: only its join does;
// whatever it writes meanwhile to a PV it is not registered on fails at
// the storage.
func (f *Fencer) EnsureJoined(ctx context.Context) error {
	paths, err := f.paths(ctx)
	if err != nil {
		return err
	}
	f.mu.Lock()
	missing := false
	for _, p := range paths {
		missing = missing || !f.joined[p.dev]
	}
	f.mu.Unlock()
	if !missing {
		return nil
	}
	return f.CheckRegistration(ctx)
}

// Fenced reports whether this host's key is registered on no path: it was
// preempted (or never joined), so the host must clean up before Join. A key
// missing from only some paths is a PV added since it joined, which
// CheckRegistration and Join register.
func (f *Fencer) Fenced(ctx context.Context) (bool, error) {
	_, states, err := f.states(ctx)
	if err != nil {
		return false, err
	}
	return !f.registeredOnAny(states), nil
}
