package execx

import (
	"fmt"
	"strings"
)

// Tool is one external command a package runs, and the Debian package that
// ships it. Each package that runs commands declares them all in an
// exported list (lvm.Tools, scsi3.Tools, fsutil.Tools, loop.Tools): the
// plugin checks them at start-up, the e2e tests check that the managed
// plugin's rootfs carries them, and each package's TestMain checks that its
// fake-runner tests ran nothing else (FakesDeclared).
type Tool struct {
	Name    string // as run, e.g. "lvcreate"
	Package string // e.g. "lvm2"
}

// CheckTools returns nil when lookPath (exec.LookPath, as the runner finds
// commands) finds every tool, else one error that names each missing one
// with its package and says how to get them. A tool listed twice counts
// once.
func CheckTools(lookPath func(string) (string, error), lists ...[]Tool) error {
	var missing []Tool
	seen := map[string]bool{}
	for _, list := range lists {
		for _, t := range list {
			if seen[t.Name] {
				continue
			}
			seen[t.Name] = true
			if _, err := lookPath(t.Name); err != nil {
				missing = append(missing, t)
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var names, pkgs []string
	inPkgs := map[string]bool{}
	for _, t := range missing {
		names = append(names, fmt.Sprintf("%s (package %s)", t.Name, t.Package))
		if !inPkgs[t.Package] {
			inPkgs[t.Package] = true
			pkgs = append(pkgs, t.Package)
		}
	}
	return fmt.Errorf("commands relocvol runs are not on PATH: %s. The managed plugin's image carries them: "+
		"rebuild it with scripts/build-plugin.sh if it lacks them; running the relocvol binary by hand, install them "+
		"with: apt-get install %s", strings.Join(names, ", "), strings.Join(pkgs, " "))
}
