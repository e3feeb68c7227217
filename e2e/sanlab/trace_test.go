package sanlab

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// execLine is one command the plugin ran, from its log (execx logs each
// once done, with the operation it served).
type execLine struct {
	At     time.Time `json:"time"`
	Argv   []string  `json:"argv"`
	TookMS int64     `json:"took_ms"`
	Trace  string    `json:"trace"`
}

// dockerdMsg is the plugin's JSON log line inside dockerd's.
var dockerdMsg = regexp.MustCompile(`msg="((?:[^"\\]|\\.)*)"`)

// execTrace reads from vm's dockerd log the commands the plugin ran for the
// operations named (execx.WithTrace) since since (vm's clock).
func (d *dockerLab) execTrace(t *testing.T, vm string, since time.Time, traces ...string) []execLine {
	t.Helper()
	out := d.lab.MustRun(t, vm, `grep -a 'took_ms' /var/log/dockerd.log | grep -a 'trace' | tail -n 2000 >/tmp/exec-trace; wc -l </tmp/exec-trace`)
	t.Logf("%s: %s exec lines with a trace", vm, strings.TrimSpace(out))
	raw, err := d.quiet(vm, "cat /tmp/exec-trace")
	if err != nil {
		t.Fatal(err)
	}
	var lines []execLine
	for _, l := range strings.Split(raw, "\n") {
		m := dockerdMsg.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		js, err := strconv.Unquote(`"` + m[1] + `"`)
		if err != nil {
			continue
		}
		var e execLine
		if json.Unmarshal([]byte(js), &e) != nil || !slices.Contains(traces, e.Trace) || e.At.Before(since) {
			continue
		}
		lines = append(lines, e)
	}
	return lines
}

// commandKind names a command for counting: the tool, and for PR tools
// the service action.
func commandKind(argv []string) string {
	if len(argv) == 0 {
		return "?"
	}
	k := argv[0]
	for _, a := range argv[1:] {
		if strings.HasPrefix(a, "--") && a != "--in" && a != "--out" && !strings.Contains(a, "=") && a != "--config" {
			return k + " " + a
		}
	}
	if len(argv) > 1 && !strings.HasPrefix(argv[1], "-") {
		return k + " " + argv[1]
	}
	return k
}

// logCriticalPath logs the commands of each traced operation since since
// (vm's clock): the count by kind, their time, and the timeline, and
// returns the number of commands.
func logCriticalPath(t *testing.T, what string, lines []execLine) int {
	t.Helper()
	counts := map[string]int{}
	var took int64
	var b strings.Builder
	for _, e := range lines {
		counts[commandKind(e.Argv)]++
		took += e.TookMS
		fmt.Fprintf(&b, "  %s %-22s %5dms %s\n", e.At.Format("15:04:05.000"), e.Trace, e.TookMS, strings.Join(e.Argv, " "))
	}
	var kinds []string
	for k, n := range counts {
		kinds = append(kinds, fmt.Sprintf("%s ×%d", k, n))
	}
	sort.Strings(kinds)
	t.Logf("BENCHMARK critical path of %s: %d commands in series taking %.1f s (%s)\n%s", what, len(lines), float64(took)/1000, strings.Join(kinds, ", "), b.String())
	return len(lines)
}
