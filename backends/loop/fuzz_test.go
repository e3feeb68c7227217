package loop

import (
	"testing"

	"github.com/relocvol/relocvol/internal/testenv"
)

// FuzzParseList feeds parseList what losetup --list --json may print,
// seeded with the recorded outputs (testdata/losetup-*). `go test` runs the
// seeds and any failing input kept under testdata/fuzz; scripts/test.sh
// fuzzes it briefly.
func FuzzParseList(f *testing.F) {
	testenv.FuzzSeeds(f, "losetup-*")
	f.Fuzz(func(t *testing.T, out []byte) {
		devs, err := parseList(out)
		if err != nil {
			return
		}
		for _, d := range devs {
			if d.Name == "" {
				t.Fatalf("a loop device without a name: %+v", d)
			}
		}
	})
}
