package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrUnavailable: etcd did not answer in time (or could not be reached).
var ErrUnavailable = errors.New("etcd unavailable")

// EtcdError is a failed etcd call: where etcd is, what was asked, and how
// long the caller waited; it says what to do when etcd did not answer.
type EtcdError struct {
	Endpoints []string
	What      string
	Timeout   time.Duration
	Err       error
}

func (e *EtcdError) Error() string {
	if e.unavailable() {
		return fmt.Sprintf("etcd at %s did not answer within %s (%s): check that etcd runs and that this host reaches it (network, RELOCVOL_ETCD_ENDPOINTS, TLS files)",
			strings.Join(e.Endpoints, ","), e.Timeout, e.What)
	}
	return fmt.Sprintf("etcd at %s: %s: %v", strings.Join(e.Endpoints, ","), e.What, e.Err)
}

func (e *EtcdError) Unwrap() error { return e.Err }

// Is makes an unanswered call an ErrUnavailable.
func (e *EtcdError) Is(target error) bool { return target == ErrUnavailable && e.unavailable() }

func (e *EtcdError) unavailable() bool {
	if errors.Is(e.Err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(e.Err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// etcdErr wraps a failed etcd call.
func (s *Store) etcdErr(what string, err error) error {
	return &EtcdError{Endpoints: s.cli.Endpoints(), What: what, Timeout: s.timeout, Err: err}
}
