package store

import "errors"

// Retry runs try (with its attempt number, from 0) again while it loses a
// race: an error that is ErrConflict or one of also (e.g. ErrHostAlive
// when a takeover's victim came back). Every compare-and-swap of the store
// can lose one; the caller then re-reads and decides again, at most
// attempts times in all. It returns try's last error as it is, so that the
// caller can tell a race lost every time from anything else.
func Retry(attempts int, try func(attempt int) error, also ...error) error {
	var err error
	for i := 0; i < attempts; i++ {
		err = try(i)
		var f *final
		if errors.As(err, &f) {
			return f.err
		}
		if !lostRace(err, also) {
			return err
		}
	}
	return err
}

// Final marks an error that Retry returns at once, as it is, even one that
// wraps a lost race (a step that failed on a conflict of its own, which
// trying the whole again would not mend).
func Final(err error) error {
	if err == nil {
		return nil
	}
	return &final{err}
}

// final hides its error from errors.Is (no Unwrap), so that Retry sees no
// lost race in it.
type final struct{ err error }

func (f *final) Error() string { return f.err.Error() }

// lostRace reports whether err is a race Retry would try again.
func lostRace(err error, also []error) bool {
	if errors.Is(err, ErrConflict) {
		return true
	}
	for _, e := range also {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
