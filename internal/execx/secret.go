package execx

import (
	"context"
	"strings"
)

// secretsKey carries, in a context, strings a command's argv holds that
// must never reach a log or an error (a key in an LVM tag).
type secretsKey struct{}

// WithSecret returns ctx under which OS.Run writes "[secret]" for each of
// secrets wherever it would show it: the argv it logs, and the command
// line and stderr of its *ExecError.
func WithSecret(ctx context.Context, secrets ...string) context.Context {
	prev, _ := ctx.Value(secretsKey{}).([]string)
	return context.WithValue(ctx, secretsKey{}, append(append([]string(nil), prev...), secrets...))
}

// redact replaces, in s, every secret that ctx carries.
func redact(ctx context.Context, s string) string {
	secrets, _ := ctx.Value(secretsKey{}).([]string)
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[secret]")
		}
	}
	return s
}

// redactAll is redact of each string of argv, in a new slice.
func redactAll(ctx context.Context, argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = redact(ctx, a)
	}
	return out
}
