package store

import (
	"errors"
	"fmt"
	"testing"
)

func TestRetry(t *testing.T) {
	other := errors.New("disk on fire")
	for _, tc := range []struct {
		name    string
		errs    []error // what each attempt returns
		also    []error
		want    error
		wantRun int
	}{
		{"success at once", []error{nil}, nil, nil, 1},
		{"a lost race, then success", []error{ErrConflict, nil}, nil, nil, 2},
		{"a wrapped lost race counts", []error{fmt.Errorf("claim: %w", ErrConflict), nil}, nil, nil, 2},
		{"another error ends it", []error{other}, nil, other, 1},
		{"races lost every time: the last one", []error{ErrConflict, ErrConflict, ErrConflict}, nil, ErrConflict, 3},
		{"an error named retryable", []error{ErrHostAlive, nil}, []error{ErrHostAlive}, nil, 2},
		{"not named: it ends it", []error{ErrHostAlive}, nil, ErrHostAlive, 1},
		{"a lost race marked final ends it, unmarked", []error{Final(fmt.Errorf("fence: %w", ErrConflict))}, nil, ErrConflict, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runs := 0
			err := Retry(3, func(attempt int) error {
				if attempt != runs {
					t.Fatalf("attempt %d on run %d", attempt, runs)
				}
				runs++
				return tc.errs[attempt]
			}, tc.also...)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) || runs != tc.wantRun {
				t.Fatalf("Retry = %v after %d runs, want %v after %d", err, runs, tc.want, tc.wantRun)
			}
		})
	}
}
