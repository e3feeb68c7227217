package lvm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/relocvol/relocvol/backends"
	"github.com/relocvol/relocvol/internal/execx"
	"github.com/relocvol/relocvol/internal/fsutil"
	"github.com/relocvol/relocvol/internal/store"
)

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fakeLock records lock and unlock calls, so tests can check that every
// metadata change ran under the VG lock.
type fakeLock struct {
	mu     sync.Mutex
	events []string
	err    error
	lost   error
}

func (l *fakeLock) WithLock(ctx context.Context, key string, fn func(context.Context) error) error {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return l.err
	}
	l.events = append(l.events, "lock "+key)
	l.mu.Unlock()
	err := fn(ctx)
	l.mu.Lock()
	l.events = append(l.events, "unlock "+key)
	l.mu.Unlock()
	return err
}

// WithLockSteps records the lock, each proof that it is held ("held key")
// and the unlock; lost makes every proof fail.
func (l *fakeLock) WithLockSteps(ctx context.Context, key string, fn func(context.Context, func(context.Context) error) error) error {
	return l.WithLock(ctx, key, func(ctx context.Context) error {
		return fn(ctx, func(context.Context) error {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.events = append(l.events, "held "+key)
			return l.lost
		})
	})
}

var lvsArgv = []string{"lvs", "--config", "devices/hints=none", "-a", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", "lv_name,vg_name,lv_attr,lv_size,lv_path,lv_tags,lv_uuid,vg_uuid", "san"}

func newLVM(t *testing.T, calls ...execx.Call) (*LVM, *execx.Fake, *fakeLock) {
	t.Helper()
	f := &execx.Fake{Script: calls}
	lk := &fakeLock{}
	log := logrus.New()
	log.SetLevel(logrus.ErrorLevel)
	l, err := New("san", f, lk, WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if left := f.Left(); len(left) != 0 {
			t.Errorf("expected commands not run: %v", left)
		}
	})
	return l, f, lk
}

func TestParseLVs(t *testing.T) {
	lvs, err := parseLVs([]byte(fixture(t, "handwritten-lvs.json")))
	if err != nil {
		t.Fatal(err)
	}
	if len(lvs) != 3 {
		t.Fatalf("%d LVs", len(lvs))
	}
	if !lvs[0].active || lvs[0].bytes != 64<<20 || lvs[0].Path != "/dev/san/rv-db" {
		t.Fatalf("rv-db: %+v", lvs[0])
	}
	if lvs[1].active {
		t.Fatalf("rv-logs is not active: %+v", lvs[1])
	}
	if _, err := parseLVs([]byte(`{"report":[{"lv":[{"lv_name":"x","lv_size":"12.5"}]}]}`)); err == nil {
		t.Fatal("fractional size accepted")
	}
	if _, err := parseLVs([]byte("  Volume group \"san\" not found")); err == nil {
		t.Fatal("non-JSON accepted")
	}
}

func TestParsePVs(t *testing.T) {
	pvs, err := parsePVs([]byte(fixture(t, "handwritten-pvs.json")), "san")
	if err != nil || strings.Join(pvs, ",") != "/dev/sdb,/dev/mapper/mpathb" {
		t.Fatalf("pvs %v %v", pvs, err)
	}
	missing := `{"report":[{"pv":[{"pv_name":"/dev/sda","vg_name":"san"},{"pv_name":"[unknown]","vg_name":"san"}]}]}`
	if _, err := parsePVs([]byte(missing), "san"); err == nil || !strings.Contains(err.Error(), "volume group san has a physical volume this host does not see") {
		t.Errorf("a PV LVM reports [unknown]: err %v", err)
	}
	if _, err := parsePVs([]byte(fixture(t, "handwritten-pvs.json")), "nope"); err == nil || !strings.Contains(err.Error(), "volume group nope has no physical volume visible") {
		t.Fatalf("err = %v", err)
	}
}

func TestCreate(t *testing.T) {
	l, _, lk := newLVM(t,
		execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")},
		execx.Call{Argv: []string{"lvcreate", "--config", "devices/hints=none", "--yes", "--wipesignatures", "y", "--zero", "y", "--addtag", "relocvol", "--addtag", "relocvol-create-" + testID, "--activate", "y", "--name", "rv-new", "--size", "134217728b", "san"}},
		execx.Call{Argv: []string{"mkfs.ext4", "-q", "-F", "/dev/san/rv-new"}},
		execx.Call{Argv: []string{"lvchange", "--config", "devices/hints=none", "--activate", "n", "san/rv-new"}},
	)
	if err := l.Create(context.Background(), backends.Volume{Name: "new", Size: 128 << 20, FS: "ext4", CreateID: testID}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(lk.events, ",") != "lock vg/san,unlock vg/san" {
		t.Fatalf("lock events %v", lk.events)
	}
}

func TestCreateExisting(t *testing.T) {
	l, _, _ := newLVM(t, execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")})
	err := l.Create(context.Background(), backends.Volume{Name: "db", Size: 64 << 20, FS: "ext4", CreateID: testID})
	if !errors.Is(err, backends.ErrExists) {
		t.Fatalf("err = %v", err)
	}
}

func TestCreateRollsBackOnMkfsFailure(t *testing.T) {
	l, _, lk := newLVM(t,
		execx.Call{Argv: lvsArgv, Stdout: `{"report":[{"lv":[]}]}`},
		execx.Call{Argv: []string{"lvcreate", "--config", "devices/hints=none", "--yes", "--wipesignatures", "y", "--zero", "y", "--addtag", "relocvol", "--addtag", "relocvol-create-" + testID, "--activate", "y", "--name", "rv-new", "--size", "67108864b", "san"}},
		execx.Call{Argv: []string{"mkfs.xfs", "-q", "-f", "/dev/san/rv-new"}, Err: &execx.ExecError{ExitCode: 1, Stderr: "agsize too small"}},
		execx.Call{Argv: []string{"lvchange", "--config", "devices/hints=none", "--activate", "n", "san/rv-new"}},
		execx.Call{Argv: []string{"lvremove", "--config", "devices/hints=none", "--yes", "san/rv-new"}},
	)
	err := l.Create(context.Background(), backends.Volume{Name: "new", Size: 64 << 20, FS: "xfs", CreateID: testID})
	if err == nil || !strings.Contains(err.Error(), "agsize too small") {
		t.Fatalf("err = %v", err)
	}
	// lvcreate and the rollback's lvremove each under the lock; mkfs not.
	if strings.Join(lk.events, ",") != "lock vg/san,unlock vg/san,lock vg/san,unlock vg/san" {
		t.Fatalf("the rollback must run under the lock too: %v", lk.events)
	}
}

// Without the lock (etcd unreachable, or the lock's session expired before
// the command) no metadata command runs.
func TestCreateWithoutLock(t *testing.T) {
	for _, lockErr := range []error{errors.New("etcd unreachable"), fmt.Errorf("lock vg/san: its etcd session ended: %w", store.ErrLockLost)} {
		l, _, lk := newLVM(t, execx.Call{Argv: lvsArgv, Stdout: `{"report":[{"lv":[]}]}`})
		lk.err = lockErr
		err := l.Create(context.Background(), backends.Volume{Name: "new", Size: 64 << 20, FS: "ext4", CreateID: testID})
		if err == nil || !strings.Contains(err.Error(), "lock the metadata of VG san: "+lockErr.Error()) {
			t.Fatalf("err = %v", err)
		}
	}
}

// lvcreate itself refuses an LV that appeared since the check.
func TestCreateRacingAnotherHost(t *testing.T) {
	l, _, _ := newLVM(t,
		execx.Call{Argv: lvsArgv, Stdout: `{"report":[{"lv":[]}]}`},
		execx.Call{Argv: []string{"lvcreate", "--config", "devices/hints=none", "--yes", "--wipesignatures", "y", "--zero", "y", "--addtag", "relocvol", "--addtag", "relocvol-create-" + testID, "--activate", "y", "--name", "rv-new", "--size", "67108864b", "san"},
			Err: &execx.ExecError{ExitCode: 5, Stderr: `  Logical Volume "rv-new" already exists in volume group "san"`}},
	)
	err := l.Create(context.Background(), backends.Volume{Name: "new", Size: 64 << 20, FS: "ext4", CreateID: testID})
	if !errors.Is(err, backends.ErrExists) {
		t.Fatalf("err = %v, want ErrExists (and no lvremove of the other host's LV)", err)
	}
}

func TestActivate(t *testing.T) {
	l, _, _ := newLVM(t,
		execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")},
		execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")},
		execx.Call{Argv: dmInfoArgv, Stdout: fixture(t, "lab-dmsetup-none.txt")},
		execx.Call{Argv: []string{"lvchange", "--config", "devices/hints=none", "--activate", "y", "san/rv-logs"}},
		execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")},
	)
	ctx := context.Background()
	if dev, err := l.Activate(ctx, "db"); err != nil || dev != "/dev/san/rv-db" {
		t.Fatalf("already active: %q %v", dev, err)
	}
	if dev, err := l.Activate(ctx, "logs"); err != nil || dev != "/dev/san/rv-logs" {
		t.Fatalf("activate: %q %v", dev, err)
	}
	if _, err := l.Activate(ctx, "nosuch"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("missing LV: %v", err)
	}
}

func TestDeactivate(t *testing.T) {
	busy := &execx.ExecError{ExitCode: 5, Stderr: "  Logical volume san/rv-db in use."}
	l, _, _ := newLVM(t,
		execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")},
		execx.Call{Argv: []string{"lvchange", "--config", "devices/hints=none", "--activate", "n", "san/rv-db"}, Err: busy},
		execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")},
		execx.Call{Argv: dmInfoArgv, Stdout: fixture(t, "lab-dmsetup-none.txt")},
		execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")},
		execx.Call{Argv: []string{"lvchange", "--config", "devices/hints=none", "--activate", "n", "san/rv-db"}},
	)
	ctx := context.Background()
	if err := l.Deactivate(ctx, "db"); !errors.Is(err, backends.ErrInUse) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("busy: %v", err)
	}
	if err := l.Deactivate(ctx, "logs"); err != nil {
		t.Fatalf("inactive: %v", err)
	}
	if err := l.Deactivate(ctx, "db"); err != nil {
		t.Fatal(err)
	}
}

// testID is a create's identity; rv-logs of the fixture carries it.
const testID = "0123456789abcdef"

func TestRemove(t *testing.T) {
	l, _, lk := newLVM(t,
		execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")},
		execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")},
		execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")},
		execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")},
		execx.Call{Argv: []string{"lvremove", "--config", "devices/hints=none", "--yes", "san/rv-logs"}},
		execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")},
	)
	ctx := context.Background()
	if err := l.Remove(ctx, "db", ""); !errors.Is(err, backends.ErrInUse) {
		t.Fatalf("active: %v", err)
	}
	// Only the create that made an LV removes it: not another one, nor
	// one that carried no identity.
	for _, other := range []string{"", "fedcba9876543210"} {
		if err := l.Remove(ctx, "logs", other); !errors.Is(err, backends.ErrForeign) {
			t.Fatalf("remove as create %q: %v, want ErrForeign", other, err)
		}
	}
	if err := l.Remove(ctx, "logs", testID); err != nil {
		t.Fatal(err)
	}
	if err := l.Remove(ctx, "nosuch", testID); err != nil {
		t.Fatalf("missing: %v", err)
	}
	if strings.Join(lk.events, ",") != "lock vg/san,unlock vg/san" {
		t.Fatalf("lock events %v: only the lvremove runs under the lock", lk.events)
	}
}

func TestActiveAndDevice(t *testing.T) {
	l, _, _ := newLVM(t,
		execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")},
		execx.Call{Argv: dmInfoArgv, Stdout: fixture(t, "lab-dmsetup-none.txt")},
		execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")},
		execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")},
		execx.Call{Argv: dmInfoArgv, Stdout: fixture(t, "lab-dmsetup-none.txt")},
		execx.Call{Argv: lvsArgv, Err: &execx.ExecError{ExitCode: 5, Stderr: `  Volume group "san" not found`}},
	)
	ctx := context.Background()
	names, err := l.Active(ctx)
	if err != nil || strings.Join(names, ",") != "db" {
		t.Fatalf("Active = %v %v (LVs without the rv- prefix are not relocvol's)", names, err)
	}
	if dev, err := l.Device(ctx, "db"); err != nil || dev != "/dev/san/rv-db" {
		t.Fatalf("Device(db) = %q %v", dev, err)
	}
	if dev, err := l.Device(ctx, "logs"); err != nil || dev != "" {
		t.Fatalf("Device(logs) = %q %v", dev, err)
	}
	if _, err := l.Device(ctx, "db"); err == nil || !strings.Contains(err.Error(), `Volume group "san" not found`) {
		t.Fatalf("a failing lvs must be an error: %v", err)
	}
}

// Check names the VG, quotes LVM and says what to check; it warns when the
// host's /etc/lvm (shared with the plugin) has no lvm.conf.
func TestCheck(t *testing.T) {
	notFound := &execx.ExecError{Cmd: lvsArgv, ExitCode: 5, Stderr: "  Volume group \"san\" not found\n  Cannot process volume group san\n"}
	for _, tc := range []struct {
		name     string
		call     execx.Call
		conf     bool
		wantErr  []string
		wantWarn bool
	}{
		{name: "visible", call: execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")}, conf: true},
		{name: "visible, no LVs yet", call: execx.Call{Argv: lvsArgv, Stdout: `{"report":[{"lv":[]}]}`}, conf: true},
		{name: "visible, host's /etc/lvm empty: warned", call: execx.Call{Argv: lvsArgv, Stdout: `{"report":[{"lv":[]}]}`}, wantWarn: true},
		{
			name: "not found", call: execx.Call{Argv: lvsArgv, Err: notFound}, conf: true,
			wantErr: []string{
				`volume group san is not visible on this host: LVM says: Volume group "san" not found; Cannot process volume group san (lvs exit 5).`,
				"SAN LUN(s) of san are attached", "multipath -ll", "global_filter in /etc/lvm/lvm.conf",
				"/etc/lvm/devices/system.devices", "the plugin uses the host's /etc/lvm", "`vgs san` on the host",
				"vgcreate --setautoactivation n san DEVICE",
			},
		},
		{
			name: "not found, host's /etc/lvm empty", call: execx.Call{Argv: lvsArgv, Err: notFound},
			wantErr: []string{`LVM says: Volume group "san" not found`}, wantWarn: true,
		},
		{
			name: "no stderr: the error itself", call: execx.Call{Argv: lvsArgv, Err: &execx.ExecError{Cmd: lvsArgv, ExitCode: -1, Err: errors.New("signal: killed")}}, conf: true,
			wantErr: []string{"LVM says: list LVs of san: lvs", "signal: killed"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _, _ := newLVM(t, tc.call)
			log, hook := test.NewNullLogger()
			l.log = log
			l.conf = filepath.Join(t.TempDir(), "lvm.conf")
			if tc.conf {
				if err := os.WriteFile(l.conf, []byte("config {}\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := l.Check(context.Background())
			if len(tc.wantErr) == 0 && err != nil {
				t.Fatalf("err = %v", err)
			}
			for _, w := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to say %q", err, w)
				}
			}
			var ee *execx.ExecError
			if len(tc.wantErr) > 0 && !errors.As(err, &ee) {
				t.Errorf("err %v does not unwrap to LVM's *execx.ExecError", err)
			}
			warned := false
			for _, e := range hook.AllEntries() {
				warned = warned || (e.Level == logrus.WarnLevel && strings.Contains(e.Message, "Install lvm2 on the host") && e.Data["file"] == l.conf)
			}
			if warned != tc.wantWarn {
				t.Errorf("warned about the missing lvm.conf: %v, want %v (log: %v)", warned, tc.wantWarn, hook.AllEntries())
			}
		})
	}
}

func TestPVs(t *testing.T) {
	argv := []string{"pvs", "--config", "devices/hints=none", "--reportformat", "json", "-o", "pv_name,vg_name"}
	l, _, _ := newLVM(t,
		execx.Call{Argv: argv, Stdout: fixture(t, "handwritten-pvs.json")},
		execx.Call{Argv: argv, Err: &execx.ExecError{ExitCode: 5, Stderr: "  Devices file sys_wwid t10.LIO not found"}},
	)
	if pvs, err := l.PVs(context.Background()); err != nil || strings.Join(pvs, ",") != "/dev/sdb,/dev/mapper/mpathb" {
		t.Fatalf("PVs = %v, %v", pvs, err)
	}
	if _, err := l.PVs(context.Background()); err == nil || !strings.Contains(err.Error(), "list PVs: ") || !strings.Contains(err.Error(), "Devices file") {
		t.Fatalf("a failing pvs: %v", err)
	}
}

func TestNewRejectsBadVG(t *testing.T) {
	for _, vg := range []string{"", "-x", "a/b", ".."} {
		if _, err := New(vg, &execx.Fake{}, &fakeLock{}); err == nil {
			t.Errorf("VG %q accepted", vg)
		}
	}
}

// TestMain fails the run if a test had the backend run a command that
// neither Tools nor fsutil.Tools declares.
func TestMain(m *testing.M) {
	os.Exit(execx.FakesDeclared(m.Run(), "lvm.Tools or fsutil.Tools", Tools, fsutil.Tools))
}

func TestFailureKind(t *testing.T) {
	for _, tc := range []struct {
		name   string
		code   int
		stderr string
		want   error
	}{
		{"lvcreate of an LV there", 5, `  Logical Volume "rv-new" already exists in volume group "san"`, backends.ErrExists},
		{"lvremove of an open LV", 5, "  Logical volume san/rv-db in use.", backends.ErrInUse},
		{"lvremove of an open LV, older LVM", 5, `  Can't remove open logical volume "rv-db"`, backends.ErrInUse},
		{"lvchange -an of an open LV", 5, "  Logical volume san/rv-db is open.", backends.ErrInUse},
		{"an LV that is not there", 5, `  Failed to find logical volume "san/rv-x"`, backends.ErrNotFound},
		{"a VG that is not there", 5, `  Volume group "san" not found`, backends.ErrNotFound},
		{"a bad command line says not found too", 3, `  Option --bogus not found`, nil},
		{"LVM could not start", 4, "  Failed to find logical volume", nil},
		{"killed", -1, "", nil},
		{"another failure", 5, "  Insufficient free space: 256 extents needed, but only 10 available", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := failureKind(tc.code, tc.stderr); got != tc.want {
				t.Errorf("failureKind(%d, %q) = %v, want %v", tc.code, tc.stderr, got, tc.want)
			}
		})
	}
}

func TestGrow(t *testing.T) {
	full := &execx.ExecError{ExitCode: 5, Stderr: `  Insufficient free space: 512 extents needed, but only 10 available`}
	l, _, lk := newLVM(t,
		// rv-logs (inactive here: another host may have it active) is 1G.
		execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")},
		execx.Call{Argv: []string{"lvextend", "--config", "devices/hints=none", "--size", "2147483648b", "san/rv-logs"}},
		// Already that large: nothing runs.
		execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")},
		execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")},
		execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")},
		execx.Call{Argv: []string{"lvextend", "--config", "devices/hints=none", "--size", "4294967296b", "san/rv-db"}, Err: full},
	)
	ctx := context.Background()
	if err := l.Grow(ctx, "logs", 2<<30); err != nil {
		t.Fatal(err)
	}
	if err := l.Grow(ctx, "logs", 1<<30); err != nil {
		t.Fatalf("as large already: %v", err)
	}
	if err := l.Grow(ctx, "nosuch", 1<<30); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("missing LV: %v", err)
	}
	err := l.Grow(ctx, "db", 4<<30)
	var ee *execx.ExecError
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), "Insufficient free space") || !strings.Contains(err.Error(), "vgs san shows the space left") {
		t.Fatalf("VG full: %v; want LVM's message and what to look at", err)
	}
	if strings.Join(lk.events, ",") != "lock vg/san,unlock vg/san,lock vg/san,unlock vg/san" {
		t.Fatalf("lock events %v: each lvextend runs under the VG lock", lk.events)
	}
}

func TestRefresh(t *testing.T) {
	l, _, lk := newLVM(t,
		execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")},
		execx.Call{Argv: []string{"lvchange", "--config", "devices/hints=none", "--refresh", "san/rv-db"}},
		execx.Call{Argv: lvsArgv, Stdout: fixture(t, "handwritten-lvs.json")},
	)
	ctx := context.Background()
	if err := l.Refresh(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	if err := l.Refresh(ctx, "logs"); err != nil {
		t.Fatalf("not active here: %v", err)
	}
	if len(lk.events) != 0 {
		t.Fatalf("lock events %v: a refresh changes no metadata", lk.events)
	}
}

// An LV active here whose metadata another host changed (lvextend of a
// volume this host has mounted: seen in the VM lab) shows its state as
// "X", unknown: it is still active here. Refresh must reload it, and a
// Deactivate must deactivate it: taking it for inactive would leave it
// active here while another host activates it.
func TestStateUnknownIsActive(t *testing.T) {
	lvsGrown := []string{"lvs", "--config", "devices/hints=none", "-a", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", "lv_name,vg_name,lv_attr,lv_size,lv_path,lv_tags,lv_uuid,vg_uuid", "rvdocker"}
	grown := fixture(t, "lab-lvs-grown-elsewhere.json")
	f := &execx.Fake{Script: []execx.Call{
		{Argv: lvsGrown, Stdout: grown},
		{Argv: []string{"lvchange", "--config", "devices/hints=none", "--refresh", "rvdocker/rv-v1"}},
		{Argv: lvsGrown, Stdout: grown},
		{Argv: lvsGrown, Stdout: grown},
		{Argv: []string{"lvchange", "--config", "devices/hints=none", "--activate", "n", "rvdocker/rv-v1"}},
	}}
	log := logrus.New()
	log.SetLevel(logrus.ErrorLevel)
	l, err := New("rvdocker", f, &fakeLock{}, WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := l.Refresh(ctx, "v1"); err != nil {
		t.Fatal(err)
	}
	if dev, err := l.Device(ctx, "v1"); err != nil || dev != "/dev/rvdocker/rv-v1" {
		t.Fatalf("Device = %q, %v; want the LV's device: it is active here", dev, err)
	}
	if err := l.Deactivate(ctx, "v1"); err != nil {
		t.Fatal(err)
	}
	if left := f.Left(); len(left) != 0 {
		t.Fatalf("not run: %v (the LV was taken for inactive)", left)
	}
}
