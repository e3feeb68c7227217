package scsi3

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/execx"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKeyFor(t *testing.T) {
	a, b := KeyFor("node-a"), KeyFor("node-b")
	if a == b || a == 0 || b == 0 {
		t.Fatalf("keys %x %x", a, b)
	}
	if a != KeyFor("node-a") {
		t.Fatal("key not stable")
	}
	if a>>48 != 0x5256 {
		t.Fatalf("key %x does not start with 0x5256 (RV)", a)
	}
}

func TestParseKeys(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []uint64
	}{
		{"handwritten-read-keys-two.txt", []uint64{0x5256aaaaaaaaaaab, 0x5256bbbbbbbbbbbb}},
		{"handwritten-read-keys-none.txt", nil},
		// Recorded in the VM lab (LIO over iSCSI, sg3_utils 1.46):
		{"lab-read-keys-none.txt", nil},
		{"lab-read-keys-two.txt", []uint64{0x72760000000000a1, 0x72760000000000b2}},
		{"lab-read-keys-two-n.txt", []uint64{0x72760000000000a1, 0x72760000000000b2}},
		{"lab-read-keys-after-preempt.txt", []uint64{0x72760000000000b2}},
		{"lab-read-keys-fenced.txt", []uint64{0x72760000000000b2}},
		{"lab-read-keys-reregistered.txt", []uint64{0x72760000000000b2, 0x72760000000000a1}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := ParseKeys(fixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %x, want %x", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %x, want %x", got, tc.want)
				}
			}
		})
	}
	if _, err := ParseKeys([]byte("sg_persist: no such device")); err == nil {
		t.Fatal("garbage parsed")
	}
}

// mpathpersist's read-keys (a tab before the count) and
// report-capabilities, as multipath-tools 0.9.4 prints them in the VM lab.
func TestParseMpathpersist(t *testing.T) {
	keys, err := ParseKeys(fixture(t, "lab-mpathpersist-read-keys.txt"))
	if err != nil || !slices.Equal(keys, []uint64{0x5256a901e3011c3d, 0x5256a901e3011c3d, 0x5256202b6bb9c7f1, 0x5256202b6bb9c7f1}) {
		t.Errorf("read-keys: %x %v", keys, err)
	}
	if ptpl, err := ParseCapabilities(fixture(t, "lab-mpathpersist-report-capabilities.txt")); err != nil || !ptpl {
		t.Errorf("report-capabilities: PTPL_C %v %v", ptpl, err)
	}
}

func TestParseReservation(t *testing.T) {
	r, err := ParseReservation(fixture(t, "handwritten-read-reservation-held.txt"))
	if err != nil || !r.Held || r.Key != 0x5256aaaaaaaaaaab || r.Type != "Write Exclusive, registrants only" {
		t.Fatalf("held: %+v %v", r, err)
	}
	for file, key := range map[string]uint64{
		"lab-read-reservation-held.txt":          0x72760000000000a1,
		"lab-read-reservation-held-n.txt":        0x72760000000000a1,
		"lab-read-reservation-after-preempt.txt": 0x72760000000000b2, // the preemptor holds it now
		// mpathpersist (multipath-tools 0.9.4) on a map in the VM lab:
		// "Key = …" and "scope = …, type = …".
		"lab-mpathpersist-read-reservation-held.txt": 0x5256a901e3011c3d,
	} {
		r, err := ParseReservation(fixture(t, file))
		if err != nil || !r.Held || r.Key != key || r.Type != "Write Exclusive, registrants only" {
			t.Errorf("%s: %+v %v", file, r, err)
		}
	}
	if r, err := ParseReservation(fixture(t, "lab-read-reservation-none.txt")); err != nil || r.Held {
		t.Errorf("lab none: %+v %v", r, err)
	}
	r, err = ParseReservation(fixture(t, "handwritten-read-reservation-none.txt"))
	if err != nil || r.Held {
		t.Fatalf("none: %+v %v", r, err)
	}
	if _, err := ParseReservation([]byte("PR generation=0x1, Reservation follows:\n")); err == nil {
		t.Fatal("reservation without key accepted")
	}
}

// keysOut renders read-keys output for keys.
func keysOut(keys ...uint64) string {
	if len(keys) == 0 {
		return "  PR generation=0x1, there are NO registered reservation keys\n"
	}
	s := "  PR generation=0x4, 2 registered reservation keys follow:\n"
	for _, k := range keys {
		s += "    " + hexKey(k) + "\n"
	}
	return s
}

func newFencer(t *testing.T, f *execx.Fake, opts ...Option) *Fencer {
	t.Helper()
	return newFencerOn(t, f, 1, opts...)
}

// newFencerOn is node-b's fencer on a VG of n PVs (plain disks).
func newFencerOn(t *testing.T, f *execx.Fake, n int, opts ...Option) *Fencer {
	t.Helper()
	dir := t.TempDir()
	var devs []string
	for i := 0; i < n; i++ {
		dev := filepath.Join(dir, "sd"+string(rune('b'+i)))
		if err := os.WriteFile(dev, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		devs = append(devs, dev)
	}
	log := logrus.New()
	log.SetOutput(nopWriter{})
	opts = append([]Option{WithSysfs(t.TempDir()), WithRetry(3, time.Millisecond), WithLogger(log)}, opts...)
	return New(f, "node-b", liveFor(time.Hour), func(context.Context) ([]string, error) { return devs, nil }, opts...)
}

// fakeLive is a host's liveness: its cut-off at, ok while it has joined,
// and what etcd says of its registration (proven: nil when it is still
// registered with no mark).
type fakeLive struct {
	at     time.Time
	ok     bool
	proven error
}

func (l fakeLive) Cutoff() (time.Time, bool)    { return l.at, l.ok }
func (l fakeLive) Proven(context.Context) error { return l.proven }

// markedNodeB is what etcd says of node-b once a peer marked it to fence
// it (before preempting its key).
var markedNodeB = fmt.Errorf("%w: a fencing mark names node-b", fencing.ErrCutOff)

// fenced is node-b's liveness once a peer marked it: alive by its own
// clock, not by etcd's.
func fenced() fakeLive { l := liveFor(time.Hour); l.proven = markedNodeB; return l }

// liveFor is a host that stays alive for d.
func liveFor(d time.Duration) fakeLive { return fakeLive{at: time.Now().Add(d), ok: true} }

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

func devOf(fn *Fencer) string { return devsOf(fn)[0] }

func devsOf(fn *Fencer) []string {
	ps, _ := fn.paths(context.Background())
	var out []string
	for _, p := range ps {
		out = append(out, p.dev)
	}
	return out
}

var (
	keyA, keyB = KeyFor("node-a"), KeyFor("node-b")
	held       = "handwritten-read-reservation-held.txt"
	none       = "handwritten-read-reservation-none.txt"
)

// Scripted sg_persist calls, answered with recorded (or rendered) output.
func readKeys(dev string, keys ...uint64) execx.Call {
	return execx.Call{Argv: []string{"sg_persist", "--in", "--read-keys", dev}, Stdout: keysOut(keys...)}
}

func readRes(t *testing.T, dev, fixtureName string) execx.Call {
	return execx.Call{Argv: []string{"sg_persist", "--in", "--read-reservation", dev}, Stdout: string(fixture(t, fixtureName))}
}

func preempt(dev, mode string) execx.Call {
	return execx.Call{Argv: []string{"sg_persist", "--out", mode, "--param-rk=" + hexKey(keyB), "--param-sark=" + hexKey(keyA), "--prout-type=5", dev}}
}

func reserve(dev string, err error) execx.Call {
	return execx.Call{Argv: []string{"sg_persist", "--out", "--reserve", "--param-rk=" + hexKey(keyB), "--prout-type=5", dev}, Err: err}
}

// register is node-b's registration, with APTPL: the lab's LIO target
// reports PTPL_C.
func register(t *testing.T, dev string) []execx.Call {
	return []execx.Call{
		{Argv: []string{"sg_persist", "--in", "--report-capabilities", dev}, Stdout: string(fixture(t, "lab-report-capabilities.txt"))},
		{Argv: []string{"sg_persist", "--out", "--register-ignore", "--param-sark=" + hexKey(keyB), "--param-aptpl", dev}},
	}
}

func script(calls ...any) []execx.Call {
	var out []execx.Call
	for _, c := range calls {
		switch c := c.(type) {
		case execx.Call:
			out = append(out, c)
		case []execx.Call:
			out = append(out, c...)
		}
	}
	return out
}

func runAll(t *testing.T, f *execx.Fake, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if left := f.Left(); len(left) != 0 {
		t.Fatalf("commands not run: %v", left)
	}
	if wrong := f.Unexpected(); len(wrong) != 0 {
		t.Fatalf("commands run out of the script: %q", wrong)
	}
}

func TestPlanPath(t *testing.T) {
	wero := Reservation{Held: true, Key: keyB, Type: typeWERO}
	for _, tc := range []struct {
		name    string
		s       pathState
		victim  uint64
		want    []step
		wantErr string
	}{
		{name: "victim registered: preempt", s: pathState{keys: []uint64{keyA, keyB}, res: wero}, victim: keyA, want: []step{stepPreempt}},
		{name: "victim gone, reservation held: nothing", s: pathState{keys: []uint64{keyB}, res: wero}, victim: keyA},
		{name: "victim gone, no reservation: reserve", s: pathState{keys: []uint64{keyB}}, victim: keyA, want: []step{stepReserve}},
		{name: "no reservation, victim registered: reserve, preempt", s: pathState{keys: []uint64{keyA, keyB}}, victim: keyA, want: []step{stepReserve, stepPreempt}},
		{name: "new PV, no key at all: register, reserve", s: pathState{}, victim: keyA, want: []step{stepRegister, stepReserve}},
		{name: "target lost its state everywhere: register, reserve", s: pathState{}, victim: keyA, want: []step{stepRegister, stepReserve}},
		{name: "key missing where others are: register (enforce asks etcd first)", s: pathState{keys: []uint64{keyA}, res: wero}, victim: keyA, want: []step{stepRegister, stepPreempt}},
		{name: "new PV a peer joined first: register, preempt", s: pathState{keys: []uint64{keyA}, res: Reservation{Held: true, Key: keyA, Type: typeWERO}}, victim: keyA, want: []step{stepRegister, stepPreempt}},
		{name: "another reservation type: refuse", s: pathState{dev: "/dev/sdb", keys: []uint64{keyB}, res: Reservation{Held: true, Key: keyA, Type: "Exclusive Access"}}, victim: keyA, wantErr: `a "Exclusive Access" reservation is held`},
		{name: "join: register, reservation held by a peer", s: pathState{keys: []uint64{keyA}, res: Reservation{Held: true, Key: keyA, Type: typeWERO}}, want: []step{stepRegister}},
		{name: "join: nothing to do", s: pathState{keys: []uint64{keyB}, res: wero}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := planPath(tc.s, keyB, tc.victim)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("planPath = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestFencePreemptsAndVerifies(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
		mode string
	}{
		{"preempt and abort", nil, "--preempt-abort"},
		{"plain preempt", []Option{WithPlainPreempt()}, "--preempt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &execx.Fake{}
			fn := newFencer(t, f, tc.opts...)
			dev := devOf(fn)
			f.Script = script(readKeys(dev, keyA, keyB), readRes(t, dev, held),
				preempt(dev, tc.mode), readKeys(dev, keyB), readRes(t, dev, held))
			runAll(t, f, fn.Fence(context.Background(), "node-a"))
		})
	}
}

// A victim whose key is absent is fenced only where a type 5 reservation
// is held: without one, nothing stops an unregistered host from writing.
func TestFenceWithoutReservationReserves(t *testing.T) {
	f := &execx.Fake{}
	fn := newFencer(t, f)
	dev := devOf(fn)
	f.Script = script(readKeys(dev, keyB), readRes(t, dev, none),
		reserve(dev, nil), readKeys(dev, keyB), readRes(t, dev, held))
	runAll(t, f, fn.Fence(context.Background(), "node-a"))
}

func TestFenceAlreadyFenced(t *testing.T) {
	f := &execx.Fake{}
	fn := newFencer(t, f)
	dev := devOf(fn)
	f.Script = script(readKeys(dev, keyB), readRes(t, dev, held))
	runAll(t, f, fn.Fence(context.Background(), "node-a"))
}

func TestFenceReservationMissingOnOnePath(t *testing.T) {
	f := &execx.Fake{}
	fn := newFencerOn(t, f, 2)
	d := devsOf(fn)
	f.Script = script(
		readKeys(d[0], keyA, keyB), readRes(t, d[0], held),
		readKeys(d[1], keyA, keyB), readRes(t, d[1], none),
		preempt(d[0], "--preempt-abort"), readKeys(d[0], keyB), readRes(t, d[0], held),
		reserve(d[1], nil), preempt(d[1], "--preempt-abort"), readKeys(d[1], keyB), readRes(t, d[1], held),
	)
	runAll(t, f, fn.Fence(context.Background(), "node-a"))
}

// A LUN added to the VG after the hosts joined has no key and no
// reservation: the fence registers this host there and reserves it.
func TestFenceNewPV(t *testing.T) {
	f := &execx.Fake{}
	fn := newFencerOn(t, f, 2)
	d := devsOf(fn)
	f.Script = script(
		readKeys(d[0], keyA, keyB), readRes(t, d[0], held),
		readKeys(d[1]), readRes(t, d[1], none),
		preempt(d[0], "--preempt-abort"), readKeys(d[0], keyB), readRes(t, d[0], held),
		register(t, d[1]), reserve(d[1], nil), readKeys(d[1], keyB), readRes(t, d[1], held),
	)
	runAll(t, f, fn.Fence(context.Background(), "node-a"))
}

func TestFenceFailsWhenNotProven(t *testing.T) {
	for _, tc := range []struct {
		name    string
		after   []execx.Call
		wantErr string
	}{
		{"victim's key survives", []execx.Call{readKeys("DEV", keyA, keyB), readRes(t, "DEV", held)}, "still registered after the preempt"},
		{"reservation lost", []execx.Call{readKeys("DEV", keyB), readRes(t, "DEV", none)}, "no reservation is held"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &execx.Fake{}
			fn := newFencer(t, f)
			dev := devOf(fn)
			for i := range tc.after {
				tc.after[i].Argv[len(tc.after[i].Argv)-1] = dev
			}
			f.Script = script(readKeys(dev, keyA, keyB), readRes(t, dev, held), preempt(dev, "--preempt-abort"), tc.after)
			err := fn.Fence(context.Background(), "node-a")
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), dev) {
				t.Fatalf("err = %v, want one naming %s and saying %q", err, dev, tc.wantErr)
			}
		})
	}
}

func TestFenceRefusedWhenSelfNotRegistered(t *testing.T) {
	f := &execx.Fake{}
	fn := newFencer(t, f)
	fn.live = fenced()
	dev := devOf(fn)
	f.Script = script(readKeys(dev, keyA), readRes(t, dev, held))
	err := fn.Fence(context.Background(), "node-a")
	if !errors.Is(err, ErrNotRegistered) || !strings.Contains(err.Error(), "cannot fence node-a") || !strings.Contains(err.Error(), "a fencing mark names node-b") {
		t.Fatalf("err = %v", err)
	}
	if left := f.Left(); len(left) != 0 {
		t.Fatalf("commands not run: %v", left)
	}
	if wrong := f.Unexpected(); len(wrong) != 0 {
		t.Fatalf("commands run out of the script: %q", wrong)
	}
}

func TestFenceConflictAndUnitAttention(t *testing.T) {
	f := &execx.Fake{}
	fn := newFencer(t, f)
	dev := devOf(fn)
	ua := &execx.ExecError{Cmd: []string{"sg_persist"}, ExitCode: 6, Stderr: "persistent reserve in: Unit attention"}
	conflict := &execx.ExecError{Cmd: []string{"sg_persist"}, ExitCode: 24, Stderr: "persistent reserve out: Reservation conflict"}
	uaCall := readKeys(dev)
	uaCall.Err = ua
	pre := preempt(dev, "--preempt-abort")
	pre.Err = conflict
	f.Script = script(uaCall, readKeys(dev, keyA, keyB), readRes(t, dev, held), pre)
	err := fn.Fence(context.Background(), "node-a")
	if !errors.Is(err, ErrReservationConflict) || !strings.Contains(err.Error(), "Reservation conflict (exit 24)") {
		t.Fatalf("err = %v", err)
	}
}

func TestFenceGivesUpAfterRetries(t *testing.T) {
	f := &execx.Fake{}
	fn := newFencer(t, f)
	dev := devOf(fn)
	ua := &execx.ExecError{Cmd: []string{"sg_persist"}, ExitCode: 6, Stderr: "Unit attention"}
	for i := 0; i < 4; i++ {
		f.Script = append(f.Script, execx.Call{Argv: []string{"sg_persist", "--in", "--read-keys", dev}, Err: ua})
	}
	if err := fn.Fence(context.Background(), "node-a"); err == nil || execx.ExitCode(err) != 6 {
		t.Fatalf("err = %v", err)
	}
}

func TestJoinRegistersAndReserves(t *testing.T) {
	conflict := &execx.ExecError{ExitCode: 24, Stderr: "Reservation conflict"}
	for _, tc := range []struct {
		name   string
		script func(dev string) []execx.Call
	}{
		{"no key, no reservation yet", func(dev string) []execx.Call {
			return script(readKeys(dev), readRes(t, dev, none), register(t, dev), reserve(dev, nil), readKeys(dev, keyB), readRes(t, dev, held))
		}},
		{"reservation held by a peer", func(dev string) []execx.Call {
			return script(readKeys(dev, keyA), readRes(t, dev, held), register(t, dev), readKeys(dev, keyA, keyB), readRes(t, dev, held))
		}},
		{"a peer reserves first", func(dev string) []execx.Call {
			return script(readKeys(dev), readRes(t, dev, none), register(t, dev), reserve(dev, conflict), readKeys(dev, keyA, keyB), readRes(t, dev, held))
		}},
		{"already registered", func(dev string) []execx.Call {
			return script(readKeys(dev, keyA, keyB), readRes(t, dev, held))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &execx.Fake{}
			fn := newFencer(t, f)
			f.Script = tc.script(devOf(fn))
			runAll(t, f, fn.Join(context.Background()))
		})
	}
}

func TestJoinWithoutAPTPL(t *testing.T) {
	f := &execx.Fake{}
	fn := newFencer(t, f)
	dev := devOf(fn)
	noPTPL := strings.Replace(string(fixture(t, "lab-report-capabilities.txt")), "(PTPL_C): 1", "(PTPL_C): 0", 1)
	f.Script = script(readKeys(dev), readRes(t, dev, held),
		execx.Call{Argv: []string{"sg_persist", "--in", "--report-capabilities", dev}, Stdout: noPTPL},
		execx.Call{Argv: []string{"sg_persist", "--out", "--register-ignore", "--param-sark=" + hexKey(keyB), dev}},
		readKeys(dev, keyB), readRes(t, dev, held))
	runAll(t, f, fn.Join(context.Background()))
}

func TestCheckRegistration(t *testing.T) {
	t.Run("registered and reserved everywhere", func(t *testing.T) {
		f := &execx.Fake{}
		fn := newFencerOn(t, f, 2)
		d := devsOf(fn)
		f.Script = script(readKeys(d[0], keyA, keyB), readRes(t, d[0], held), readKeys(d[1], keyA, keyB), readRes(t, d[1], held))
		runAll(t, f, fn.CheckRegistration(context.Background()))
	})
	t.Run("a new PV is joined", func(t *testing.T) {
		f := &execx.Fake{}
		fn := newFencerOn(t, f, 2)
		d := devsOf(fn)
		f.Script = script(readKeys(d[0], keyA, keyB), readRes(t, d[0], held), readKeys(d[1], keyA), readRes(t, d[1], held),
			register(t, d[1]), readKeys(d[1], keyA, keyB), readRes(t, d[1], held))
		runAll(t, f, fn.CheckRegistration(context.Background()))
	})
	t.Run("key gone everywhere: fenced, never re-registered", func(t *testing.T) {
		f := &execx.Fake{}
		fn := newFencerOn(t, f, 2)
		fn.live = fenced()
		d := devsOf(fn)
		f.Script = script(readKeys(d[0], keyA), readRes(t, d[0], held), readKeys(d[1], keyA), readRes(t, d[1], held))
		err := fn.CheckRegistration(context.Background())
		if !errors.Is(err, ErrNotRegistered) || !errors.Is(err, fencing.ErrCutOff) {
			t.Fatalf("err = %v, want ErrNotRegistered, a fencing.ErrCutOff", err)
		}
		if left := f.Left(); len(left) != 0 {
			t.Fatalf("commands not run: %v", left)
		}
	})
}

func TestFenced(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys [][]uint64
		want bool
	}{
		{"registered everywhere", [][]uint64{{keyA, keyB}, {keyB}}, false},
		{"registered on the old PV only (a new PV)", [][]uint64{{keyA, keyB}, {keyA}}, false},
		{"registered nowhere", [][]uint64{{keyA}, {}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &execx.Fake{}
			fn := newFencerOn(t, f, 2)
			d := devsOf(fn)
			for i, keys := range tc.keys {
				f.Script = append(f.Script, readKeys(d[i], keys...), readRes(t, d[i], held))
			}
			got, err := fn.Fenced(context.Background())
			if err != nil || got != tc.want {
				t.Fatalf("Fenced = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestParseCapabilities(t *testing.T) {
	if ptpl, err := ParseCapabilities(fixture(t, "lab-report-capabilities.txt")); err != nil || !ptpl {
		t.Fatalf("lab LIO target: PTPL_C %v, %v; want true", ptpl, err)
	}
	if _, err := ParseCapabilities([]byte("sg_persist: no such device")); err == nil {
		t.Fatal("garbage parsed")
	}
}

func TestRefusesToFenceItself(t *testing.T) {
	fn := newFencer(t, &execx.Fake{})
	if err := fn.Fence(context.Background(), "node-b"); err == nil {
		t.Fatal("fenced itself")
	}
}

// TestResolve covers how PVs map to the devices PR commands go to, over a
// fake sysfs: a disk, a partition of it, a multipath map, another dm device.
func TestResolve(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(sys, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(filepath.Join(sys, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// /sys/class/block entries are links into /sys/devices.
	mk("devices/sdb/sdb1")
	write("devices/sdb/sdb1/partition", "1")
	mk("devices/dm-0/dm")
	write("devices/dm-0/dm/uuid", "mpath-36001405abcdef")
	mk("devices/dm-1/dm")
	write("devices/dm-1/dm/uuid", "CRYPT-LUKS2-xyz")
	mk("class/block")
	for name, target := range map[string]string{"sdb": "devices/sdb", "sdb1": "devices/sdb/sdb1", "dm-0": "devices/dm-0", "dm-1": "devices/dm-1"} {
		if err := os.Symlink(filepath.Join(sys, target), filepath.Join(sys, "class/block", name)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dev, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dev, "dm-0"), filepath.Join(dev, "mpatha")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pv, want string
		mp       bool
		wantErr  string
	}{
		{pv: "sdb", want: filepath.Join(dev, "sdb")},
		{pv: "sdb1", want: "/dev/sdb"},
		{pv: "mpatha", want: filepath.Join(dev, "dm-0"), mp: true},
		{pv: "dm-1", wantErr: "not a multipath map"},
		{pv: "missing", wantErr: "resolve PV"},
	} {
		t.Run(tc.pv, func(t *testing.T) {
			p, err := resolve(sys, filepath.Join(dev, tc.pv))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || p.dev != tc.want || p.multipath != tc.mp {
				t.Fatalf("resolve = %+v, %v; want %s multipath=%v", p, err, tc.want, tc.mp)
			}
		})
	}
}

// multipathPV makes a PV that resolves to a multipath map: a device file
// dm-0 and a fake sysfs whose dm/uuid says mpath-.
func multipathPV(t *testing.T) (pv, sysfs string) {
	t.Helper()
	dev, sysfs := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(sysfs, "class/block/dm-0/dm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sysfs, "class/block/dm-0/dm/uuid"), []byte("mpath-36001405abcdef\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pv = filepath.Join(dev, "dm-0")
	if err := os.WriteFile(pv, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return pv, sysfs
}

// multipathFencer is node-b's fencer on a VG of one PV that is a multipath
// map (multipathPV), with its scripted runner.
func multipathFencer(t *testing.T) (pv string, f *execx.Fake, fn *Fencer) {
	t.Helper()
	pv, sysfs := multipathPV(t)
	f = &execx.Fake{}
	log := logrus.New()
	log.SetOutput(nopWriter{})
	fn = New(f, "node-b", liveFor(time.Hour), func(context.Context) ([]string, error) { return []string{pv}, nil },
		WithSysfs(sysfs), WithRetry(3, time.Millisecond), WithLogger(log))
	return pv, f, fn
}

// mp is a scripted sg_persist call as mpathpersist takes it on a map: the
// same arguments.
func mp(c execx.Call) execx.Call {
	c.Argv = append([]string{"mpathpersist"}, c.Argv[1:]...)
	return c
}

// A PV that is a multipath map takes its PR commands through mpathpersist,
// with the same arguments as sg_persist, on the map itself.
func TestJoinOnMultipathMap(t *testing.T) {
	pv, f, fn := multipathFencer(t)
	var calls []execx.Call
	for _, c := range script(readKeys(pv), readRes(t, pv, none), register(t, pv), reserve(pv, nil), readKeys(pv, keyB), readRes(t, pv, held)) {
		calls = append(calls, mp(c))
	}
	// Then multipathd holds the key, for the paths it adds later: handed
	// over where it has none (mpathpersist does so only where it reads
	// reservation_key file; a map registered before the setting).
	calls = append(calls,
		execx.Call{Argv: []string{"multipathd", "getprkey", "map", "dm-0"}, Stdout: "none\n"},
		execx.Call{Argv: []string{"multipathd", "setprkey", "map", "dm-0", "key", hexKey(keyB) + ":aptpl"}, Stdout: "ok\n"})
	f.Script = calls
	runAll(t, f, fn.Join(context.Background()))

	// A join that finds it there changes nothing.
	f.Script = nil
	for _, c := range script(readKeys(pv, keyB), readRes(t, pv, held)) {
		f.Script = append(f.Script, mp(c))
	}
	f.Script = append(f.Script, execx.Call{Argv: []string{"multipathd", "getprkey", "map", "dm-0"}, Stdout: hexKey(keyB) + ":aptpl\n"})
	runAll(t, f, fn.Join(context.Background()))
}

// mpathpersist's exit statuses are its own (MPATH_PR_*), not sg_persist's:
// 11 is a reservation conflict (sg_persist's aborted command), so a peer
// that reserved the map first is no failure of the join; 8, an aborted
// command, is tried again.
func TestMultipathExitCodes(t *testing.T) {
	pv, f, fn := multipathFencer(t)
	conflict := &execx.ExecError{Cmd: []string{"mpathpersist"}, ExitCode: 11, Stderr: "PR out: command failed"}
	aborted := &execx.ExecError{Cmd: []string{"mpathpersist"}, ExitCode: 8, Stderr: "PR out: command failed"}
	var calls []execx.Call
	for _, c := range script(readKeys(pv, keyA), readRes(t, pv, none), register(t, pv), reserve(pv, conflict), readKeys(pv, keyA, keyB), readRes(t, pv, held)) {
		calls = append(calls, mp(c))
	}
	f.Script = append(calls,
		execx.Call{Argv: []string{"multipathd", "getprkey", "map", "dm-0"}, Stdout: hexKey(keyB) + ":aptpl\n"})
	runAll(t, f, fn.Join(context.Background()))

	f.Script = nil
	for _, c := range script(readKeys(pv, keyA, keyB), readRes(t, pv, none), reserve(pv, aborted), reserve(pv, nil), readKeys(pv, keyA, keyB), readRes(t, pv, held)) {
		f.Script = append(f.Script, mp(c))
	}
	f.Script = append(f.Script, execx.Call{Argv: []string{"multipathd", "getprkey", "map", "dm-0"}, Stdout: hexKey(keyB) + "\n"})
	runAll(t, f, fn.Join(context.Background()))
}

// CheckTools asks for mpathpersist only where a PV is a multipath map, and
// names the PVs that need what is missing.
func TestCheckTools(t *testing.T) {
	mpPV, mpSysfs := multipathPV(t)
	diskPV := filepath.Join(t.TempDir(), "sdb")
	if err := os.WriteFile(diskPV, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	look := func(found ...string) func(string) (string, error) {
		return func(name string) (string, error) {
			for _, f := range found {
				if f == name {
					return "/usr/sbin/" + name, nil
				}
			}
			return "", errors.New("not found")
		}
	}
	for _, tc := range []struct {
		name    string
		pvs     []string
		found   []string
		wantErr []string
	}{
		{name: "plain disk: sg_persist, no multipath-tools needed", pvs: []string{diskPV}, found: []string{"sg_persist"}},
		{name: "plain disk, sg_persist missing", pvs: []string{diskPV}, wantErr: []string{"fencing the PVs " + diskPV + ":", "sg_persist (package sg3-utils)"}},
		{name: "multipath map, both there", pvs: []string{mpPV}, found: []string{"sg_persist", "mpathpersist"}},
		{
			name: "multipath map, mpathpersist missing", pvs: []string{diskPV, mpPV}, found: []string{"sg_persist"},
			wantErr: []string{mpPV + " (a multipath map)", "mpathpersist (package multipath-tools)", "apt-get install multipath-tools"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fn := New(&execx.Fake{}, "node-b", liveFor(time.Hour), func(context.Context) ([]string, error) { return tc.pvs, nil }, WithSysfs(mpSysfs))
			err := fn.CheckTools(context.Background(), look(tc.found...))
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			for _, w := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to say %q", err, w)
				}
			}
		})
	}
}

// A host registers on a PV added since it joined before it writes there:
// only then does EnsureJoined ask the storage.
func TestEnsureJoined(t *testing.T) {
	dir := t.TempDir()
	d0, d1 := filepath.Join(dir, "sdb"), filepath.Join(dir, "sdc")
	for _, d := range []string{d0, d1} {
		if err := os.WriteFile(d, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pvs := []string{d0}
	log := logrus.New()
	log.SetOutput(nopWriter{})
	f := &execx.Fake{}
	fn := New(f, "node-b", liveFor(time.Hour), func(context.Context) ([]string, error) { return pvs, nil },
		WithSysfs(t.TempDir()), WithRetry(3, time.Millisecond), WithLogger(log))
	ctx := context.Background()
	f.Script = script(readKeys(d0, keyA, keyB), readRes(t, d0, held))
	runAll(t, f, fn.Join(ctx))
	// Nothing new: no PR command at all.
	runAll(t, f, fn.EnsureJoined(ctx))
	// A PV was added, and a peer reserved it already.
	pvs = []string{d0, d1}
	f.Script = script(readKeys(d0, keyA, keyB), readRes(t, d0, held), readKeys(d1, keyA), readRes(t, d1, held),
		register(t, d1), readKeys(d1, keyA, keyB), readRes(t, d1, held))
	runAll(t, f, fn.EnsureJoined(ctx))
	runAll(t, f, fn.EnsureJoined(ctx))
}

// TestMain fails the run if a test had the fencer run a command Tools does
// not declare.
func TestMain(m *testing.M) {
	os.Exit(execx.FakesDeclared(m.Run(), "scsi3.Tools", Tools))
}

// newDev is a plain disk that is no PV of the VG (yet).
func newDev(t *testing.T) string {
	t.Helper()
	dev := filepath.Join(t.TempDir(), "sdz")
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return dev
}

// JoinPVs (relocvol vg extend's step on each host) registers on devices
// that are not in the VG yet, reserving one no peer reserved, and only
// while etcd proves the host registered; the VG's own PVs are not touched.
func TestJoinPVs(t *testing.T) {
	t.Run("first host reserves", func(t *testing.T) {
		f := &execx.Fake{}
		fn := newFencer(t, f)
		dev := newDev(t)
		f.Script = script(readKeys(dev), readRes(t, dev, none), register(t, dev), reserve(dev, nil), readKeys(dev, keyB), readRes(t, dev, held))
		runAll(t, f, fn.JoinPVs(context.Background(), []string{dev}))
	})
	t.Run("a peer reserved it", func(t *testing.T) {
		f := &execx.Fake{}
		fn := newFencer(t, f)
		dev := newDev(t)
		f.Script = script(readKeys(dev, keyA), readRes(t, dev, held), register(t, dev), readKeys(dev, keyA, keyB), readRes(t, dev, held))
		runAll(t, f, fn.JoinPVs(context.Background(), []string{dev}))
	})
	t.Run("registered already", func(t *testing.T) {
		f := &execx.Fake{}
		fn := newFencer(t, f)
		dev := newDev(t)
		f.Script = script(readKeys(dev, keyA, keyB), readRes(t, dev, held))
		runAll(t, f, fn.JoinPVs(context.Background(), []string{dev}))
	})
	t.Run("not proven by etcd: no registration", func(t *testing.T) {
		f := &execx.Fake{}
		log := logrus.New()
		log.SetOutput(nopWriter{})
		fn := New(f, "node-b", fenced(), func(context.Context) ([]string, error) { return nil, nil }, WithSysfs(t.TempDir()), WithRetry(3, time.Millisecond), WithLogger(log))
		dev := newDev(t)
		f.Script = script(readKeys(dev, keyA), readRes(t, dev, held))
		err := fn.JoinPVs(context.Background(), []string{dev})
		if !errors.Is(err, ErrNotRegistered) {
			t.Fatalf("JoinPVs of a host a peer marked: %v, want ErrNotRegistered", err)
		}
		runAll(t, f, nil)
	})
	t.Run("not alive: nothing asked", func(t *testing.T) {
		f := &execx.Fake{}
		log := logrus.New()
		log.SetOutput(nopWriter{})
		fn := New(f, "node-b", fakeLive{}, func(context.Context) ([]string, error) { return nil, nil }, WithSysfs(t.TempDir()), WithLogger(log))
		if err := fn.JoinPVs(context.Background(), []string{newDev(t)}); err == nil {
			t.Fatal("JoinPVs of a host that is not alive succeeded")
		}
		runAll(t, f, nil)
	})
}

// A host that lost its lease takes its key back from multipathd before
// anything else (review of issue 25, finding 1): multipathd registers a
// path it adds or reinstates with the key it holds wherever the key is
// still listed, and its read-then-register races a peer's preempt
// (multipath-tools before 0.13), so a host that may be fenced any moment
// must leave it nothing to register with. It touches no storage, and a
// plain disk needs nothing.
func TestReleaseKeys(t *testing.T) {
	pv, f, fn := multipathFencer(t)
	f.Script = releaseCalls("dm-0")
	fn.ReleaseKeys(context.Background())
	runAll(t, f, nil)
	// Every time (a half join may have handed the key back).
	f.Script = releaseCalls("dm-0")
	fn.ReleaseKeys(context.Background())
	runAll(t, f, nil)

	// The join hands it back; the next release takes it again.
	var calls []execx.Call
	for _, c := range script(readKeys(pv, keyB), readRes(t, pv, held)) {
		calls = append(calls, mp(c))
	}
	f.Script = append(calls,
		execx.Call{Argv: []string{"multipathd", "getprkey", "map", "dm-0"}, Stdout: "none\n"},
		execx.Call{Argv: []string{"mpathpersist", "--in", "--report-capabilities", pv}, Stdout: string(fixture(t, "lab-report-capabilities.txt"))},
		execx.Call{Argv: []string{"multipathd", "setprkey", "map", "dm-0", "key", hexKey(keyB) + ":aptpl"}, Stdout: "ok\n"})
	runAll(t, f, fn.Join(context.Background()))
	f.Script = releaseCalls("dm-0")
	fn.ReleaseKeys(context.Background())
	runAll(t, f, nil)

	// A plain disk: no command.
	f2 := &execx.Fake{}
	newFencer(t, f2).ReleaseKeys(context.Background())
	runAll(t, f2, nil)
}

// A second takeover of the same dead host (the leader's, then a Mount's)
// reads the storage again rather than trusting the first fence: a victim
// key that came back (multipathd's read-then-register racing the preempt,
// before multipath-tools 0.13) is preempted again (review of this
// session's FenceMark, which skipped it; FenceMark is gone).
func TestFenceAgainReadsTheStorage(t *testing.T) {
	f := &execx.Fake{}
	fn := newFencer(t, f)
	d := devOf(fn)
	f.Script = script(readKeys(d, keyA, keyB), readRes(t, d, held), preempt(d, "--preempt-abort"), readKeys(d, keyB), readRes(t, d, held))
	runAll(t, f, fn.Fence(context.Background(), "node-a"))
	f.Script = script(readKeys(d, keyA, keyB), readRes(t, d, held), preempt(d, "--preempt-abort"), readKeys(d, keyB), readRes(t, d, held))
	runAll(t, f, fn.Fence(context.Background(), "node-a"))
}

// Before a LUN joins the VG, the asking host removes every relocvol key on
// it but those of the hosts alive now that registered there (review of
// vg extend, F1): a host that died or was fenced since it registered, or
// a failed extend's leftovers, would otherwise keep a registration on a PV
// of the VG that no fence covered. A key of another system is refused.
func TestClearKeys(t *testing.T) {
	t.Run("a dead host's key is preempted", func(t *testing.T) {
		f := &execx.Fake{}
		fn := newFencer(t, f)
		dev := newDev(t)
		f.Script = script(readKeys(dev, keyA, keyB), readRes(t, dev, held),
			readKeys(dev, keyA, keyB), readRes(t, dev, held), preempt(dev, "--preempt-abort"), readKeys(dev, keyB), readRes(t, dev, held))
		runAll(t, f, fn.ClearKeys(context.Background(), []string{dev}, []string{"node-b"}))
	})
	t.Run("only live hosts' keys: nothing changed", func(t *testing.T) {
		f := &execx.Fake{}
		fn := newFencer(t, f)
		dev := newDev(t)
		f.Script = script(readKeys(dev, keyA, keyB), readRes(t, dev, held))
		runAll(t, f, fn.ClearKeys(context.Background(), []string{dev}, []string{"node-a", "node-b"}))
	})
	t.Run("another system's key: refused", func(t *testing.T) {
		f := &execx.Fake{}
		fn := newFencer(t, f)
		dev := newDev(t)
		f.Script = script(readKeys(dev, 0xabc, keyB), readRes(t, dev, held))
		err := fn.ClearKeys(context.Background(), []string{dev}, []string{"node-b"})
		if err == nil || !strings.Contains(err.Error(), "0xabc") || !strings.Contains(err.Error(), "not a relocvol host's") {
			t.Fatalf("err = %v, want a refusal naming the foreign key", err)
		}
		runAll(t, f, nil)
	})
}

// mpathpersist registers only through the paths it finds up and exits 0:
// a path it skipped stays unregistered, and writes dm-multipath sends
// through it fail with a reservation conflict. After registering on a map,
// the host probes each path with a REGISTER of its key over itself (which
// succeeds only through a registered nexus) and registers through the
// path where it conflicts (review of issue 25, finding 3).
func TestJoinOnMultipathMapProbesEachPath(t *testing.T) {
	pv, f, fn := multipathFencer(t)
	for _, sd := range []string{"sda", "sdb"} {
		if err := os.MkdirAll(filepath.Join(fn.sysfs, "class/block/dm-0/slaves", sd), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	k := hexKey(keyB)
	conflict := &execx.ExecError{Cmd: []string{"sg_persist"}, ExitCode: 24, Stderr: "persistent reservation out: Reservation conflict"}
	var calls []execx.Call
	for _, c := range script(readKeys(pv), readRes(t, pv, none), register(t, pv)) {
		calls = append(calls, mp(c))
	}
	calls = append(calls,
		execx.Call{Argv: []string{"sg_persist", "--out", "--register", "--param-rk=" + k, "--param-sark=" + k, "--param-aptpl", "/dev/sda"}},
		execx.Call{Argv: []string{"sg_persist", "--out", "--register", "--param-rk=" + k, "--param-sark=" + k, "--param-aptpl", "/dev/sdb"}, Err: conflict},
		execx.Call{Argv: []string{"sg_persist", "--out", "--register-ignore", "--param-sark=" + k, "--param-aptpl", "/dev/sdb"}})
	for _, c := range script(reserve(pv, nil), readKeys(pv, keyB, keyB), readRes(t, pv, held)) {
		calls = append(calls, mp(c))
	}
	f.Script = append(calls, execx.Call{Argv: []string{"multipathd", "getprkey", "map", "dm-0"}, Stdout: k + ":aptpl\n"})
	runAll(t, f, fn.Join(context.Background()))
}

// Review of this session, R2: a join that registered on one map (mpathpersist handed multipathd
// the key) and then failed leaves released true: the next Prepare's
// ReleaseKeys sends nothing, and multipathd keeps the key while peers fence.
func TestReleaseKeysAfterAHalfJoin(t *testing.T) {
	pv, f, fn := multipathFencer(t)
	f.Script = releaseCalls("dm-0")
	fn.ReleaseKeys(context.Background())
	runAll(t, f, nil)
	// The join registers through mpathpersist (which sets multipathd's
	// key), then its reserve fails.
	var calls []execx.Call
	for _, c := range script(readKeys(pv), readRes(t, pv, none), register(t, pv), reserve(pv, &execx.ExecError{ExitCode: 1})) {
		calls = append(calls, mp(c))
	}
	f.Script = calls
	if err := fn.Join(context.Background()); err == nil {
		t.Fatal("join succeeded")
	}
	f.Ran = nil
	f.Script = releaseCalls("dm-0")
	fn.ReleaseKeys(context.Background())
	if len(f.Left()) != 0 {
		t.Fatalf("after a half join ReleaseKeys sent nothing: multipathd keeps the key mpathpersist handed it")
	}
}

// Review of this session, R4: probePaths sends SG_IO to a path whose SCSI device is blocked (an
// iSCSI session in recovery: mpathpersist's own checker skips it as
// PENDING); the kernel queues the command until the session recovers or
// replacement_timeout (120 s by default) passes, uninterruptibly, under
// opMu (and fenceMu in a takeover).
func TestProbeSkipsABlockedPath(t *testing.T) {
	pv, f, fn := multipathFencer(t)
	for _, sd := range []string{"sda", "sdb"} {
		dir := filepath.Join(fn.sysfs, "class/block/dm-0/slaves", sd)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		state := "running"
		if sd == "sdb" {
			state = "blocked"
		}
		if err := os.MkdirAll(filepath.Join(fn.sysfs, "class/block", sd, "device"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(fn.sysfs, "class/block", sd, "device", "state"), []byte(state+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	k := hexKey(keyB)
	var calls []execx.Call
	for _, c := range script(readKeys(pv), readRes(t, pv, none), register(t, pv)) {
		calls = append(calls, mp(c))
	}
	calls = append(calls,
		execx.Call{Argv: []string{"sg_persist", "--out", "--register", "--param-rk=" + k, "--param-sark=" + k, "--param-aptpl", "/dev/sda"}})
	for _, c := range script(reserve(pv, nil), readKeys(pv, keyB, keyB), readRes(t, pv, held)) {
		calls = append(calls, mp(c))
	}
	f.Script = append(calls, execx.Call{Argv: []string{"multipathd", "getprkey", "map", "dm-0"}, Stdout: k + ":aptpl\n"})
	err := fn.Join(context.Background())
	for _, c := range f.Ran {
		if c[len(c)-1] == "/dev/sdb" {
			t.Fatalf("probed the blocked path /dev/sdb: %q (join err %v)", c, err)
		}
	}
}

// At the cut-off the release must not depend on LVM: `pvs` can hang (a SAN
// cut with queue_if_no_path) past the moment peers may fence. The release
// takes the host's multipath maps from sysfs (review of issue 25, session
// 3, finding 2).
func TestReleaseKeysAsksNoLVM(t *testing.T) {
	pv, f, fn := multipathFencer(t)
	var calls []execx.Call
	for _, c := range script(readKeys(pv, keyB), readRes(t, pv, held)) {
		calls = append(calls, mp(c))
	}
	f.Script = append(calls, execx.Call{Argv: []string{"multipathd", "getprkey", "map", "dm-0"}, Stdout: hexKey(keyB) + ":aptpl\n"})
	runAll(t, f, fn.Join(context.Background()))
	fn.devices = func(context.Context) ([]string, error) { return nil, errors.New("pvs: timed out") }
	f.Script = releaseCalls("dm-0")
	fn.ReleaseKeys(context.Background())
	runAll(t, f, nil)
}

// A host released at its cut-off whose late renewal made it alive again
// gets the key back into multipathd at its next check, once the check
// proved its registration; a check with nothing released hands nothing.
func TestCheckHandsBackAReleasedKey(t *testing.T) {
	pv, f, fn := multipathFencer(t)
	state := func() []execx.Call {
		var calls []execx.Call
		for _, c := range script(readKeys(pv, keyB), readRes(t, pv, held)) {
			calls = append(calls, mp(c))
		}
		return calls
	}
	f.Script = state()
	runAll(t, f, fn.CheckRegistration(context.Background()))

	f.Script = releaseCalls("dm-0")
	fn.ReleaseKeys(context.Background())
	runAll(t, f, nil)
	f.Script = append(state(),
		execx.Call{Argv: []string{"multipathd", "getprkey", "map", "dm-0"}, Stdout: "none\n"},
		execx.Call{Argv: []string{"mpathpersist", "--in", "--report-capabilities", pv}, Stdout: string(fixture(t, "lab-report-capabilities.txt"))},
		execx.Call{Argv: []string{"multipathd", "setprkey", "map", "dm-0", "key", hexKey(keyB) + ":aptpl"}, Stdout: "ok\n"})
	runAll(t, f, fn.CheckRegistration(context.Background()))

	// Handed back: the next check hands nothing.
	f.Script = state()
	runAll(t, f, fn.CheckRegistration(context.Background()))

	// Released, then past the cut-off: nothing handed back.
	f.Script = releaseCalls("dm-0")
	fn.ReleaseKeys(context.Background())
	runAll(t, f, nil)
	fn.live = liveFor(-time.Second)
	f.Script = nil
	runAll(t, f, fn.CheckRegistration(context.Background()))
}

// releaseCalls are ReleaseKeys' commands for map name, where multipathd
// holds node-b's key.
func releaseCalls(name string) []execx.Call {
	return []execx.Call{
		{Argv: []string{"multipathd", "getprkey", "map", name}, Stdout: hexKey(keyB) + ":aptpl\n"},
		{Argv: []string{"multipathd", "unsetprkey", "map", name}, Stdout: "ok\n"},
	}
}
