package testenv

import (
	"slices"
	"time"
)

// Median is the middle of d (the upper one of an even count), 0 for none:
// benchmarks report medians of their rounds.
func Median(d []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(d))
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
