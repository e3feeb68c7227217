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
