package plugin

import (
	"errors"
	"testing"
)

func TestCheckMark(t *testing.T) {
	for _, tc := range []struct {
		name, found, ours string
		write             bool
		err               error
	}{
		{name: "unmarked storage is marked", found: "", ours: "c1", write: true},
		{name: "our own mark", found: "c1", ours: "c1"},
		{name: "another cluster's mark is refused", found: "c2", ours: "c1", err: errOtherCluster},
	} {
		t.Run(tc.name, func(t *testing.T) {
			write, err := checkMark(tc.found, tc.ours)
			if write != tc.write || !errors.Is(err, tc.err) {
				t.Fatalf("checkMark(%q, %q) = %v, %v; want %v, %v", tc.found, tc.ours, write, err, tc.write, tc.err)
			}
		})
	}
}
