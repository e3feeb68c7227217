package secret_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relocvol/relocvol/internal/secret"
	"github.com/relocvol/relocvol/internal/testenv"
)

// Secrets are written whole with mode 0600, in folders of mode 0700; a
// loosened mode is tightened again when read; Mirror writes only what
// differs.
func TestFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "private")
	if err := secret.Dir(dir); err != nil {
		t.Fatal(err)
	}
	if m := testenv.Perm(t, dir); m != 0o700 {
		t.Fatalf("folder mode %o", m)
	}
	p := filepath.Join(dir, "token")
	changed, err := secret.Mirror(p, []byte("one"))
	if err != nil || !changed {
		t.Fatalf("first Mirror: %v %v", changed, err)
	}
	if m := testenv.Perm(t, p); m != 0o600 {
		t.Fatalf("file mode %o", m)
	}
	if changed, err := secret.Mirror(p, []byte("one")); err != nil || changed {
		t.Fatalf("Mirror of the same content: changed %v, %v", changed, err)
	}
	_ = os.Chmod(p, 0o644)
	if b, err := secret.Read(p); err != nil || string(b) != "one" || testenv.Perm(t, p) != 0o600 {
		t.Fatalf("Read of a loosened file: %q %v, mode %o", b, err, testenv.Perm(t, p))
	}
	if changed, err := secret.Mirror(p, []byte("two")); err != nil || !changed {
		t.Fatalf("Mirror of new content: %v %v", changed, err)
	}
	if b, _ := os.ReadFile(p); string(b) != "two" {
		t.Fatalf("content %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".token.*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	_ = os.Chmod(dir, 0o755)
	if err := secret.Dir(dir); err != nil || testenv.Perm(t, dir) != 0o700 {
		t.Fatalf("Dir of a loosened folder: %v, mode %o", err, testenv.Perm(t, dir))
	}
}

// What another user owns is refused, not trusted: they could replace it.
func TestAnotherUsersFilesAreRefused(t *testing.T) {
	testenv.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "private")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := secret.Dir(dir); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("Dir of a folder of uid 65534: %v", err)
	}
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte("planted"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := secret.Read(p); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("Read of a file of uid 65534: %v", err)
	}
	if changed, err := secret.Mirror(p, []byte("ours")); err != nil || !changed {
		t.Fatalf("Mirror over a file of uid 65534: %v %v", changed, err)
	}
	if b, err := secret.Read(p); err != nil || string(b) != "ours" {
		t.Fatalf("after Mirror: %q %v", b, err)
	}
}
