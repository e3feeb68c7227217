package execx

import (
	"context"
	"fmt"
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
}

var _ Runner = (*Fake)(nil)

// Run implements Runner.
func (f *Fake) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	argv := append([]string{name}, args...)
	f.Ran = append(f.Ran, argv)
	if len(f.Script) == 0 {
		return nil, fmt.Errorf("fake runner: unexpected command %q", strings.Join(argv, " "))
	}
	next := f.Script[0]
	if strings.Join(next.Argv, "\x00") != strings.Join(argv, "\x00") {
		return nil, fmt.Errorf("fake runner: got %q, want %q", strings.Join(argv, " "), strings.Join(next.Argv, " "))
	}
	f.Script = f.Script[1:]
	return []byte(next.Stdout), next.Err
}

// Left returns the expected commands that were never run.
func (f *Fake) Left() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.Script...)
}
