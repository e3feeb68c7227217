package spec

import (
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The fuzz tests of spec feed it what a user may type into `docker volume
// create NAME -o size=… -o fs=…`. `go test` runs their seeds (and any input
// a fuzz run found failing, kept under testdata/fuzz) as regular tests;
// scripts/test.sh fuzzes each briefly, RELOCVOL_FUZZTIME=5m longer.

// checkMessage: an error must name the input legibly (valid UTF-8 for a
// valid UTF-8 input, bounded in length whatever the input's) and say what
// to do.
func checkMessage(t *testing.T, in string, err error) {
	t.Helper()
	msg := err.Error()
	if utf8.ValidString(in) && !utf8.ValidString(msg) {
		t.Fatalf("the error for %q is not valid UTF-8: %q", in, msg)
	}
	// A printable input is quoted as typed: every quoted string of the
	// message is whole characters (cut short between two, never inside
	// one, which would show as byte escapes).
	if printable(in) {
		for rest := msg; ; {
			i := strings.IndexByte(rest, '"')
			if i < 0 {
				break
			}
			q, err := strconv.QuotedPrefix(rest[i:])
			if err != nil {
				break
			}
			if u, _ := strconv.Unquote(q); !utf8.ValidString(u) {
				t.Fatalf("the error for the printable %q quotes a string cut inside a character: %s in %q", in, q, msg)
			}
			rest = rest[i+len(q):]
		}
	}
	if len(msg) > 400 {
		t.Fatalf("the error for a %d-byte input is %d bytes long: %q", len(in), len(msg), msg)
	}
	for _, hint := range []string{"use ", "give ", "valid options are "} {
		if strings.Contains(msg, hint) {
			return
		}
	}
	t.Fatalf("the error for %q does not say what to do: %q", in, msg)
}

// printable reports whether every part is valid UTF-8 without control
// characters: text as a user types it.
func printable(parts ...string) bool {
	for _, p := range parts {
		if !utf8.ValidString(p) || strings.ContainsFunc(p, func(r rune) bool { return !unicode.IsPrint(r) }) {
			return false
		}
	}
	return true
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"512M", "10G", "1.5T", "10GiB", "8m", " 1g ", "0", "-1G", "1P", "64T", "64.0000001T", "1e3M", "0x10M", "9223372036854775807", "1.5", "M", "ü10G", strings.Repeat("9", 60) + "G"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			checkMessage(t, s, err)
			return
		}
		if n <= 0 || n > MaxSize || n%(1<<20) != 0 {
			t.Fatalf("ParseSize(%q) = %d: want a positive multiple of 1 MiB up to %d", s, n, int64(MaxSize))
		}
		// What relocvol prints back reads as the same size.
		if again, err := ParseSize(FormatSize(n)); err != nil || again != n {
			t.Fatalf("ParseSize(FormatSize(%d) = %q) = %d, %v", n, FormatSize(n), again, err)
		}
	})
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"db", "my-volume_1.0", "a", "", "-x", ".hidden", "x/../y", "ü-volume", strings.Repeat("x", 96), strings.Repeat("x", 97), "a\x00b", "é" + strings.Repeat("x", 50), strings.Repeat("x", 36) + "é" + strings.Repeat("x", 10)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateName(name)
		if err != nil {
			checkMessage(t, name, err)
			return
		}
		// An accepted name is safe as a file name, an LV name and a key.
		if len(name) < 2 || len(name) > MaxNameLen || strings.ContainsAny(name, "/\x00 ") || strings.HasPrefix(name, "-") || strings.HasPrefix(name, ".") {
			t.Fatalf("ValidateName accepted %q", name)
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add("size", "10G", "fs", "ext4")
	f.Add("size", "100M", "fs", "xfs")
	f.Add("fs", "ntfs", "", "")
	f.Add("sise", "10G", "", "")
	f.Add("size", "1M", "fs", "ext4")
	f.Add("size", "ü", "fß", "x")
	def := Defaults{Size: 1 << 30, FS: "ext4"}
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		opts := map[string]string{k1: v1}
		if k2 != "" {
			opts[k2] = v2
		}
		s, err := Parse("db", opts, def)
		if err != nil {
			if !strings.Contains(err.Error(), `volume "db"`) {
				t.Fatalf("Parse(%v): the error does not name the volume: %v", opts, err)
			}
			if printable(k1, v1, k2, v2) {
				checkMessage(t, k1+v1+k2+v2, err)
			}
			return
		}
		if min, ok := Filesystems[s.FS]; !ok || s.Size < min || s.Size > MaxSize {
			t.Fatalf("Parse(%v) accepted %+v", opts, s)
		}
		for k := range opts {
			if !s.Explicit[k] {
				t.Fatalf("Parse(%v): option %q not recorded as given", opts, k)
			}
		}
	})
}
