//go:build failpoints

package failpoint

import (
	"fmt"
	"os"
	"strings"
	"sync"
)

// Enabled reports whether this build can trigger failpoints.
const Enabled = true

var (
	mu   sync.Mutex
	file string
)

// Arm makes Hit read its failpoint from Path(stateDir).
func Arm(stateDir string) {
	mu.Lock()
	defer mu.Unlock()
	file = Path(stateDir)
}

// Hit kills the process with SIGKILL if the armed failpoint is name,
// disarming it first.
func Hit(name string) {
	mu.Lock()
	defer mu.Unlock()
	if file == "" {
		return
	}
	b, err := os.ReadFile(file)
	if err != nil || strings.TrimSpace(string(b)) != name {
		return
	}
	_ = os.Remove(file)
	fmt.Fprintf(os.Stderr, "failpoint %s: killing the plugin\n", name)
	// The managed plugin is PID 1 of its own PID namespace, which the
	// kernel protects from its own SIGKILL: exit at once instead, which,
	// like SIGKILL, runs no deferred function and leaves everything as it
	// is (mounts, loop devices, etcd records, Docker's request unanswered).
	os.Exit(137)
}
