package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzSeeds adds to f every file, in the package's testdata and in the VM
// lab's captures (e2e/vmlab/testdata, from the repository root), whose
// name matches one of patterns: the recorded outputs of the tools a parser
// reads. It fails when none matches, so that a renamed capture cannot leave
// a fuzz test without its seeds.
func FuzzSeeds(f *testing.F, patterns ...string) {
	f.Helper()
	dirs := []string{"testdata", filepath.Join(RepoRoot(f), "e2e", "vmlab", "testdata")}
	n := 0
	for _, dir := range dirs {
		for _, p := range patterns {
			files, _ := filepath.Glob(filepath.Join(dir, p))
			for _, file := range files {
				b, err := os.ReadFile(file)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(b)
				n++
			}
		}
	}
	if n == 0 {
		f.Fatalf("no recorded output in %v matches %v", dirs, patterns)
	}
}
