package testenv

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// Tally counts one fault scenario's cycles for RELIABILITY.md: a test makes
// one, marks each cycle it starts and each it saw through (with its
// recovery time), and adds what its log checks found. When the test ends,
// passed or not, the tally is logged as one line "RELIABILITY | scenario |
// cycles | passed | lines lost | two-writer moments | worst recovery |",
// a row of RELIABILITY.md's table, which scripts/reliability.sh collects.
type Tally struct {
	mu sync.Mutex
	r  Reliability
}

// Reliability is one scenario's figures.
type Reliability struct {
	Scenario   string
	Cycles     int
	Passed     int
	LinesLost  int
	TwoWriters int
	WorstS     float64 // the longest recovery of a passed cycle, seconds
}

// Row is r as a row of RELIABILITY.md's table.
func (r Reliability) Row() string {
	return fmt.Sprintf("| %s | %d | %d | %d | %d | %.1f s |", r.Scenario, r.Cycles, r.Passed, r.LinesLost, r.TwoWriters, r.WorstS)
}

// NewTally starts the tally of scenario; t logs it when it ends.
func NewTally(t testing.TB, scenario string) *Tally {
	tl := &Tally{r: Reliability{Scenario: scenario}}
	t.Cleanup(func() {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		t.Logf("RELIABILITY %s", tl.r.Row())
	})
	return tl
}

// Start counts a cycle begun.
func (tl *Tally) Start() {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.r.Cycles++
}

// Pass counts a cycle seen through, recovered in took.
func (tl *Tally) Pass(took time.Duration) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.r.Passed++
	tl.r.WorstS = max(tl.r.WorstS, took.Seconds())
}

// Log records what LogFaults finds in the scenario's writer log as it
// stands (the whole log: a later call replaces an earlier one).
func (tl *Tally) Log(data string) {
	lost, two := LogFaults(data)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.r.LinesLost, tl.r.TwoWriters = lost, two
}
