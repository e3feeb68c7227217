package scsi3

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/execx"
)

// pausedLive is node-b's liveness when it is paused in the middle of its
// registration: until the register command ran it is alive and proven; by
// the time the command returns (the VM resumed) its lease expired (so its
// cut-off passed: a peer can mark a host only once its lease is gone, which
// is after the cut-off) and a peer marked and preempted it.
type pausedLive struct{ resumed *atomic.Bool }

func (l pausedLive) Cutoff() (time.Time, bool) {
	if l.resumed.Load() {
		return time.Now().Add(-time.Second), true
	}
	return time.Now().Add(time.Hour), true
}

func (l pausedLive) Proven(context.Context) error {
	if l.resumed.Load() {
		return markedNodeB
	}
	return nil
}

type pausingRunner struct {
	*execx.Fake
	resumed *atomic.Bool
}

func (r pausingRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := r.Fake.Run(ctx, name, args...)
	if strings.Contains(strings.Join(args, " "), "--register-ignore") {
		r.resumed.Store(true) // the command landed; the host was paused meanwhile
	}
	return out, err
}

// A host paused between its proof and its registration is, by the time
// the registration lands, past its cut-off (a peer marks a host only once
// its lease is gone): it still takes the registration back (removing its
// own key needs no cut-off) and reports itself fenced. (Under the cut-off
// bound the withdrawal could run no command, and the check answered nil:
// the late registration stayed on the LUN the peer had preempted.)
func TestWithdrawsPastTheCutoff(t *testing.T) {
	f := &execx.Fake{}
	fn, d := joinedOn2(t, f)
	var resumed atomic.Bool
	fn.run = pausingRunner{Fake: f, resumed: &resumed}
	fn.live = pausedLive{resumed: &resumed}
	f.Ran = nil
	unregister := execx.Call{Argv: []string{"sg_persist", "--out", "--register", "--param-rk=" + hexKey(keyB), "--param-sark=0", d[1]}}
	// After the register, the check of it is past the cut-off (refused):
	// the withdrawal reads the path and unregisters, unbounded.
	f.Script = script(readKeys(d[0], keyA, keyB), readRes(t, d[0], held), readKeys(d[1], keyA), readRes(t, d[1], held),
		register(t, d[1]), readKeys(d[1], keyA, keyB), readRes(t, d[1], held), unregister)
	err := fn.CheckRegistration(context.Background())
	t.Logf("CheckRegistration: %v; ran %q", err, f.Ran)
	if left := f.Left(); len(left) != 0 {
		t.Errorf("the late registration was not withdrawn: commands not run %q", left)
	}
	if !errors.Is(err, ErrNotRegistered) {
		t.Errorf("err = %v, want ErrNotRegistered (the host was fenced)", err)
	}
}
