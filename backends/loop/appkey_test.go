package loop

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/relocvol/relocvol/internal/execx"
)

// The app key is made once in the SAN folder, mode 0600, by whichever of
// the hosts joining at once gets there first; every host then reads that
// one; a damaged file is an error saying what to do.
func TestAppKey(t *testing.T) {
	dir := t.TempDir()
	l, err := New(dir, &execx.Fake{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if k, err := l.AppKey(ctx); err != nil || k != nil {
		t.Fatalf("AppKey of a new folder: %x, %v", k, err)
	}
	var wg sync.WaitGroup
	got := make([][]byte, 5)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := l.MakeAppKey(ctx, bytes.Repeat([]byte{byte(i + 1)}, 32))
			if err != nil {
				t.Error(err)
			}
			got[i] = k
		}()
	}
	wg.Wait()
	for _, k := range got[1:] {
		if !bytes.Equal(k, got[0]) {
			t.Fatalf("hosts joining at once got different keys: %x", got)
		}
	}
	if k, err := l.AppKey(ctx); err != nil || !bytes.Equal(k, got[0]) {
		t.Fatalf("AppKey after: %x, %v; want %x", k, err, got[0])
	}
	path := filepath.Join(dir, appKeyFile)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, mode %v; want 0600", path, err, fi.Mode())
	}
	if err := os.WriteFile(path, []byte("not hex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppKey(ctx); err == nil || !strings.Contains(err.Error(), "does not hold an app key") {
		t.Fatalf("AppKey of a damaged file: %v", err)
	}
}
