package execx

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
)

// Call is one expected command of a Fake and the answer it gets.
type Call struct {
	Argv   []string
	Stdout string
	Err    error // returned as is; use &ExecError{…} to imitate a failing command
}

// Fake is a scripted Runner for unit tests: each Run must match the next
// expected argv exactly, in order. It is for unit tests only.
type Fake struct {
	mu     sync.Mutex
	Script []Call
	Ran    [][]string
	// wrong are the commands run that were not the next scripted one.
	wrong []string
}

var _ Runner = (*Fake)(nil)

// Run implements Runner.
func (f *Fake) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	argv := append([]string{name}, args...)
	f.Ran = append(f.Ran, argv)
	fakesRan.Store(name, true)
	if len(f.Script) == 0 {
		f.wrong = append(f.wrong, strings.Join(argv, " "))
		return nil, fmt.Errorf("fake runner: unexpected command %q", strings.Join(argv, " "))
	}
	next := f.Script[0]
	if strings.Join(next.Argv, "\x00") != strings.Join(argv, "\x00") {
		f.wrong = append(f.wrong, strings.Join(argv, " "))
		return nil, fmt.Errorf("fake runner: got %q, want %q", strings.Join(argv, " "), strings.Join(next.Argv, " "))
	}
	f.Script = f.Script[1:]
	return []byte(next.Stdout), next.Err
}

// Unexpected returns the commands run that the script did not expect there
// (each got an error, which the code under test may have swallowed).
func (f *Fake) Unexpected() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.wrong...)
}

// Left returns the expected commands that were never run.
func (f *Fake) Left() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.Script...)
}

// fakesRan holds the name of every command any Fake of this test binary was
// asked to run, scripted or not.
var fakesRan sync.Map

// FakesDeclared is for a package's TestMain, given m.Run()'s exit code: it
// returns 1, saying why on stderr, when the package's tests had a Fake run
// a command that none of the declared lists holds, so that the list the
// start-up check and the rootfs test rely on cannot miss a command the
// code runs. pkg names the lists in the message, e.g. "lvm.Tools".
func FakesDeclared(code int, pkg string, declared ...[]Tool) int {
	var ran []string
	fakesRan.Range(func(k, _ any) bool {
		ran = append(ran, k.(string))
		return true
	})
	missing := undeclared(ran, declared...)
	if len(missing) == 0 {
		return code
	}
	fmt.Fprintf(os.Stderr, "FAIL: the tests had the code run %s, which %s does not declare: add it there (with its Debian package)\n",
		strings.Join(missing, ", "), pkg)
	return 1
}

// undeclared returns, sorted, the names in ran that no declared list holds.
func undeclared(ran []string, declared ...[]Tool) []string {
	var out []string
	for _, name := range ran {
		if !slices.ContainsFunc(slices.Concat(declared...), func(t Tool) bool { return t.Name == name }) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
