package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/relocvol/relocvol/internal/store"
)

// The kinds of error a Service returns. A Service says what went wrong in
// these terms only; the server alone maps them to HTTP statuses (statusOf),
// and the client maps a status back to its kind, so that errors.Is works
// on both sides of the wire.
var (
	ErrNotFound     = errors.New("not found")           // no such app, host or volume
	ErrInvalid      = errors.New("invalid request")     // the request cannot be met as asked
	ErrConflict     = errors.New("conflict")            // the cluster's state forbids it now
	ErrUnsupported  = errors.New("not supported here")  // this host cannot do it (no agent, …)
	ErrUnavailable  = errors.New("service unavailable") // etcd or the host is not ready
	ErrMethod       = errors.New("method not allowed")
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden") // the read-only token on a change
	ErrInternal     = errors.New("internal error")
)

// statuses is the one mapping of kinds to HTTP statuses.
var statuses = map[error]int{
	ErrNotFound:     http.StatusNotFound,
	ErrInvalid:      http.StatusBadRequest,
	ErrConflict:     http.StatusConflict,
	ErrUnsupported:  http.StatusNotImplemented,
	ErrUnavailable:  http.StatusServiceUnavailable,
	ErrMethod:       http.StatusMethodNotAllowed,
	ErrUnauthorized: http.StatusUnauthorized,
	ErrForbidden:    http.StatusForbidden,
	ErrInternal:     http.StatusInternalServerError,
}

// Error is an error of a kind with its message: what a Service returns
// (Errorf), and what the client returns for an error answer.
type Error struct {
	Kind error
	Code int // the HTTP status: the kind's, or the one received
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Is makes errors.Is(err, ErrNotFound) (and each kind) work.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Errorf returns an *Error of kind (one of the Err kinds of this package).
func Errorf(kind error, format string, a ...any) error {
	return &Error{Kind: kind, Code: statuses[kind], Msg: fmt.Sprintf(format, a...)}
}

// received is the client's *Error for an error answer of status code.
func received(code int, msg string) *Error {
	kind := ErrInternal
	for k, c := range statuses {
		if c == code {
			kind = k
		}
	}
	return &Error{Kind: kind, Code: code, Msg: msg}
}

// statusOf maps an error to its HTTP status: its kind's, or the store's
// errors that reach the server unwrapped.
func statusOf(err error) int {
	var e *Error
	switch {
	case errors.As(err, &e) && e.Code != 0:
		return e.Code
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}
