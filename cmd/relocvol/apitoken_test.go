package main

import (
	"os"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/internal/config"
	"github.com/relocvol/relocvol/internal/testenv"
)

// The API's tokens: the cluster's from etcd (the same on every host) or
// --api-token as it is, and the read-only one, each mirrored into the
// state folder with mode 0600, rewritten only when it differs.
func TestAPITokens(t *testing.T) {
	st, ctx := testenv.Store(t, "/t")
	log := logrus.New()
	cfg := config.Defaults()
	cfg.StateDir = t.TempDir()
	file := func(p string) string {
		t.Helper()
		if m := testenv.Perm(t, p); m != 0o600 {
			t.Fatalf("%s has mode %o, want 600", p, m)
		}
		b, _ := os.ReadFile(p)
		return strings.TrimSpace(string(b))
	}
	full, read, err := apiTokens(ctx, st, cfg, log)
	if err != nil || len(full) != 64 || len(read) != 64 || full == read {
		t.Fatalf("tokens %q %q, %v", full, read, err)
	}
	if file(cfg.APITokenFile()) != full || file(cfg.APIReadTokenFile()) != read {
		t.Fatal("the files do not hold the tokens")
	}
	// Another host of the cluster serves the same ones.
	other := cfg
	other.StateDir = t.TempDir()
	if f2, r2, err := apiTokens(ctx, st, other, log); err != nil || f2 != full || r2 != read {
		t.Fatalf("another host's tokens %q %q, %v", f2, r2, err)
	}
	// An explicit token is used as it is, and replaces the file's.
	_ = os.Chmod(cfg.APITokenFile(), 0o644)
	cfg.APIToken = "explicit-token-of-the-operator"
	if f, r, err := apiTokens(ctx, st, cfg, log); err != nil || f != "explicit-token-of-the-operator" || r != read {
		t.Fatalf("with --api-token: %q %q, %v", f, r, err)
	}
	if file(cfg.APITokenFile()) != "explicit-token-of-the-operator" {
		t.Fatal("the file does not hold --api-token")
	}
}
