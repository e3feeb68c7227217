package scsi3

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/execx"
)

// mpdRunner models what matters of the real runner and of multipathd:
// a command is not started once its ctx is done (exec.CommandContext),
// multipathd's getprkey/setprkey/unsetprkey keep a key per map, and a
// hook may run before a multipathd command answers (multipathd busy with
// path events: its client waits up to uxsock_timeout, 4 s). Every other
// command goes to the scripted Fake.
type mpdRunner struct {
	fake *execx.Fake
	mu   sync.Mutex
	keys map[string]string
	// before, when set, runs before multipathd answers argv.
	before func(argv []string)
}

func (r *mpdRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, &execx.ExecError{Cmd: append([]string{name}, args...), ExitCode: -1, Err: err}
	}
	if name != MultipathD.Name {
		return r.fake.Run(ctx, name, args...)
	}
	r.mu.Lock()
	hook := r.before
	r.mu.Unlock()
	if hook != nil {
		hook(append([]string{name}, args...))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m := args[2]
	switch args[0] {
	case "getprkey":
		if k, ok := r.keys[m]; ok {
			return []byte(k + "\n"), nil
		}
		return []byte("none\n"), nil
	case "setprkey":
		r.keys[m] = args[4]
	case "unsetprkey":
		delete(r.keys, m)
	}
	return []byte("ok\n"), nil
}

func (r *mpdRunner) held(m string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, ok := r.keys[m]
	return k, ok
}

// useMPD makes r, over the scripted f and multipathd keys, fn's runner.
func useMPD(fn *Fencer, f *execx.Fake, keys map[string]string) *mpdRunner {
	r := &mpdRunner{fake: f, keys: keys}
	fn.run = r
	return r
}

// movableLive is a liveness whose cut-off a test moves.
type movableLive struct{ at atomic.Int64 }

func (l *movableLive) set(d time.Duration)          { l.at.Store(time.Now().Add(d).UnixNano()) }
func (l *movableLive) Cutoff() (time.Time, bool)    { return time.Unix(0, l.at.Load()), true }
func (l *movableLive) Proven(context.Context) error { return nil }

// aliveFor gives fn a movable liveness, alive for an hour from now.
func aliveFor(fn *Fencer) *movableLive {
	l := &movableLive{}
	l.set(time.Hour)
	fn.live = l
	return l
}

// addMap adds multipath map dm-N to a fake sysfs and a device node for it.
func addMap(t *testing.T, sysfs, devDir, name string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(sysfs, "class/block", name, "dm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sysfs, "class/block", name, "dm/uuid"), []byte("mpath-36001405"+name+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pv := filepath.Join(devDir, name)
	if err := os.WriteFile(pv, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return pv
}

func mpCalls(calls ...any) []execx.Call {
	var out []execx.Call
	for _, c := range script(calls...) {
		out = append(out, mp(c))
	}
	return out
}

// The release at the cut-off still releases when an operation under way
// (a withdrawal runs up to 10 s) holds opMu past the cut-off: it waits for
// the lock for half its time only. (Its first version waited until its ctx
// ended, then ran its commands with that ended ctx: none started.)
func TestReleaseWithoutTheLockStillReleases(t *testing.T) {
	pv, f, fn := multipathFencer(t)
	r := useMPD(fn, f, map[string]string{"dm-0": hexKey(keyB) + ":aptpl"})
	f.Script = mpCalls(readKeys(pv, keyB), readRes(t, pv, held))
	runAll(t, f, fn.Join(context.Background()))

	fn.opMu.Lock() // an operation under way overruns the cut-off
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	fn.ReleaseKeys(ctx)
	fn.opMu.Unlock()
	if k, ok := r.held("dm-0"); ok {
		t.Fatalf("after the release at the cut-off multipathd still holds %s for dm-0: the release gave up waiting for the lock and ran its commands with the ctx that had ended", k)
	}
}

// A check's hand-back whose setprkey answers after the cut-off (multipathd
// busy) and after the release there does not leave multipathd the key.
// (The first version checked that the host was alive once, before: the key
// stayed until the rejoin's Prepare, after TTL + 1 s.)
func TestHandBackNeverLandsAfterTheCutoffRelease(t *testing.T) {
	pv, f, fn := multipathFencer(t)
	r := useMPD(fn, f, map[string]string{})
	live := aliveFor(fn)
	f.Script = mpCalls(readKeys(pv, keyB), readRes(t, pv, held), execx.Call{Argv: []string{"sg_persist", "--in", "--report-capabilities", pv}, Stdout: string(fixture(t, "lab-report-capabilities.txt"))})
	runAll(t, f, fn.Join(context.Background()))
	fn.ReleaseKeys(context.Background()) // a first cut-off
	if _, ok := r.held("dm-0"); ok {
		t.Fatal("not released")
	}
	// A late renewal made it alive again; the next check hands back, and
	// multipathd is slow to answer the setprkey: the cut-off passes, and
	// the heartbeat releases (bounded, as heartbeat.release does).
	entered, proceed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	r.before = func(argv []string) {
		if argv[1] == "setprkey" {
			once.Do(func() { close(entered); <-proceed })
		}
	}
	f.Script = mpCalls(readKeys(pv, keyB), readRes(t, pv, held))
	done := make(chan error)
	go func() { done <- fn.CheckRegistration(context.Background()) }()
	<-entered
	live.set(-time.Millisecond) // past the cut-off
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	fn.ReleaseKeys(ctx)
	cancel()
	close(proceed)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if k, ok := r.held("dm-0"); ok {
		t.Fatalf("past the cut-off, after the release, multipathd holds %s for dm-0 (handBack's setprkey landed after the release)", k)
	}
}

// A release at the cut-off that comes during JoinPVs' hand-over of the new
// maps is not undone by it. (The first version handed them over with no
// check of the cut-off.)
func TestJoinPVsHandsNothingAfterTheCutoffRelease(t *testing.T) {
	pv, f, fn := multipathFencer(t)
	newPV := addMap(t, fn.sysfs, filepath.Dir(pv), "dm-1")
	r := useMPD(fn, f, map[string]string{})
	live := aliveFor(fn)
	var fired atomic.Bool
	r.before = func(argv []string) {
		// The cut-off passes at the hand-over's first multipathd command;
		// the heartbeat releases (whose own getprkey comes back here).
		if argv[1] == "getprkey" && argv[3] == "dm-1" && fired.CompareAndSwap(false, true) {
			live.set(-time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			fn.ReleaseKeys(ctx)
		}
	}
	f.Script = append(mpCalls(readKeys(newPV, keyB), readRes(t, newPV, held)),
		execx.Call{Argv: []string{"mpathpersist", "--in", "--report-capabilities", newPV}, Stdout: string(fixture(t, "lab-report-capabilities.txt"))})
	if err := fn.JoinPVs(context.Background(), []string{newPV}); err != nil {
		t.Fatal(err)
	}
	if k, ok := r.held("dm-1"); ok {
		t.Fatalf("past the cut-off, after the release, multipathd holds %s for the new map dm-1 (JoinPVs' handKeys ran after it)", k)
	}
}

// After a join that failed half way on a second map (mpathpersist's
// REGISTER handed multipathd the key, then the reserve failed, so the map
// is not among those the join registered on), the rejoin's release takes
// the key back from that map too. (The first version released only the
// maps the process had joined.)
func TestReleaseAfterAHalfJoinOnASecondMap(t *testing.T) {
	pv, f, fn := multipathFencer(t)
	pv1 := addMap(t, fn.sysfs, filepath.Dir(pv), "dm-1")
	fn.devices = func(context.Context) ([]string, error) { return []string{pv, pv1}, nil }
	r := useMPD(fn, f, map[string]string{})
	f.Script = mpCalls(readKeys(pv, keyA, keyB), readRes(t, pv, held), readKeys(pv1), readRes(t, pv1, none),
		register(t, pv1), reserve(pv1, &execx.ExecError{ExitCode: 1}))
	err := fn.Join(context.Background())
	if err == nil {
		t.Fatal("join succeeded")
	}
	if left := f.Left(); len(left) != 0 {
		t.Fatalf("commands not run: %v", left)
	}
	r.keys["dm-1"] = hexKey(keyB) + ":aptpl" // what mpathpersist's REGISTER did
	fn.ReleaseKeys(context.Background())     // the rejoin's Prepare
	if k, ok := r.held("dm-1"); ok {
		t.Fatalf("after a half join and the rejoin's release multipathd still holds %s for dm-1", k)
	}
}

// A release at the cut-off reaches this host's map however many maps the
// host has and however slowly multipathd answers, with an operation under
// way holding opMu (review of session 4's revision, finding 3: one map
// after the other, 60 maps at 20 ms each, it never got to dm-9).
func TestReleaseReachesThisHostsMapAmongMany(t *testing.T) {
	pv, f, fn := multipathFencer(t)
	keys := map[string]string{}
	for i := 1; i < 60; i++ {
		name := fmt.Sprintf("dm-%d", i)
		addMap(t, fn.sysfs, filepath.Dir(pv), name)
		keys[name] = "0x1234" // another application's map and key
	}
	keys["dm-9"] = hexKey(keyB) + ":aptpl" // this host's: a PV of the VG
	r := useMPD(fn, f, keys)
	r.before = func([]string) { time.Sleep(20 * time.Millisecond) }
	fn.opMu.Lock() // an operation under way overruns the cut-off
	defer fn.opMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second) // heartbeat.releaseTimeout
	defer cancel()
	if !fn.ReleaseKeys(ctx) {
		t.Error("the release reports a map it could not clear")
	}
	if k, ok := r.held("dm-9"); ok {
		t.Fatalf("after the release at the cut-off multipathd still holds %s for dm-9, this host's PV map", k)
	}
	if k, ok := r.held("dm-30"); !ok || k != "0x1234" {
		t.Fatalf("another application's map lost its key: %q", k)
	}
}
