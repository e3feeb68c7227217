package scsi3

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

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
	// Unregistered with REGISTER AND IGNORE (no key check, no conflict
	// through a nexus that is not registered), then read again.
	unregister := []execx.Call{{Argv: []string{"sg_persist", "--out", "--register-ignore", "--param-sark=0", "--param-aptpl", d[1]}}, readKeys(d[1], keyA)}
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

// On a map, a withdrawal goes through mpathpersist, which unregisters only
// through the paths it finds up and exits 0: the host reads the keys
// again and says so where its key is still there (review of issue 25,
// finding 4), rather than counting the key gone.
func TestWithdrawOnMapRereads(t *testing.T) {
	pv, f, fn := multipathFencer(t)
	log, hook := test.NewNullLogger()
	fn.log = log
	proofs := 0
	fn.live = proofSequence{fakeLive: liveFor(time.Hour), n: &proofs, fail: 2}
	var calls []execx.Call
	for _, c := range script(readKeys(pv, keyA), readRes(t, pv, held), register(t, pv), readKeys(pv, keyA, keyB), readRes(t, pv, held),
		readKeys(pv, keyA, keyB), readRes(t, pv, held),
		execx.Call{Argv: []string{"sg_persist", "--out", "--register-ignore", "--param-sark=0", "--param-aptpl", pv}}, readKeys(pv, keyA, keyB),
		// No running path of the map to unregister through: read again.
		readKeys(pv, keyA, keyB)) {
		calls = append(calls, mp(c))
	}
	f.Script = calls
	checkFenced(t, fn, f)
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.ErrorLevel && strings.Contains(e.Message, "still registered after it unregistered it") {
			return
		}
	}
	t.Fatalf("no error logged for the key left registered; log: %v", hook.AllEntries())
}

// Every unregister of a withdrawal carries the APTPL bit where this host
// registered with it: the target applies the last REGISTER's APTPL to the
// whole LUN (SPC-4; LIO), so an unregister without it would leave every
// registration and the reservation to be lost at the SAN's next power loss
// (review of issue 25, session 4). The tests above script it.

// When the key survives mpathpersist's unregister on a map (it skipped a
// path), the host unregisters through each running path of the map itself
// and reads again: a withdrawal is needed exactly when the registration may
// have landed after a peer's preempt and proof, so no peer removes it
// (review of issue 25, session 3, finding 6). A path that is not running
// is not sent anything (it would hold the command until its session
// recovers).
func TestWithdrawOnMapUnregistersThroughEachPath(t *testing.T) {
	pv, f, fn := multipathFencer(t)
	for sd, state := range map[string]string{"sda": "running", "sdb": "running", "sdc": "blocked"} {
		if err := os.MkdirAll(filepath.Join(fn.sysfs, "class/block/dm-0/slaves", sd), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(fn.sysfs, "class/block", sd, "device"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(fn.sysfs, "class/block", sd, "device", "state"), []byte(state+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	log, hook := test.NewNullLogger()
	fn.log = log
	proofs := 0
	fn.live = proofSequence{fakeLive: liveFor(time.Hour), n: &proofs, fail: 2}
	k := hexKey(keyB)
	var calls []execx.Call
	for _, c := range script(readKeys(pv, keyA), readRes(t, pv, held), register(t, pv)) {
		calls = append(calls, mp(c))
	}
	// The register's probe of each running path.
	calls = append(calls,
		execx.Call{Argv: []string{"sg_persist", "--out", "--register", "--param-rk=" + k, "--param-sark=" + k, "--param-aptpl", "/dev/sda"}},
		execx.Call{Argv: []string{"sg_persist", "--out", "--register", "--param-rk=" + k, "--param-sark=" + k, "--param-aptpl", "/dev/sdb"}})
	for _, c := range script(readKeys(pv, keyA, keyB), readRes(t, pv, held),
		readKeys(pv, keyA, keyB), readRes(t, pv, held),
		execx.Call{Argv: []string{"sg_persist", "--out", "--register-ignore", "--param-sark=0", "--param-aptpl", pv}}, readKeys(pv, keyA, keyB)) {
		calls = append(calls, mp(c))
	}
	calls = append(calls,
		execx.Call{Argv: []string{"sg_persist", "--out", "--register-ignore", "--param-sark=0", "--param-aptpl", "/dev/sda"}},
		execx.Call{Argv: []string{"sg_persist", "--out", "--register-ignore", "--param-sark=0", "--param-aptpl", "/dev/sdb"}},
		mp(readKeys(pv, keyA)))
	f.Script = calls
	checkFenced(t, fn, f)
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.ErrorLevel {
			t.Errorf("logged an error although the key is gone at the end: %s", e.Message)
		}
	}
}

// checkFenced runs node-b's check, which must find it fenced and run the
// whole script.
func checkFenced(t *testing.T, fn *Fencer, f *execx.Fake) {
	t.Helper()
	if err := fn.CheckRegistration(context.Background()); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("err = %v, want ErrNotRegistered", err)
	}
	runAll(t, f, nil)
}
