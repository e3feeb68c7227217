// Package execx runs every external command relocvol needs (losetup, mkfs,
// mount, lvm and sg_persist) through one Runner, so that the argv is
// logged in one place, the locale is fixed for parseable output, a prefix such
// as nsenter can be added from inside the plugin, and tests can swap in a
// scripted fake that asserts the exact argv. It also checks, at start-up,
// that the commands the packages declare (Tool) are on PATH.
package execx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// Runner runs one external command and returns its standard output.
// A command that fails returns an *ExecError.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// ExecError is a command that could not start or exited non-zero. Stderr is
// kept whole because it is usually the only explanation the operator gets.
type ExecError struct {
	Cmd      []string
	ExitCode int // -1 when the command did not start or was killed
	Stderr   string
	Err      error
}

func (e *ExecError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("%s: %s (exit %d)", strings.Join(e.Cmd, " "), msg, e.ExitCode)
}

func (e *ExecError) Unwrap() error { return e.Err }

// ExitCode returns the exit code of err's *ExecError, or -1.
func ExitCode(err error) int {
	var ee *ExecError
	if errors.As(err, &ee) {
		return ee.ExitCode
	}
	return -1
}

type traceKey struct{}

// WithTrace names, in ctx, the operation the commands run with ctx serve
// (e.g. "mount db"): their log lines carry it as trace, so that the
// commands on a takeover's critical path can be counted from the plugin's
// log (BENCHMARKS.md).
func WithTrace(ctx context.Context, op string) context.Context {
	return context.WithValue(ctx, traceKey{}, op)
}

// Trace is the operation WithTrace named in ctx ("": none).
func Trace(ctx context.Context) string {
	op, _ := ctx.Value(traceKey{}).(string)
	return op
}

// slowCommand is how long a command runs before it is logged as still
// running: the line it logs when done would come only when it ends, and
// one that hangs (SG_IO on a blocked path, LVM on a map queueing I/O)
// would leave none.
var slowCommand = 5 * time.Second

// OS runs commands on this machine.
type OS struct {
	// Prefix is prepended to every argv, e.g. {"nsenter", "-t", "1", "-m", "--"}.
	Prefix []string
	Log    logrus.FieldLogger
}

var _ Runner = (*OS)(nil)

// Run implements Runner.
func (r *OS) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	argv := append(append(append([]string{}, r.Prefix...), name), args...)
	log := r.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	slow := time.AfterFunc(slowCommand, func() {
		fields := logrus.Fields{"argv": redactAll(ctx, argv), "after": slowCommand.String()}
		if op := Trace(ctx); op != "" {
			fields["trace"] = op
		}
		log.WithFields(fields).Warn("command still running")
	})
	err := cmd.Run()
	slow.Stop()
	// Logged once done, with its time and the operation it serves (Trace):
	// the commands of a takeover are counted from this line.
	fields := logrus.Fields{"argv": redactAll(ctx, argv), "took_ms": time.Since(start).Milliseconds()}
	if op := Trace(ctx); op != "" {
		fields["trace"] = op
	}
	log.WithFields(fields).Debug("exec")
	if err != nil {
		code := -1
		var xe *exec.ExitError
		if errors.As(err, &xe) {
			code = xe.ExitCode()
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		return stdout.Bytes(), &ExecError{Cmd: redactAll(ctx, argv), ExitCode: code, Stderr: redact(ctx, stderr.String()), Err: err}
	}
	return stdout.Bytes(), nil
}
