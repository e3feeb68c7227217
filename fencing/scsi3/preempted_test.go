package scsi3

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/execx"
)

// joinedOn2 is node-b's fencer on two PVs after its join registered it on
// both (it found itself registered there).
func joinedOn2(t *testing.T, f *execx.Fake, opts ...Option) (*Fencer, []string) {
	t.Helper()
	fn := newFencerOn(t, f, 2, opts...)
	d := devsOf(fn)
	f.Script = script(readKeys(d[0], keyA, keyB), readRes(t, d[0], held), readKeys(d[1], keyA, keyB), readRes(t, d[1], held))
	runAll(t, f, fn.Join(context.Background()))
	return fn, d
}

// registered reports whether f ran a registration of node-b's key.
func registered(f *execx.Fake) bool {
	for _, argv := range f.Ran {
		if cmd := strings.Join(argv, " "); strings.Contains(cmd, "--register-ignore") && !strings.Contains(cmd, "--param-sark=0") {
			return true
		}
	}
	return false
}

// A host whose key is gone from a PV where others are registered, while
// etcd says a peer marked it (a peer marks a host before it preempts it),
// was preempted there, and that peer may be half way through its other
// PVs: it never puts its key back, whatever the other PVs say, neither in
// its periodic check nor in a takeover's fence. Two LUNs: the victim reads
// d0 (its key still there), the peer preempts d0 and d1, the victim reads
// d1 (key gone).
func TestNeverReRegistersWherePreempted(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(*Fencer) error
	}{
		{"periodic check", func(fn *Fencer) error { return fn.CheckRegistration(context.Background()) }},
		{"a takeover's fence", func(fn *Fencer) error { return fn.Fence(context.Background(), "node-c") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &execx.Fake{}
			fn, d := joinedOn2(t, f)
			fn.live = fenced()
			f.Ran = nil
			f.Script = script(readKeys(d[0], keyA, keyB), readRes(t, d[0], held), readKeys(d[1], keyA), readRes(t, d[1], held))
			err := tc.call(fn)
			if registered(f) {
				t.Fatalf("registered its key again where it had been preempted: ran %q", f.Ran)
			}
			if !errors.Is(err, ErrNotRegistered) || !errors.Is(err, fencing.ErrCutOff) {
				t.Fatalf("err = %v, want ErrNotRegistered (the host was fenced: it cleans up and rejoins)", err)
			}
		})
	}
}

// A key the storage lost while etcd proves that no peer can have
// preempted it (this host's key bound to its lease, no mark) is registered
// again by a live host: a LUN that lost its registrations (a reset without
// APTPL, another host registering first), or a new LUN under a device name
// a PV that left the VG once had. Fencing itself over it would stop its
// containers for nothing.
func TestReRegistersWhatTheStorageLost(t *testing.T) {
	f := &execx.Fake{}
	dir := t.TempDir()
	d0, d1 := filepath.Join(dir, "sdb"), filepath.Join(dir, "sdc")
	for _, d := range []string{d0, d1} {
		if err := os.WriteFile(d, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pvs := []string{d0, d1}
	fn := newFencerOn(t, f, 0)
	fn.devices = func(context.Context) ([]string, error) { return pvs, nil }
	ctx := context.Background()
	f.Script = script(readKeys(d0, keyA, keyB), readRes(t, d0, held), readKeys(d1, keyA, keyB), readRes(t, d1, held))
	runAll(t, f, fn.Join(ctx))
	// sdc leaves the VG; a check runs; a new LUN shows up as sdc, which
	// node-a adds to the VG, registering and reserving it first.
	pvs = []string{d0}
	f.Script = script(readKeys(d0, keyA, keyB), readRes(t, d0, held))
	runAll(t, f, fn.CheckRegistration(ctx))
	pvs = []string{d0, d1}
	f.Script = script(readKeys(d0, keyA, keyB), readRes(t, d0, held), readKeys(d1, keyA), readRes(t, d1, held),
		register(t, d1), readKeys(d1, keyA, keyB), readRes(t, d1, held))
	runAll(t, f, fn.CheckRegistration(ctx))
	// d0 loses every registration (a target reset without APTPL) and
	// node-a registers there first.
	f.Script = script(readKeys(d0, keyA), readRes(t, d0, held), readKeys(d1, keyA, keyB), readRes(t, d1, held),
		register(t, d0), readKeys(d0, keyA, keyB), readRes(t, d0, held))
	runAll(t, f, fn.CheckRegistration(ctx))
}

// A host fenced between etcd's proof and its registration (paused there:
// its own clock did not see the time pass) finds out from the proof after
// it, unregisters where it does not hold the reservation, and reports
// itself fenced.
func TestWithdrawsARegistrationMadeWhileFenced(t *testing.T) {
	f := &execx.Fake{}
	fn, d := joinedOn2(t, f)
	proofs := 0
	fn.live = proofSequence{fakeLive: liveFor(time.Hour), n: &proofs, fail: 2}
	// Unregistered with REGISTER AND IGNORE (no key check, no conflict
	// through a nexus that is not registered), then read again.
	unregister := []execx.Call{{Argv: []string{"sg_persist", "--out", "--register-ignore", "--param-sark=0", "--param-aptpl", d[1]}}, readKeys(d[1], keyA)}
	f.Script = script(readKeys(d[0], keyA, keyB), readRes(t, d[0], held), readKeys(d[1], keyA), readRes(t, d[1], held),
		register(t, d[1]), readKeys(d[1], keyA, keyB), readRes(t, d[1], held),
		readKeys(d[1], keyA, keyB), readRes(t, d[1], held), unregister)
	err := fn.CheckRegistration(context.Background())
	if !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("err = %v, want ErrNotRegistered", err)
	}
	runAll(t, f, nil)
}

// proofSequence is a liveness whose fail-th proof (from 1) and those after
// it fail: the host was marked in between.
type proofSequence struct {
	fakeLive
	n    *int
	fail int
}

func (p proofSequence) Proven(context.Context) error {
	if *p.n++; *p.n >= p.fail {
		return markedNodeB
	}
	return nil
}

// A fresh process (the plugin's re-mount of volumes in use, before it has
// registered in etcd) has joined nothing yet: it registers nowhere, since
// only the join protocol (clean-up, lease, no mark) may; a PV that lacks
// its key is left to that join.
func TestNoRegistrationBeforeJoining(t *testing.T) {
	f := &execx.Fake{}
	fn := newFencerOn(t, f, 2)
	fn.live = fakeLive{} // not joined yet
	d := devsOf(fn)
	f.Script = script(readKeys(d[0], keyA, keyB), readRes(t, d[0], held), readKeys(d[1], keyA), readRes(t, d[1], held))
	if err := fn.EnsureJoined(context.Background()); err != nil {
		t.Fatalf("EnsureJoined before joining: %v, want nil (nothing done: the join registers)", err)
	}
	if registered(f) {
		t.Fatalf("a process that has not joined registered its key: ran %q", f.Ran)
	}
	if err := fn.Fence(context.Background(), "node-a"); !errors.Is(err, errNotAlive) {
		t.Fatalf("fence by a host that has not joined: %v, want errNotAlive", err)
	}
}

// deadlineRunner records the deadline of each command's context.
type deadlineRunner struct {
	*execx.Fake
	deadlines []time.Time
}

func (r *deadlineRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	d, _ := ctx.Deadline()
	r.deadlines = append(r.deadlines, d)
	return r.Fake.Run(ctx, name, args...)
}

// Outside its join, every PR command on this host's behalf ends at its
// cut-off, as it is when the command starts; past it, nothing starts: a
// check or a fence that began while the host was alive cannot register,
// reserve or preempt once peers may be fencing it.
func TestStorageCallsBoundedByTheCutoff(t *testing.T) {
	f := &execx.Fake{}
	r := &deadlineRunner{Fake: f}
	fn := newFencer(t, f)
	fn.run = r
	cut := time.Now().Add(10 * time.Minute)
	fn.live = fakeLive{at: cut, ok: true}
	dev := devOf(fn)
	f.Script = script(readKeys(dev, keyA, keyB), readRes(t, dev, held), preempt(dev, "--preempt-abort"), readKeys(dev, keyB), readRes(t, dev, held))
	runAll(t, f, fn.Fence(context.Background(), "node-a"))
	if len(r.deadlines) != 5 {
		t.Fatalf("ran %d commands, want 5", len(r.deadlines))
	}
	for i, d := range r.deadlines {
		if !d.Equal(cut) {
			t.Fatalf("command %d (%q) ran with deadline %v, want the cut-off %v", i, f.Ran[i], d, cut)
		}
	}
	f.Ran, r.deadlines = nil, nil
	fn.live = fakeLive{at: time.Now().Add(-time.Millisecond), ok: true} // past the cut-off
	if err := fn.CheckRegistration(context.Background()); err != nil {
		t.Fatalf("check past the cut-off: %v, want nil (the heartbeat is rejoining)", err)
	}
	if err := fn.Fence(context.Background(), "node-a"); !errors.Is(err, errNotAlive) {
		t.Fatalf("fence past the cut-off: %v, want errNotAlive", err)
	}
	if len(f.Ran) != 0 {
		t.Fatalf("ran %q past the cut-off", f.Ran)
	}
}
