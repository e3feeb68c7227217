package scsi3

import (
	"fmt"
	"strings"
	"testing"

	"github.com/relocvol/relocvol/internal/testenv"
)

// The fuzz tests of the sg_persist/mpathpersist parsers are seeded with
// every recorded output: the handwritten and lab ones here and the VM lab's
// captures (e2e/vmlab/testdata). `go test` runs the seeds and any failing
// input kept under testdata/fuzz; scripts/test.sh fuzzes each briefly.

// checkError: an error about garbage of any size stays a readable line.
func checkError(t *testing.T, err error) {
	t.Helper()
	if len(err.Error()) > 500 {
		t.Fatalf("a %d-byte error: %.80q…", len(err.Error()), err.Error())
	}
}

func FuzzParseKeys(f *testing.F) {
	testenv.FuzzSeeds(f, "*read-keys*")
	f.Add([]byte("PR generation=0x1, 1 registered reservation key follows:\n    0x" + strings.Repeat("f", 17) + "\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		keys, err := ParseKeys(out)
		if err != nil {
			checkError(t, err)
			return
		}
		text := strings.ToLower(string(out))
		for _, k := range keys {
			// Every key returned is one the output lists.
			if !strings.Contains(text, fmt.Sprintf("%x", k)) {
				t.Fatalf("key %#x is not in the output %q", k, out)
			}
		}
	})
}

func FuzzParseReservation(f *testing.F) {
	testenv.FuzzSeeds(f, "*read-reservation*")
	f.Fuzz(func(t *testing.T, out []byte) {
		r, err := ParseReservation(out)
		if err != nil {
			checkError(t, err)
			return
		}
		if !r.Held && (r.Key != 0 || r.Type != "") {
			t.Fatalf("no reservation held, yet key %#x type %q", r.Key, r.Type)
		}
		if r.Held && !strings.Contains(strings.ToLower(string(out)), fmt.Sprintf("%x", r.Key)) {
			t.Fatalf("reservation key %#x is not in the output %q", r.Key, out)
		}
	})
}

func FuzzParseCapabilities(f *testing.F) {
	testenv.FuzzSeeds(f, "*capabilities*")
	f.Fuzz(func(t *testing.T, out []byte) {
		if _, err := ParseCapabilities(out); err != nil {
			checkError(t, err)
		}
	})
}
