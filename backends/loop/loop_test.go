package loop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"

	"github.com/relocvol/relocvol/backends"
	"github.com/relocvol/relocvol/internal/execx"
	"github.com/relocvol/relocvol/internal/fsutil"
)

var listArgv = []string{"losetup", "--list", "--json", "--output", "NAME,BACK-INO,BACK-MAJ:MIN"}

func TestParseList(t *testing.T) {
	// losetup-*.json except the handwritten one were recorded with util-linux
	// 2.38.1 on this project's CI machine, image files on ext4 /dev/vda (254:0).
	tests := []struct {
		file string
		want []loopDev
	}{
		{file: "losetup-nothing.txt", want: nil}, // older losetup: no output at all
		{file: "losetup-empty.json", want: nil},
		{file: "losetup-one.json", want: []loopDev{
			{Name: "/dev/loop0", Ino: 9978146, Major: 254, Minor: 0},
		}},
		{file: "losetup-three.json", want: []loopDev{ // one file attached twice
			{Name: "/dev/loop1", Ino: 9978257, Major: 254, Minor: 0},
			{Name: "/dev/loop2", Ino: 9978146, Major: 254, Minor: 0},
			{Name: "/dev/loop0", Ino: 9978146, Major: 254, Minor: 0},
		}},
		{file: "losetup-strings-handwritten.json", want: []loopDev{ // string values; no backing file
			{Name: "/dev/loop0", Ino: 9978146, Major: 254, Minor: 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			out, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseList(out)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseList = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseListErrors(t *testing.T) {
	tests := []struct {
		name string
		out  string
	}{
		{name: "not json", out: "/dev/loop0: []: (/tmp/x.img)"},
		{name: "bad inode", out: `{"loopdevices":[{"name":"/dev/loop0","back-ino":"x","back-maj:min":"254:0"}]}`},
		{name: "bad maj:min", out: `{"loopdevices":[{"name":"/dev/loop0","back-ino":1,"back-maj:min":"fe00"}]}`},
		{name: "hex maj:min", out: `{"loopdevices":[{"name":"/dev/loop0","back-ino":1,"back-maj:min":"fe:0"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := parseList([]byte(tt.out)); err == nil {
				t.Errorf("parseList = %+v, want an error", got)
			}
		})
	}
}

func TestDevicesOf(t *testing.T) {
	out, err := os.ReadFile(filepath.Join("testdata", "losetup-three.json"))
	if err != nil {
		t.Fatal(err)
	}
	list, err := parseList(out)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		ino          uint64
		major, minor uint32
		want         []string
	}{
		{name: "attached twice, sorted", ino: 9978146, major: 254, want: []string{"/dev/loop0", "/dev/loop2"}},
		{name: "attached once", ino: 9978257, major: 254, want: []string{"/dev/loop1"}},
		{name: "same inode on another fs", ino: 9978146, major: 8, minor: 1, want: nil},
		{name: "same fs, other inode", ino: 1, major: 254, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := devicesOf(list, tt.ino, tt.major, tt.minor); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("devicesOf = %v, want %v", got, tt.want)
			}
		})
	}
}

// fixture is a Loop over a temp dir with one image file "vol" (unless
// noImage), and helpers to script losetup output that names that file by its
// real inode and device, as losetup would.
type fixture struct {
	loop *Loop
	fake *execx.Fake
	file string
	ino  uint64
	dev  uint64
}

func newFixture(t *testing.T, withImage bool) *fixture {
	t.Helper()
	fake := &execx.Fake{}
	log, _ := test.NewNullLogger()
	l, err := New(t.TempDir(), fake, WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{loop: l, fake: fake, file: filepath.Join(l.dir, "vol.img")}
	if withImage {
		if err := os.WriteFile(f.file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Stat(f.file, &st); err != nil {
			t.Fatal(err)
		}
		f.ino, f.dev = st.Ino, st.Dev
	}
	t.Cleanup(func() {
		if left := fake.Left(); len(left) != 0 && !t.Failed() {
			t.Errorf("scripted commands never ran: %v", left)
		}
	})
	return f
}

// entry is one device in a scripted losetup list: ours=true means backed by
// the fixture's image file.
type entry struct {
	name string
	ours bool
}

// list renders losetup --list --json output in the format of losetup 2.38.
// Foreign devices include one with the same inode on another device, which
// must not count as ours.
func (f *fixture) list(entries ...entry) string {
	var parts []string
	for _, e := range entries {
		ino, major, minor := f.ino, unix.Major(f.dev), unix.Minor(f.dev)
		if !e.ours {
			major++ // same inode number, other filesystem
		}
		parts = append(parts, fmt.Sprintf(
			"      {\n         \"name\": %q,\n         \"back-ino\": %d,\n         \"back-maj:min\": \"%8d:%-3d\"\n      }",
			e.name, ino, major, minor))
	}
	return "{\n   \"loopdevices\": [\n" + strings.Join(parts, ",") + "\n   ]\n}\n"
}

func (f *fixture) script(calls ...execx.Call) { f.fake.Script = calls }

func TestActivateAlreadyAttached(t *testing.T) {
	f := newFixture(t, true)
	f.script(execx.Call{Argv: listArgv, Stdout: f.list(entry{"/dev/loop1", false}, entry{"/dev/loop3", true})})
	dev, err := f.loop.Activate(context.Background(), "vol")
	if err != nil {
		t.Fatal(err)
	}
	if dev != "/dev/loop3" {
		t.Errorf("Activate = %q, want /dev/loop3", dev)
	}
}

func TestActivateAttaches(t *testing.T) {
	f := newFixture(t, true)
	f.script(
		execx.Call{Argv: listArgv, Stdout: f.list(entry{"/dev/loop1", false})},
		execx.Call{Argv: []string{"losetup", "--find", "--show", f.file}, Stdout: "/dev/loop5\n"},
	)
	dev, err := f.loop.Activate(context.Background(), "vol")
	if err != nil {
		t.Fatal(err)
	}
	if dev != "/dev/loop5" {
		t.Errorf("Activate = %q, want /dev/loop5", dev)
	}
}

func TestActivateAttachFails(t *testing.T) {
	f := newFixture(t, true)
	failure := &execx.ExecError{Cmd: []string{"losetup"}, ExitCode: 1, Stderr: "losetup: cannot find an unused loop device"}
	f.script(
		execx.Call{Argv: listArgv, Stdout: ""}, // older losetup: nothing attached, no output
		execx.Call{Argv: []string{"losetup", "--find", "--show", f.file}, Err: failure},
	)
	_, err := f.loop.Activate(context.Background(), "vol")
	var ee *execx.ExecError
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), f.file) || !strings.Contains(err.Error(), "unused loop device") {
		t.Errorf("err = %v, want the ExecError wrapped with the file", err)
	}
}

func TestActivateMissing(t *testing.T) {
	f := newFixture(t, false)
	_, err := f.loop.Activate(context.Background(), "vol")
	if !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound", err)
	}
	if len(f.fake.Ran) != 0 {
		t.Errorf("ran %v, want nothing", f.fake.Ran)
	}
}

func TestDeactivate(t *testing.T) {
	f := newFixture(t, true)
	f.script(
		execx.Call{Argv: listArgv, Stdout: f.list(entry{"/dev/loop2", true}, entry{"/dev/loop1", false}, entry{"/dev/loop0", true})},
		execx.Call{Argv: []string{"losetup", "--detach", "/dev/loop0"}},
		execx.Call{Argv: []string{"losetup", "--detach", "/dev/loop2"}},
		execx.Call{Argv: listArgv, Stdout: f.list(entry{"/dev/loop1", false})},
	)
	if err := f.loop.Deactivate(context.Background(), "vol"); err != nil {
		t.Fatal(err)
	}
}

func TestDeactivateNotAttached(t *testing.T) {
	f := newFixture(t, true)
	f.script(execx.Call{Argv: listArgv, Stdout: f.list()})
	if err := f.loop.Deactivate(context.Background(), "vol"); err != nil {
		t.Fatal(err)
	}
}

func TestDeactivateMissing(t *testing.T) {
	f := newFixture(t, false)
	if err := f.loop.Deactivate(context.Background(), "vol"); err != nil {
		t.Fatal(err)
	}
	if len(f.fake.Ran) != 0 {
		t.Errorf("ran %v, want nothing", f.fake.Ran)
	}
}

// A mounted loop device "detaches" successfully but stays attached until its
// last close; that must be reported, not passed off as deactivated.
func TestDeactivateStillOpen(t *testing.T) {
	f := newFixture(t, true)
	f.script(
		execx.Call{Argv: listArgv, Stdout: f.list(entry{"/dev/loop0", true})},
		execx.Call{Argv: []string{"losetup", "--detach", "/dev/loop0"}},
		execx.Call{Argv: listArgv, Stdout: f.list(entry{"/dev/loop0", true})},
	)
	err := f.loop.Deactivate(context.Background(), "vol")
	if !errors.Is(err, backends.ErrInUse) || !strings.Contains(err.Error(), "/dev/loop0") {
		t.Errorf("err = %v, want ErrInUse naming /dev/loop0", err)
	}
}

func TestDeactivateDetachFails(t *testing.T) {
	f := newFixture(t, true)
	failure := &execx.ExecError{Cmd: []string{"losetup"}, ExitCode: 1, Stderr: "losetup: /dev/loop0: detach failed: Permission denied"}
	f.script(
		execx.Call{Argv: listArgv, Stdout: f.list(entry{"/dev/loop0", true})},
		execx.Call{Argv: []string{"losetup", "--detach", "/dev/loop0"}, Err: failure},
		execx.Call{Argv: listArgv, Stdout: f.list(entry{"/dev/loop0", true})},
	)
	err := f.loop.Deactivate(context.Background(), "vol")
	if !errors.As(err, new(*execx.ExecError)) || !strings.Contains(err.Error(), "Permission denied") {
		t.Errorf("err = %v, want the ExecError with stderr", err)
	}
}

// A device that detached by itself between the listing and the detach (its
// autoclear fired on last close) makes losetup fail, but the volume is
// inactive as asked.
func TestDeactivateDetachRacesAutoclear(t *testing.T) {
	f := newFixture(t, true)
	failure := &execx.ExecError{Cmd: []string{"losetup"}, ExitCode: 1, Stderr: "losetup: /dev/loop0: detach failed: No such device or address"}
	f.script(
		execx.Call{Argv: listArgv, Stdout: f.list(entry{"/dev/loop0", true})},
		execx.Call{Argv: []string{"losetup", "--detach", "/dev/loop0"}, Err: failure},
		execx.Call{Argv: listArgv, Stdout: ""},
	)
	if err := f.loop.Deactivate(context.Background(), "vol"); err != nil {
		t.Fatal(err)
	}
}

func TestRemoveInUse(t *testing.T) {
	f := newFixture(t, true)
	f.script(execx.Call{Argv: listArgv, Stdout: f.list(entry{"/dev/loop4", true})})
	err := f.loop.Remove(context.Background(), "vol", "")
	if !errors.Is(err, backends.ErrInUse) || !strings.Contains(err.Error(), "/dev/loop4") {
		t.Errorf("err = %v, want ErrInUse naming /dev/loop4", err)
	}
	if _, err := os.Stat(f.file); err != nil {
		t.Errorf("image of an attached volume removed: %v", err)
	}
}

func TestRemove(t *testing.T) {
	f := newFixture(t, true)
	f.script(execx.Call{Argv: listArgv, Stdout: f.list(entry{"/dev/loop4", false})})
	if err := f.loop.Remove(context.Background(), "vol", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.file); !os.IsNotExist(err) {
		t.Errorf("image still there: %v", err)
	}
	// Removing again is fine and needs no command.
	if err := f.loop.Remove(context.Background(), "vol", ""); err != nil {
		t.Fatal(err)
	}
}

func TestDevice(t *testing.T) {
	f := newFixture(t, true)
	f.script(
		execx.Call{Argv: listArgv, Stdout: f.list(entry{"/dev/loop6", true})},
		execx.Call{Argv: listArgv, Stdout: f.list(entry{"/dev/loop6", false})},
	)
	for _, want := range []string{"/dev/loop6", ""} {
		got, err := f.loop.Device(context.Background(), "vol")
		if err != nil || got != want {
			t.Errorf("Device = %q, %v; want %q", got, err, want)
		}
	}
	// A failing losetup is an error, never "not active": the plugin would
	// release a claim on that guess.
	f.script(execx.Call{Argv: listArgv, Err: &execx.ExecError{Cmd: listArgv, ExitCode: 1, Stderr: "losetup: cannot open /dev/loop-control"}})
	if got, err := f.loop.Device(context.Background(), "vol"); err == nil || !strings.Contains(err.Error(), "cannot open /dev/loop-control") {
		t.Errorf("Device with a failing losetup = %q, %v; want the error", got, err)
	}
}

const testID = "0123456789abcdef"

func TestCreate(t *testing.T) {
	f := newFixture(t, false)
	image := f.file + "." + testID
	f.script(execx.Call{Argv: []string{"mkfs.xfs", "-q", "-f", image}})
	if err := f.loop.Create(context.Background(), backends.Volume{Name: "vol", Size: 320 << 20, FS: "xfs", CreateID: testID}); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(f.file); err != nil || target != "vol.img."+testID {
		t.Fatalf("vol.img links to %q (%v), want the create's image vol.img.%s", target, err, testID)
	}
	st, err := os.Stat(f.file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 320<<20 {
		t.Errorf("size = %d, want %d", st.Size(), 320<<20)
	}
	if blocks := st.Sys().(*syscall.Stat_t).Blocks; blocks != 0 {
		t.Errorf("image uses %d blocks before mkfs, want a sparse file", blocks)
	}

	err = f.loop.Create(context.Background(), backends.Volume{Name: "vol", Size: 320 << 20, FS: "xfs", CreateID: "fedcba9876543210"})
	if !errors.Is(err, backends.ErrExists) || !strings.Contains(err.Error(), f.file) {
		t.Errorf("second Create: err = %v, want ErrExists naming the file", err)
	}
	if err := f.loop.Create(context.Background(), backends.Volume{Name: "other", Size: 320 << 20, FS: "xfs"}); err == nil || !strings.Contains(err.Error(), "invalid create ID") {
		t.Errorf("Create without a create ID: err = %v, want it refused", err)
	}
}

// Only the create that made a volume removes it; a create's image left
// without its link goes with the remove of that create.
func TestRemoveOnlyWhatACreateMade(t *testing.T) {
	f := newFixture(t, false)
	image := f.file + "." + testID
	if err := os.WriteFile(image, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(image), f.file); err != nil {
		t.Fatal(err)
	}
	for _, other := range []string{"", "fedcba9876543210"} {
		if err := f.loop.Remove(context.Background(), "vol", other); !errors.Is(err, backends.ErrForeign) {
			t.Errorf("Remove as create %q: %v, want ErrForeign", other, err)
		}
	}
	if _, err := os.Stat(f.file); err != nil {
		t.Fatalf("foreign storage removed: %v", err)
	}
	if err := os.Remove(f.file); err != nil { // as if the create died before linking it
		t.Fatal(err)
	}
	if err := f.loop.Remove(context.Background(), "vol", testID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(image); !os.IsNotExist(err) {
		t.Errorf("the create's unlinked image is still there: %v", err)
	}
}

func TestCreateRollsBack(t *testing.T) {
	tests := []struct {
		name   string
		v      backends.Volume
		script func(f *fixture) []execx.Call
	}{
		{
			name: "mkfs fails",
			v:    backends.Volume{Name: "vol", Size: 16 << 20, FS: "xfs", CreateID: testID},
			script: func(f *fixture) []execx.Call {
				return []execx.Call{{
					Argv: []string{"mkfs.xfs", "-q", "-f", f.file + "." + testID},
					Err:  &execx.ExecError{Cmd: []string{"mkfs.xfs"}, ExitCode: 1, Stderr: "Filesystem must be larger than 300MB."},
				}}
			},
		},
		{
			name:   "unsupported fs",
			v:      backends.Volume{Name: "vol", Size: 16 << 20, FS: "zfs", CreateID: testID},
			script: func(*fixture) []execx.Call { return nil },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, false)
			f.script(tt.script(f)...)
			if err := f.loop.Create(context.Background(), tt.v); err == nil {
				t.Fatal("Create succeeded, want an error")
			}
			for _, file := range []string{f.file, f.file + "." + testID} {
				if _, err := os.Lstat(file); !os.IsNotExist(err) {
					t.Errorf("half-made %s left behind: %v", file, err)
				}
			}
		})
	}
}

func TestInvalidNames(t *testing.T) {
	f := newFixture(t, false)
	for _, name := range []string{"", ".", "..", "../x", "a/b"} {
		if err := f.loop.Create(context.Background(), backends.Volume{Name: name, Size: 1 << 20, FS: "ext4"}); err == nil {
			t.Errorf("Create(%q) succeeded, want an error", name)
		}
		if _, err := f.loop.Activate(context.Background(), name); err == nil {
			t.Errorf("Activate(%q) succeeded, want an error", name)
		}
	}
	if len(f.fake.Ran) != 0 {
		t.Errorf("ran %v, want nothing", f.fake.Ran)
	}
}

func TestNewBadDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{file, filepath.Join(file, "sub")} {
		_, err := New(dir, &execx.Fake{})
		if err == nil || !strings.Contains(err.Error(), dir) {
			t.Errorf("New(%q): err = %v, want one naming the dir", dir, err)
		}
	}
	if _, err := New("", &execx.Fake{}); err == nil {
		t.Error("New(\"\") succeeded, want an error")
	}
}

func TestNewCreatesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "images")
	if _, err := New(dir, &execx.Fake{}, WithLogger(logrus.New())); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Errorf("dir not created: %v", err)
	}
}

// TestMain fails the run if a test had the backend run a command that
// neither Tools nor fsutil.Tools declares.
func TestMain(m *testing.M) {
	os.Exit(execx.FakesDeclared(m.Run(), "loop.Tools or fsutil.Tools", Tools, fsutil.Tools))
}

func TestGrowExtendsTheImageOnly(t *testing.T) {
	f := newFixture(t, true)
	if err := os.Truncate(f.file, 64<<20); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		size, want int64
	}{
		{name: "larger", size: 128 << 20, want: 128 << 20},
		{name: "same", size: 128 << 20, want: 128 << 20},
		{name: "smaller is left alone", size: 32 << 20, want: 128 << 20},
	} {
		if err := f.loop.Grow(context.Background(), "vol", tc.size); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if st, err := os.Stat(f.file); err != nil || st.Size() != tc.want {
			t.Fatalf("%s: image %v, %v; want %d bytes", tc.name, st.Size(), err, tc.want)
		}
	}
	if len(f.fake.Ran) != 0 {
		t.Errorf("ran %v: growing an image needs no command", f.fake.Ran)
	}
}

func TestGrowMissing(t *testing.T) {
	f := newFixture(t, false)
	if err := f.loop.Grow(context.Background(), "vol", 1<<30); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound", err)
	}
}

func TestRefreshEveryDeviceOfTheImage(t *testing.T) {
	f := newFixture(t, true)
	f.script(
		execx.Call{Argv: listArgv, Stdout: f.list(entry{"/dev/loop2", true}, entry{"/dev/loop1", false}, entry{"/dev/loop0", true})},
		execx.Call{Argv: []string{"losetup", "--set-capacity", "/dev/loop0"}},
		execx.Call{Argv: []string{"losetup", "--set-capacity", "/dev/loop2"}},
	)
	if err := f.loop.Refresh(context.Background(), "vol"); err != nil {
		t.Fatal(err)
	}
}

func TestRefreshNotAttached(t *testing.T) {
	f := newFixture(t, true)
	f.script(execx.Call{Argv: listArgv, Stdout: f.list(entry{"/dev/loop1", false})})
	if err := f.loop.Refresh(context.Background(), "vol"); err != nil {
		t.Fatal(err)
	}
}
