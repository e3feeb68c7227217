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
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/internal/execx"
)

// Errors callers branch on.
var (
	// ErrReservationConflict: the target refused the command because of a
	// reservation (sg_persist exit 24), e.g. this host's own key is gone.
	ErrReservationConflict = errors.New("reservation conflict")
	// ErrNotRegistered: this host's key is not registered on a path, so it
	// may neither write nor fence others.
	ErrNotRegistered = errors.New("this host's key is not registered")
)

// sg3_utils exit codes (sg_lib.h) that need handling.
const (
	exitNotReady       = 2
	exitUnitAttention  = 6
	exitAbortedCommand = 11
	exitResConflict    = 24
	exitBusy           = 26
)

// keyPrefix makes relocvol's keys recognisable in `sg_persist --read-keys`
// output: 0x5256…, "RV".
const keyPrefix = uint64(0x5256) << 48

// KeyFor derives the 8-byte reservation key of a host from its name: stable
// across restarts and known to every peer. Never zero (zero unregisters).
func KeyFor(host string) uint64 {
	sum := sha256.Sum256([]byte("relocvol-pr-key:" + host))
	return keyPrefix | binary.BigEndian.Uint64(sum[:8])&(1<<48-1) | 1
}

func hexKey(k uint64) string { return "0x" + strconv.FormatUint(k, 16) }

// Fencer implements the plugin's Fencer with SCSI-3 PR.
type Fencer struct {
	run     execx.Runner
	host    string
	key     uint64
	devices func(ctx context.Context) ([]string, error)
	abort   bool
	sysfs   string
	retries int
	delay   time.Duration
	log     logrus.FieldLogger
}

// Option configures a Fencer.
type Option func(*Fencer)

// WithPlainPreempt fences with PREEMPT instead of PREEMPT AND ABORT, for
// targets that mishandle the abort (LIO's tcm_loop hangs on it).
func WithPlainPreempt() Option { return func(f *Fencer) { f.abort = false } }

// WithLogger sets the logger.
func WithLogger(log logrus.FieldLogger) Option { return func(f *Fencer) { f.log = log } }

// WithSysfs reads device topology under root instead of /sys (tests).
func WithSysfs(root string) Option { return func(f *Fencer) { f.sysfs = root } }

// WithRetry sets how often and how long apart a command that met a unit
// attention or a busy target is retried.
func WithRetry(n int, delay time.Duration) Option {
	return func(f *Fencer) { f.retries, f.delay = n, delay }
}

// New returns the fencer of host; devices lists the VG's physical volumes
// (LUNs or multipath maps) each time it is needed, so new PVs are covered.
func New(run execx.Runner, host string, devices func(ctx context.Context) ([]string, error), opts ...Option) *Fencer {
	f := &Fencer{
		run: run, host: host, key: KeyFor(host), devices: devices, abort: true,
		sysfs: "/sys", retries: 5, delay: 200 * time.Millisecond, log: logrus.StandardLogger(),
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

func (p path) tool() string {
	if p.multipath {
		return "mpathpersist"
	}
	return "sg_persist"
}

// paths resolves the PVs to the devices that take PR commands.
func (f *Fencer) paths(ctx context.Context) ([]path, error) {
	pvs, err := f.devices(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the LUNs to fence on: %w", err)
	}
	var out []path
	seen := map[string]bool{}
	for _, pv := range pvs {
		p, err := resolve(f.sysfs, pv)
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
	block := filepath.Join(sysfs, "class", "block", name)
	if strings.HasPrefix(name, "dm-") {
		uuid, err := os.ReadFile(filepath.Join(block, "dm", "uuid"))
		if err != nil {
			return path{}, fmt.Errorf("PV %s is device-mapper device %s but its uuid cannot be read: %w", pv, name, err)
		}
		if !strings.HasPrefix(string(uuid), "mpath-") {
			return path{}, fmt.Errorf("PV %s is device-mapper device %s (%s), not a multipath map: put the VG's PVs directly on the SAN LUNs or on multipath maps, so that they can be fenced", pv, name, strings.TrimSpace(string(uuid)))
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

// pr runs one PR command, retrying what a target says after a reset, a
// re-login or a preemption (unit attention), or while busy.
func (f *Fencer) pr(ctx context.Context, p path, args ...string) ([]byte, error) {
	args = append(args, p.dev)
	for attempt := 0; ; attempt++ {
		out, err := f.run.Run(ctx, p.tool(), args...)
		code := execx.ExitCode(err)
		switch {
		case err == nil:
			return out, nil
		case code == exitResConflict:
			return out, fmt.Errorf("%s: %w: %w", p.dev, ErrReservationConflict, err)
		case (code == exitUnitAttention || code == exitNotReady || code == exitBusy || code == exitAbortedCommand) && attempt < f.retries:
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

// Keys returns the keys registered on p.
func (f *Fencer) keys(ctx context.Context, p path) ([]uint64, error) {
	out, err := f.pr(ctx, p, "--in", "--read-keys")
	if err != nil {
		return nil, fmt.Errorf("read keys: %w", err)
	}
	return ParseKeys(out)
}

// Join registers this host's key on every path and makes sure a type 5
// reservation is held. It is called when the host starts or rejoins, after
// the plugin has cleaned up: a registered host can write again.
func (f *Fencer) Join(ctx context.Context) error {
	paths, err := f.paths(ctx)
	if err != nil {
		return err
	}
	key := hexKey(f.key)
	for _, p := range paths {
		if _, err := f.pr(ctx, p, "--out", "--register-ignore", "--param-sark="+key); err != nil {
			return fmt.Errorf("register key %s: %w", key, err)
		}
		out, err := f.pr(ctx, p, "--in", "--read-reservation")
		if err != nil {
			return fmt.Errorf("read the reservation: %w", err)
		}
		res, err := ParseReservation(out)
		if err != nil {
			return fmt.Errorf("%s: %w", p.dev, err)
		}
		if res.Held {
			continue
		}
		_, err = f.pr(ctx, p, "--out", "--reserve", "--param-rk="+key, "--prout-type=5")
		if errors.Is(err, ErrReservationConflict) {
			continue // a peer reserved it first: one reservation is all it takes
		}
		if err != nil {
			return fmt.Errorf("reserve (type 5) with key %s: %w", key, err)
		}
		f.log.WithFields(logrus.Fields{"dev": p.dev, "key": key}).Info("took the type 5 reservation")
	}
	f.log.WithFields(logrus.Fields{"key": key, "paths": len(paths)}).Info("registered the reservation key")
	return nil
}

// Registered reports whether this host's key is registered on every path;
// false means it was fenced (or never joined) and must not write.
func (f *Fencer) Registered(ctx context.Context) (bool, error) {
	paths, err := f.paths(ctx)
	if err != nil {
		return false, err
	}
	for _, p := range paths {
		keys, err := f.keys(ctx, p)
		if err != nil {
			return false, err
		}
		if !slices.Contains(keys, f.key) {
			return false, nil
		}
	}
	return true, nil
}

// Fenced reports whether this host's key is missing from some path: it was
// preempted (or never registered), so the host must clean up before Join.
func (f *Fencer) Fenced(ctx context.Context) (bool, error) {
	ok, err := f.Registered(ctx)
	return !ok, err
}

// Fence removes host's key from every path. It is idempotent: a key that is
// already gone counts as fenced. It fails if this host is not registered
// itself (a fenced host must not fence others) or the key survives.
func (f *Fencer) Fence(ctx context.Context, host string) error {
	victim := KeyFor(host)
	if victim == f.key {
		return fmt.Errorf("refusing to fence %s: it is this host", host)
	}
	paths, err := f.paths(ctx)
	if err != nil {
		return err
	}
	mode := "--preempt-abort"
	if !f.abort {
		mode = "--preempt"
	}
	for _, p := range paths {
		log := f.log.WithFields(logrus.Fields{"fenced_host": host, "dev": p.dev, "key": hexKey(victim)})
		keys, err := f.keys(ctx, p)
		if err != nil {
			return err
		}
		if !slices.Contains(keys, victim) {
			log.Info("host's key is not registered here: already fenced")
			continue
		}
		if !slices.Contains(keys, f.key) {
			return fmt.Errorf("cannot fence %s on %s: %w (it may have been fenced itself)", host, p.dev, ErrNotRegistered)
		}
		log.Warn("preempting host's reservation key")
		if _, err := f.pr(ctx, p, "--out", mode, "--param-rk="+hexKey(f.key), "--param-sark="+hexKey(victim), "--prout-type=5"); err != nil {
			return fmt.Errorf("fence %s on %s: %w", host, p.dev, err)
		}
		keys, err = f.keys(ctx, p)
		if err != nil {
			return err
		}
		if slices.Contains(keys, victim) {
			return fmt.Errorf("fence %s on %s: key %s still registered after the preempt", host, p.dev, hexKey(victim))
		}
		log.Warn("fenced host on this path")
	}
	return nil
}

var (
	genRe     = regexp.MustCompile(`PR generation=0x([0-9a-fA-F]+)`)
	keyLineRe = regexp.MustCompile(`^\s*(?:Key\s*=\s*)?0x([0-9a-fA-F]+)\s*$`)
)

// ParseKeys reads `sg_persist --in --read-keys` (or mpathpersist) output.
func ParseKeys(out []byte) ([]uint64, error) {
	text := string(out)
	if !genRe.MatchString(text) {
		return nil, fmt.Errorf("unexpected read-keys output: %q", strings.TrimSpace(text))
	}
	if strings.Contains(text, "NO registered reservation keys") {
		return nil, nil
	}
	var keys []uint64
	for _, line := range strings.Split(text, "\n") {
		m := keyLineRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		k, err := strconv.ParseUint(m[1], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", m[1], err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// Reservation is what `--read-reservation` says.
type Reservation struct {
	Held bool
	Key  uint64
	Type string // e.g. "Write Exclusive, registrants only"
}

var (
	resKeyRe  = regexp.MustCompile(`Key\s*=\s*0x([0-9a-fA-F]+)`)
	resTypeRe = regexp.MustCompile(`type:\s*(.+?)\s*$`)
)

// ParseReservation reads `sg_persist --in --read-reservation` output.
func ParseReservation(out []byte) (Reservation, error) {
	text := string(out)
	if !genRe.MatchString(text) {
		return Reservation{}, fmt.Errorf("unexpected read-reservation output: %q", strings.TrimSpace(text))
	}
	if strings.Contains(text, "NO reservation held") {
		return Reservation{}, nil
	}
	m := resKeyRe.FindStringSubmatch(text)
	if m == nil {
		return Reservation{}, fmt.Errorf("read-reservation output names no key: %q", strings.TrimSpace(text))
	}
	k, err := strconv.ParseUint(m[1], 16, 64)
	if err != nil {
		return Reservation{}, fmt.Errorf("reservation key %q: %w", m[1], err)
	}
	r := Reservation{Held: true, Key: k}
	for _, line := range strings.Split(text, "\n") {
		if t := resTypeRe.FindStringSubmatch(line); t != nil {
			r.Type = t[1]
		}
	}
	return r, nil
}
