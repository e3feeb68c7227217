package scsi3

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

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

func TestParseReservation(t *testing.T) {
	r, err := ParseReservation(fixture(t, "handwritten-read-reservation-held.txt"))
	if err != nil || !r.Held || r.Key != 0x5256aaaaaaaaaaab || r.Type != "Write Exclusive, registrants only" {
		t.Fatalf("held: %+v %v", r, err)
	}
	for file, key := range map[string]uint64{
		"lab-read-reservation-held.txt":          0x72760000000000a1,
		"lab-read-reservation-held-n.txt":        0x72760000000000a1,
		"lab-read-reservation-after-preempt.txt": 0x72760000000000b2, // the preemptor holds it now
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
	dev := filepath.Join(t.TempDir(), "sdb")
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(nopWriter{})
	opts = append([]Option{WithSysfs(t.TempDir()), WithRetry(3, time.Millisecond), WithLogger(log)}, opts...)
	fn := New(f, "node-b", func(context.Context) ([]string, error) { return []string{dev}, nil }, opts...)
	return fn
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

func devOf(fn *Fencer) string {
	ps, _ := fn.paths(context.Background())
	return ps[0].dev
}

func TestFencePreemptsAndVerifies(t *testing.T) {
	a, b := KeyFor("node-a"), KeyFor("node-b")
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
			f.Script = []execx.Call{
				{Argv: []string{"sg_persist", "--in", "--read-keys", dev}, Stdout: keysOut(a, b)},
				{Argv: []string{"sg_persist", "--out", tc.mode, "--param-rk=" + hexKey(b), "--param-sark=" + hexKey(a), "--prout-type=5", dev}},
				{Argv: []string{"sg_persist", "--in", "--read-keys", dev}, Stdout: keysOut(b)},
			}
			if err := fn.Fence(context.Background(), "node-a"); err != nil {
				t.Fatal(err)
			}
			if left := f.Left(); len(left) != 0 {
				t.Fatalf("commands not run: %v", left)
			}
		})
	}
}

func TestFenceAlreadyFenced(t *testing.T) {
	f := &execx.Fake{}
	fn := newFencer(t, f)
	f.Script = []execx.Call{{Argv: []string{"sg_persist", "--in", "--read-keys", devOf(fn)}, Stdout: keysOut(KeyFor("node-b"))}}
	if err := fn.Fence(context.Background(), "node-a"); err != nil {
		t.Fatalf("fencing a host whose key is gone: %v", err)
	}
}

func TestFenceRefusedWhenSelfNotRegistered(t *testing.T) {
	f := &execx.Fake{}
	fn := newFencer(t, f)
	f.Script = []execx.Call{{Argv: []string{"sg_persist", "--in", "--read-keys", devOf(fn)}, Stdout: keysOut(KeyFor("node-a"))}}
	err := fn.Fence(context.Background(), "node-a")
	if !errors.Is(err, ErrNotRegistered) || !strings.Contains(err.Error(), "cannot fence node-a") {
		t.Fatalf("err = %v", err)
	}
}

func TestFenceFailsWhenKeySurvives(t *testing.T) {
	a, b := KeyFor("node-a"), KeyFor("node-b")
	f := &execx.Fake{}
	fn := newFencer(t, f)
	dev := devOf(fn)
	f.Script = []execx.Call{
		{Argv: []string{"sg_persist", "--in", "--read-keys", dev}, Stdout: keysOut(a, b)},
		{Argv: []string{"sg_persist", "--out", "--preempt-abort", "--param-rk=" + hexKey(b), "--param-sark=" + hexKey(a), "--prout-type=5", dev}},
		{Argv: []string{"sg_persist", "--in", "--read-keys", dev}, Stdout: keysOut(a, b)},
	}
	if err := fn.Fence(context.Background(), "node-a"); err == nil || !strings.Contains(err.Error(), "still registered after the preempt") {
		t.Fatalf("err = %v", err)
	}
}

func TestFenceConflictAndUnitAttention(t *testing.T) {
	a, b := KeyFor("node-a"), KeyFor("node-b")
	f := &execx.Fake{}
	fn := newFencer(t, f)
	dev := devOf(fn)
	ua := &execx.ExecError{Cmd: []string{"sg_persist"}, ExitCode: 6, Stderr: "persistent reserve in: Unit attention"}
	conflict := &execx.ExecError{Cmd: []string{"sg_persist"}, ExitCode: 24, Stderr: "persistent reserve out: Reservation conflict"}
	f.Script = []execx.Call{
		{Argv: []string{"sg_persist", "--in", "--read-keys", dev}, Err: ua},
		{Argv: []string{"sg_persist", "--in", "--read-keys", dev}, Stdout: keysOut(a, b)},
		{Argv: []string{"sg_persist", "--out", "--preempt-abort", "--param-rk=" + hexKey(b), "--param-sark=" + hexKey(a), "--prout-type=5", dev}, Err: conflict},
	}
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
	b := hexKey(KeyFor("node-b"))
	for _, tc := range []struct {
		name     string
		resOut   string
		reserve  bool
		reserveE error
	}{
		{"no reservation yet", string(fixture(t, "handwritten-read-reservation-none.txt")), true, nil},
		{"reservation held by a peer", string(fixture(t, "handwritten-read-reservation-held.txt")), false, nil},
		{"a peer reserves first", string(fixture(t, "handwritten-read-reservation-none.txt")), true, &execx.ExecError{ExitCode: 24, Stderr: "Reservation conflict"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &execx.Fake{}
			fn := newFencer(t, f)
			dev := devOf(fn)
			f.Script = []execx.Call{
				{Argv: []string{"sg_persist", "--out", "--register-ignore", "--param-sark=" + b, dev}},
				{Argv: []string{"sg_persist", "--in", "--read-reservation", dev}, Stdout: tc.resOut},
			}
			if tc.reserve {
				f.Script = append(f.Script, execx.Call{Argv: []string{"sg_persist", "--out", "--reserve", "--param-rk=" + b, "--prout-type=5", dev}, Err: tc.reserveE})
			}
			if err := fn.Join(context.Background()); err != nil {
				t.Fatal(err)
			}
			if left := f.Left(); len(left) != 0 {
				t.Fatalf("commands not run: %v", left)
			}
		})
	}
}

func TestRegistered(t *testing.T) {
	f := &execx.Fake{}
	fn := newFencer(t, f)
	dev := devOf(fn)
	f.Script = []execx.Call{
		{Argv: []string{"sg_persist", "--in", "--read-keys", dev}, Stdout: keysOut(KeyFor("node-a"), KeyFor("node-b"))},
		{Argv: []string{"sg_persist", "--in", "--read-keys", dev}, Stdout: keysOut(KeyFor("node-a"))},
	}
	for _, want := range []bool{true, false} {
		got, err := fn.Registered(context.Background())
		if err != nil || got != want {
			t.Fatalf("Registered = %v, %v; want %v", got, err, want)
		}
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

func TestMultipathUsesMpathpersist(t *testing.T) {
	if (path{dev: "/dev/dm-0", multipath: true}).tool() != "mpathpersist" || (path{dev: "/dev/sdb"}).tool() != "sg_persist" {
		t.Fatal("wrong tool")
	}
}
