// Package spec validates what a user asks of a volume (its name and the -o
// options of `docker volume create`) before anything is changed. It is pure:
// no etcd, no commands, so every rule is covered by table tests and every
// error names the thing that is wrong and says what to do.
package spec

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	units "github.com/docker/go-units"
)

// MaxNameLen bounds a volume name so that it fits a file name, an LVM LV name
// with a prefix, and an etcd key comfortably.
const MaxNameLen = 96

// namePattern is Docker's own rule for local volume names; plugins get names
// unvalidated, so relocvol applies it itself.
var namePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// ValidateName checks a volume name.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("volume name is empty: give a name of 2 to %d characters from [a-zA-Z0-9_.-]", MaxNameLen)
	case len(name) > MaxNameLen:
		return fmt.Errorf("volume name %q is %d characters long: use at most %d", Shorten(name), len(name), MaxNameLen)
	case !namePattern.MatchString(name):
		return fmt.Errorf("invalid volume name %q: use 2 to %d characters from [a-zA-Z0-9_.-], starting with a letter or digit", Shorten(name), MaxNameLen)
	}
	return nil
}

// Shorten keeps error messages readable when the input is huge, cutting
// between characters (a cut inside one would print as byte escapes).
func Shorten(s string) string {
	if len(s) <= 40 {
		return s
	}
	cut := 37
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// Filesystems relocvol can format, with the smallest size each accepts
// (mkfs.xfs in Debian 12 refuses filesystems under 300 MiB).
var Filesystems = map[string]int64{
	"ext4": 8 << 20,
	"xfs":  300 << 20,
}

// MaxSize is a sanity bound that catches typos such as 10P for 10G.
const MaxSize = 64 << 40

// Option names accepted by Create.
const (
	OptSize = "size"
	OptFS   = "fs"
)

var validOptions = []string{OptFS, OptSize}

// Spec is a validated volume request.
type Spec struct {
	Size int64  // bytes, a multiple of 1 MiB
	FS   string // one of Filesystems
	// Explicit records which options the user gave, so that an idempotent
	// Create on another host can tell "same request" from "defaults".
	Explicit map[string]bool
	// Grown: the volume was grown since it was created (GrowTo). A Create
	// asking for a smaller size is then the same request: Swarm repeats
	// the service's volume-opt size on every node it starts a task on.
	Grown bool
}

// Defaults are used for options the user did not give.
type Defaults struct {
	Size int64
	FS   string
}

// Parse validates Create's options for the named volume.
func Parse(name string, opts map[string]string, def Defaults) (Spec, error) {
	s := Spec{Size: def.Size, FS: def.FS, Explicit: map[string]bool{}}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys) // report the same first error every time
	for _, k := range keys {
		v := opts[k]
		switch k {
		case OptSize:
			n, err := ParseSize(v)
			if err != nil {
				return Spec{}, fmt.Errorf("volume %q: %w", name, err)
			}
			s.Size = n
		case OptFS:
			if _, ok := Filesystems[v]; !ok {
				return Spec{}, fmt.Errorf("volume %q: unsupported fs %q: use one of %s", name, Shorten(v), strings.Join(fsNames(), ", "))
			}
			s.FS = v
		default:
			return Spec{}, fmt.Errorf("volume %q: unknown option %q: valid options are %s", name, Shorten(k), strings.Join(validOptions, ", "))
		}
		s.Explicit[k] = true
	}
	if min := Filesystems[s.FS]; s.Size < min {
		return Spec{}, fmt.Errorf("volume %q: size %s is too small for %s: use at least %s", name, FormatSize(s.Size), s.FS, FormatSize(min))
	}
	return s, nil
}

func fsNames() []string {
	names := make([]string, 0, len(Filesystems))
	for n := range Filesystems {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ParseSize reads a size as Docker's own local driver reads its size
// option (go-units' RAMInBytes: binary units, case-insensitive, an optional
// B or iB: 512M, 10G, 1.5T, 10GiB), within relocvol's limits, and rounds it
// up to a whole MiB, the granularity every backend can honour.
func ParseSize(s string) (int64, error) {
	const hint = "use a positive number with K, M, G or T, e.g. 512M or 10G"
	b, err := units.RAMInBytes(strings.TrimSpace(s))
	switch {
	case err != nil:
		return 0, fmt.Errorf("invalid size %q: %s", Shorten(s), hint)
	case b == 0:
		return 0, fmt.Errorf("invalid size %q: the size must be greater than zero; %s", Shorten(s), hint)
	case b < 0 || b > MaxSize: // negative: beyond int64, which RAMInBytes wraps
		return 0, fmt.Errorf("invalid size %q: larger than the %s limit; %s", Shorten(s), FormatSize(MaxSize), hint)
	}
	const mib = 1 << 20
	return (b + mib - 1) / mib * mib, nil
}

// FormatSize prints bytes in the largest binary unit that divides them.
func FormatSize(n int64) string {
	for _, u := range []struct {
		s string
		v int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n >= u.v && n%u.v == 0 {
			return strconv.FormatInt(n/u.v, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}

// Conflicts reports how an existing volume's spec differs from what a new
// Create explicitly asked for; options left to defaults never conflict,
// because Swarm and other hosts repeat Create without them.
func Conflicts(existing, asked Spec) []string {
	var diffs []string
	if asked.Explicit[OptSize] && asked.Size != existing.Size && !(existing.Grown && asked.Size < existing.Size) {
		diffs = append(diffs, fmt.Sprintf("size=%s (it has %s)", FormatSize(asked.Size), FormatSize(existing.Size)))
	}
	if asked.Explicit[OptFS] && asked.FS != existing.FS {
		diffs = append(diffs, fmt.Sprintf("fs=%s (it has %s)", asked.FS, existing.FS))
	}
	return diffs
}
