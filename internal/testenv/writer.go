package testenv

import (
	"fmt"
	"strconv"
	"strings"
)

// WriterScript is the e2e tests' app (run with sh -c): it appends "NODE N"
// lines to /data/log, one per 50 ms, each fsync'd (sync FILE), numbering on
// from the lines already there. NODE is read from /node, a bind mount of the
// host's /etc/hostname recorded in the app's spec like any bind mount, so a
// copy started on another host tags its lines with that host's name. It
// runs in any image with a POSIX sh, wc and sync (Debian's, busybox).
const WriterScript = `trap 'exit 0' TERM; n=$(wc -l < /data/log 2>/dev/null || echo 0); me=$(cat /node)
while :; do n=$((n+1)); echo "$me $n" >> /data/log; sync /data/log; sleep 0.05; done`

// CheckWriterLog checks a whole log of WriterScript: every line intact and
// numbered one more than the previous (nothing lost, nothing doubled), and
// the writers' hosts in the given order, each in one block: after the first
// line of a writer, no line of an earlier one (never two writers at once).
// It returns the number of lines of each block, in order.
func CheckWriterLog(data string, order []string) ([]int, error) {
	var blocks []string
	var sizes []int
	for i, line := range strings.Split(strings.TrimSuffix(data, "\n"), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || f[1] != strconv.Itoa(i+1) {
			return nil, fmt.Errorf("log line %d is %q, want \"HOST %d\"", i+1, line, i+1)
		}
		if len(blocks) == 0 || blocks[len(blocks)-1] != f[0] {
			blocks = append(blocks, f[0])
			sizes = append(sizes, 0)
		}
		sizes[len(sizes)-1]++
	}
	if strings.Join(blocks, ",") != strings.Join(order, ",") {
		return nil, fmt.Errorf("writers in the log: %v, want %v (one block each: never two writers at once)", blocks, order)
	}
	return sizes, nil
}

// LogFaults counts what a log of WriterScript shows went wrong, for the
// reliability figures (CheckWriterLog says what and fails): lost are the
// numbers missing where a line's number jumps ahead (an acknowledged line
// gone); twoWriters the places where the numbering goes back or repeats:
// each writer counts on from the lines it found, so two hosts appending at
// once write the same numbers.
func LogFaults(data string) (lost, twoWriters int) {
	prev := 0
	for _, line := range strings.Split(strings.TrimSuffix(data, "\n"), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue // a torn line: the next whole one's number counts it lost
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		switch {
		case n > prev+1:
			lost += n - prev - 1
		case n <= prev:
			twoWriters++
		}
		prev = n
	}
	return lost, twoWriters
}
