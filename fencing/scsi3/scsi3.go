// Package scsi3 fences hosts with SCSI-3 persistent reservations on the LUNs
// of the shared volume group.
//
// A reservation covers a whole LUN, so it fences hosts, not volumes: every
// live host registers its key on every path of every LUN; one holds a
// type 5 reservation (Write Exclusive, Registrants Only), so that only
// registered hosts may write. Fencing a host removes its key with PREEMPT
// (AND ABORT, which also aborts its queued commands, where the target
// handles it); from then on its writes fail with a reservation conflict.
// Per-volume exclusivity comes from the plugin's claims, not from here.
//
// Each host's key is derived from its name (see KeyFor), so any peer can
// fence a dead host without asking it anything.
package scsi3

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/execx"
	"github.com/relocvol/relocvol/internal/sysblock"
)

// Errors callers branch on.
var (
	// ErrReservationConflict: the target refused the command because of a
	// reservation (sg_persist exit 24, mpathpersist 11), e.g. this host's own key is gone.
	ErrReservationConflict = errors.New("reservation conflict")
	// ErrNotRegistered: this host's key is not registered on a path where
	// other hosts' are, so it was fenced itself: it may neither write nor
	// fence others (errors.Is fencing.ErrCutOff too).
	ErrNotRegistered error = notRegistered{}
)

// The commands this package runs: sg_persist on SCSI disks, mpathpersist on
// multipath maps (it registers on every path of the map, and tells
// multipathd the key so that paths added later are registered too).
var (
	SGPersist    = execx.Tool{Name: "sg_persist", Package: "sg3-utils"}
	MPathPersist = execx.Tool{Name: "mpathpersist", Package: "multipath-tools"}
)

// Tools are every command this package may run: the managed plugin's rootfs
// carries them all; CheckTools says which this host needs.
var Tools = []execx.Tool{SGPersist, MPathPersist, MultipathD}

// exitCodes are the exit statuses pr branches on, per tool: sg3_utils'
// (sg_lib.h) and mpathpersist's (mpath_persist.h, MPATH_PR_*) differ:
// mpathpersist's 11 is a reservation conflict, sg_persist's an aborted
// command. noExit: the tool has no such status (never -1, which
// execx.ExitCode gives a command that did not start or was killed).
type exitCodes struct{ notReady, unitAttention, aborted, conflict, busy int }

const noExit = -1000

var (
	sgExits    = exitCodes{notReady: 2, unitAttention: 6, aborted: 11, conflict: 24, busy: 26}
	mpathExits = exitCodes{notReady: 2, unitAttention: 6, aborted: 8, conflict: 11, busy: noExit}
)

func (p path) exits() exitCodes {
	if p.multipath {
		return mpathExits
	}
	return sgExits
}

// keyPrefix makes relocvol's keys recognisable in `sg_persist --read-keys`
// output: 0x5256…, "RV".
const keyPrefix = uint64(0x5256) << 48

// KeyFor derives the 8-byte reservation key of a host from its name: stable
// across restarts and known to every peer. Never zero (zero unregisters).
func KeyFor(host string) uint64 {
	sum := sha256.Sum256([]byte("relocvol-pr-key:" + host))
	return keyPrefix | binary.BigEndian.Uint64(sum[:8])&(1<<48-1) | 1
}

// KeyHex is host's key as sg_persist, mpathpersist and multipath.conf
// write it (0x5256…): what an operator compares and configures.
func KeyHex(host string) string { return hexKey(KeyFor(host)) }

func hexKey(k uint64) string { return "0x" + strconv.FormatUint(k, 16) }

type notRegistered struct{}

func (notRegistered) Error() string        { return "this host's key is not registered" }
func (notRegistered) Is(target error) bool { return target == fencing.ErrCutOff }

var _ fencing.Method = (*Fencer)(nil)

// Liveness is this host's own liveness (heartbeat.Heartbeat).
type Liveness interface {
	// Cutoff is when this host may hold no volume any more and its peers
	// may soon fence it; ok is false while it has not joined, or has lost
	// its lease.
	Cutoff() (at time.Time, ok bool)
	// Proven asks etcd, now, whether this host's key is still bound to
	// the lease it renews and no fencing mark names it: then no peer can
	// have preempted it since it joined (a peer marks a host, which needs
	// its lease gone, before it preempts it). fencing.ErrCutOff when not.
	Proven(ctx context.Context) error
}

// Fencer implements the plugin's Fencer with SCSI-3 PR.
type Fencer struct {
	run     execx.Runner
	host    string
	key     uint64
	live    Liveness
	devices func(ctx context.Context) ([]string, error)
	abort   bool
	sysfs   string
	retries int
	delay   time.Duration
	log     logrus.FieldLogger

	// opMu serializes the operations that change PR state (enforce: join,
	// check, fence, and their withdrawals).
	opMu sync.Mutex
	mu   sync.Mutex
	ptpl map[string]bool // device -> the target keeps registrations through power loss
	// joined are the devices where this host registered (or found itself
	// registered) since this process started: a device not in it is a PV
	// added since; its key missing from one in it means it was preempted
	// there.
	joined map[string]bool
	// relGen counts the releases (ReleaseKeys); handedGen is relGen as it
	// was when a hand-over (the join's, or a check's) last gave multipathd
	// the key with no release in between. They differ while the key is
	// released; a hand-over outside the join that a release overtook
	// takes the key back (handKeysLive).
	relGen, handedGen uint64
	// mpConf is the multipath configuration mpathpersist reads here.
	mpConf string
}

// Option configures a Fencer.
type Option func(*Fencer)

// WithPlainPreempt fences with PREEMPT instead of PREEMPT AND ABORT, for
// targets that mishandle the abort (LIO's tcm_loop hangs on it).
func WithPlainPreempt() Option { return func(f *Fencer) { f.abort = false } }

// WithLogger sets the logger.
func WithLogger(log logrus.FieldLogger) Option { return func(f *Fencer) { f.log = log } }

// WithMultipathConf reads the multipath configuration from file (tests).
func WithMultipathConf(file string) Option { return func(f *Fencer) { f.mpConf = file } }

// WithSysfs reads device topology under root instead of /sys (tests).
func WithSysfs(root string) Option { return func(f *Fencer) { f.sysfs = root } }

// WithRetry sets how often and how long apart a command that met a unit
// attention or a busy target is retried.
func WithRetry(n int, delay time.Duration) Option {
	return func(f *Fencer) { f.retries, f.delay = n, delay }
}

// New returns the fencer of host; devices lists the VG's physical volumes
// (LUNs or multipath maps) each time it is needed, so new PVs are covered.
// live is the host's liveness: outside its join, this host acts on the
// storage only while it is alive, each command bounded by its cut-off.
func New(run execx.Runner, host string, live Liveness, devices func(ctx context.Context) ([]string, error), opts ...Option) *Fencer {
	f := &Fencer{
		run: run, host: host, key: KeyFor(host), live: live, devices: devices, abort: true,
		sysfs: "/sys", retries: 5, delay: 200 * time.Millisecond, log: logrus.StandardLogger(),
		ptpl: map[string]bool{}, joined: map[string]bool{}, mpConf: "/etc/multipath.conf",
	}
	for _, o := range opts {
		o(f)
	}
	return f
}

// Name implements the plugin's Fencer.
func (f *Fencer) Name() string { return "scsi3" }

// Key returns this host's reservation key.
func (f *Fencer) Key() uint64 { return f.key }

// path is one place a PR command goes: a SCSI disk (sg_persist) or a
// multipath map (mpathpersist, which covers all of the map's paths).
type path struct {
	dev       string
	multipath bool
}

func (p path) tool() execx.Tool {
	if p.multipath {
		return MPathPersist
	}
	return SGPersist
}

// paths resolves the PVs to the devices that take PR commands.
func (f *Fencer) paths(ctx context.Context) ([]path, error) {
	pvs, err := f.devices(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the LUNs to fence on: %w", err)
	}
	return resolveAll(f.sysfs, pvs)
}

// resolveAll resolves pvs, each device once.
func resolveAll(sysfs string, pvs []string) ([]path, error) {
	var out []path
	seen := map[string]bool{}
	for _, pv := range pvs {
		p, err := resolve(sysfs, pv)
		if err != nil {
			return nil, err
		}
		if !seen[p.dev] {
			seen[p.dev] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// resolve maps a PV path to the device PR commands go to: the whole disk
// for a partition, the map itself for a multipath map.
func resolve(sysfs, pv string) (path, error) {
	real, err := filepath.EvalSymlinks(pv)
	if err != nil {
		return path{}, fmt.Errorf("resolve PV %s: %w", pv, err)
	}
	name := filepath.Base(real)
	sys := sysblock.Sysfs(sysfs)
	block := sys.Block(name)
	if strings.HasPrefix(name, "dm-") {
		uuid, err := sys.DMUUID(name)
		if err != nil {
			return path{}, fmt.Errorf("PV %s is device-mapper device %s but its uuid cannot be read: %w", pv, name, err)
		}
		if !sys.IsMultipathMap(name) {
			return path{}, fmt.Errorf("PV %s is device-mapper device %s (%s), not a multipath map: put the VG's PVs directly on the SAN LUNs or on multipath maps, so that they can be fenced", pv, name, uuid)
		}
		return path{dev: real, multipath: true}, nil
	}
	if _, err := os.Stat(filepath.Join(block, "partition")); err == nil {
		// A partition: PR commands go to the disk holding it.
		link, err := filepath.EvalSymlinks(block)
		if err != nil {
			return path{}, fmt.Errorf("find the disk of partition %s: %w", pv, err)
		}
		return path{dev: "/dev/" + filepath.Base(filepath.Dir(link))}, nil
	}
	return path{dev: real}, nil
}

// CheckTools verifies, at start-up, that the commands fencing the VG's PVs
// as they are now need are on PATH (lookPath: exec.LookPath): sg_persist
// always, mpathpersist only when a PV is a multipath map. Requiring
// mpathpersist everywhere would make every host install multipath-tools,
// including hosts without dm-multipath that run the bare binary (the VM
// lab's); the managed plugin carries both anyway. A multipath PV added
// later without mpathpersist fails its first PR command, which names it.
func (f *Fencer) CheckTools(ctx context.Context, lookPath func(string) (string, error)) error {
	paths, err := f.paths(ctx)
	if err != nil {
		return err
	}
	need := []execx.Tool{SGPersist}
	var devs []string
	for _, p := range paths {
		need = append(need, p.tool())
		if p.multipath {
			devs = append(devs, p.dev+" (a multipath map)")
		} else {
			devs = append(devs, p.dev)
		}
	}
	if err := execx.CheckTools(lookPath, need); err != nil {
		return fmt.Errorf("fencing the PVs %s: %w", strings.Join(devs, ", "), err)
	}
	return nil
}

// pr runs one PR command, retrying what a target says after a reset, a
// re-login or a preemption (unit attention), or while busy.
func (f *Fencer) pr(ctx context.Context, p path, args ...string) ([]byte, error) {
	args = append(args, p.dev)
	for attempt := 0; ; attempt++ {
		cctx, cancel, err := bound(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.dev, err)
		}
		out, err := f.run.Run(cctx, p.tool().Name, args...)
		cancel()
		code, ex := execx.ExitCode(err), p.exits()
		switch {
		case err == nil:
			return out, nil
		case code == ex.conflict:
			return out, fmt.Errorf("%s: %w: %w", p.dev, ErrReservationConflict, err)
		case (code == ex.unitAttention || code == ex.notReady || code == ex.busy || code == ex.aborted) && attempt < f.retries:
			f.log.WithFields(logrus.Fields{"dev": p.dev, "exit": code}).Debug("PR command to retry")
			select {
			case <-ctx.Done():
				return out, fmt.Errorf("%s: %w", p.dev, ctx.Err())
			case <-time.After(f.delay):
			}
		default:
			return out, fmt.Errorf("%s: %w", p.dev, err)
		}
	}
}
