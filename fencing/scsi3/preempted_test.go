package scsi3

import (
	"context"
	"errors"
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
		if strings.Contains(strings.Join(argv, " "), "--register-ignore") {
			return true
		}
	}
	return false
}

// A host whose key is gone from a PV it had joined was preempted there
// (a peer fenced it, and that peer may be half way through its other
// PVs): it never puts its key back, whatever the other PVs say, neither
// in its periodic check nor in a takeover's fence. Two LUNs: the victim
// reads d0 (its key still there), the peer preempts d0 and d1, the
// victim reads d1 (key gone).
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
