package testenv

import (
	"strings"
	"testing"
)

// LogWriter sends what a daemon or command writes to t.Logf, line by line,
// so its output shows with the test that ran it (and only on failure or -v).
type LogWriter struct {
	T      testing.TB
	Prefix string
}

func (w LogWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.T.Logf("%s%s", w.Prefix, line)
	}
	return len(p), nil
}
