package plugin

import (
	"errors"
	"fmt"
	"strings"

	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
)

// Kinds of failure the plugin reports; Docker sees only the message, tests
// and callers branch on the kind with errors.Is.
var (
	ErrInvalid  = errors.New("invalid request")
	ErrNotFound = errors.New("volume not found")
	ErrInUse    = errors.New("volume in use")
	ErrBusy     = errors.New("volume busy")
	ErrNotAlive = errors.New("host not alive")
	ErrConflict = errors.New("volume exists with other options")
	ErrFence    = errors.New("fencing failed")
	// ErrStarting: the host's plugin has not finished starting (Starting).
	ErrStarting = errors.New("plugin still starting")
)

// Error is a failure whose message is written for the operator: it names the
// volume (and the host where it matters) and says what to do.
type Error struct {
	Kind error
	Msg  string
	Err  error // cause, if any
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns both the kind and the cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

func newErr(kind error, format string, a ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, a...)}
}

func wrapErr(kind, cause error, format string, a ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, a...) + ": " + cause.Error(), Err: cause}
}

// dockerError is the one place where errors become the Err string Docker
// shows: operator-facing errors pass as they are; an etcd that does not
// answer is said so, with what to check; anything unexpected gets the
// operation, the volume and the host named and a pointer to the plugin log.
func dockerError(op, name, host string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var ee *store.EtcdError
	if errors.Is(err, store.ErrUnavailable) && errors.As(err, &ee) {
		return fmt.Errorf("relocvol: cannot %s volume %q on host %s: %s", op, spec.Shorten(name), host, ee.Error())
	}
	msg := strings.TrimSpace(err.Error())
	return fmt.Errorf("relocvol: cannot %s volume %q on host %s: %s (the plugin log has details: docker plugin inspect relocvol, dockerd's log)", op, spec.Shorten(name), host, msg)
}
