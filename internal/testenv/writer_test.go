package testenv

import (
	"slices"
	"strings"
	"testing"
)

func TestCheckWriterLog(t *testing.T) {
	for _, tc := range []struct {
		name, log string
		order     []string
		sizes     []int
		err       string
	}{
		{name: "one writer", log: "a 1\na 2\n", order: []string{"a"}, sizes: []int{2}},
		{name: "handover", log: "a 1\na 2\nb 3\n", order: []string{"a", "b"}, sizes: []int{2, 1}},
		{name: "and back", log: "a 1\nb 2\na 3\na 4\n", order: []string{"a", "b", "a"}, sizes: []int{1, 1, 2}},
		{name: "line lost", log: "a 1\nb 3\n", order: []string{"a", "b"}, err: `log line 2 is "b 3"`},
		{name: "line doubled", log: "a 1\na 1\n", order: []string{"a"}, err: `log line 2 is "a 1"`},
		{name: "torn line", log: "a 1\na\n", order: []string{"a"}, err: `log line 2 is "a"`},
		{name: "two writers at once", log: "a 1\nb 2\na 3\n", order: []string{"a", "b"}, err: "writers in the log: [a b a], want [a b]"},
		{name: "wrong writer", log: "a 1\n", order: []string{"b"}, err: "writers in the log: [a], want [b]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sizes, err := CheckWriterLog(tc.log, tc.order)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(sizes, tc.sizes) {
				t.Fatalf("sizes %v err %v, want %v", sizes, err, tc.sizes)
			}
		})
	}
}

func TestLogFaults(t *testing.T) {
	for _, tc := range []struct {
		name, log        string
		lost, twoWriters int
	}{
		{"intact, with a handover", "a 1\na 2\nb 3\nb 4\n", 0, 0},
		{"two lines lost", "a 1\na 4\n", 2, 0},
		{"a torn line", "a 1\na\na 3\n", 1, 0},
		{"two writers at once", "a 1\na 2\nb 3\na 3\nb 4\na 4\n", 0, 2},
		{"a writer counting from an old length", "a 1\na 2\na 3\nb 2\n", 0, 1},
	} {
		if lost, two := LogFaults(tc.log); lost != tc.lost || two != tc.twoWriters {
			t.Errorf("%s: lost %d, two writers %d; want %d, %d", tc.name, lost, two, tc.lost, tc.twoWriters)
		}
	}
}
