package spec

import (
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name, in, wantErr string
	}{
		{name: "simple", in: "db"},
		{name: "dots dashes underscores", in: "app_1.data-2"},
		{name: "max length", in: strings.Repeat("a", MaxNameLen)},
		{name: "empty", in: "", wantErr: "volume name is empty"},
		{name: "one char", in: "a", wantErr: `invalid volume name "a"`},
		{name: "dot dot", in: "..", wantErr: `invalid volume name ".."`},
		{name: "traversal", in: "../etc", wantErr: `invalid volume name "../etc"`},
		{name: "slash", in: "a/b", wantErr: `invalid volume name "a/b"`},
		{name: "leading dash", in: "-db", wantErr: "starting with a letter or digit"},
		{name: "leading dot", in: ".db", wantErr: "starting with a letter or digit"},
		{name: "space", in: "my db", wantErr: "[a-zA-Z0-9_.-]"},
		{name: "unicode", in: "dé", wantErr: "invalid volume name"},
		{name: "too long", in: strings.Repeat("a", MaxNameLen+1), wantErr: "is 97 characters long: use at most 96"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateName(tc.in)
			checkErr(t, err, tc.wantErr)
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want one saying %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q does not say %q", err, want)
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     int64
		wantErr  string
	}{
		{name: "megabytes", in: "512M", want: 512 << 20},
		{name: "gigabytes", in: "10G", want: 10 << 30},
		{name: "lower case", in: "10g", want: 10 << 30},
		{name: "GiB", in: "10GiB", want: 10 << 30},
		{name: "GB", in: "10GB", want: 10 << 30},
		{name: "terabytes", in: "1T", want: 1 << 40},
		{name: "fraction", in: "1.5G", want: 1536 << 20},
		{name: "kilobytes round up to a MiB", in: "1500K", want: 2 << 20},
		{name: "bytes round up", in: "1", want: 1 << 20},
		{name: "spaces", in: " 64M ", want: 64 << 20},
		{name: "zero", in: "0", wantErr: "greater than zero"},
		{name: "zero with unit", in: "0G", wantErr: "greater than zero"},
		{name: "negative", in: "-1G", wantErr: `invalid size "-1G": use a positive number with K, M, G or T`},
		{name: "unknown unit", in: "12QB", wantErr: `invalid size "12QB": use a positive number with K, M, G or T`},
		{name: "empty", in: "", wantErr: `invalid size ""`},
		{name: "words", in: "big", wantErr: `invalid size "big"`},
		{name: "two dots", in: "1.5.5G", wantErr: `invalid size "1.5.5G"`},
		{name: "an exponent, as Docker's local driver reads it", in: "1e3G", want: 1000 << 30},
		{name: "a space before the unit, as the local driver allows", in: "64 M", want: 64 << 20},
		{name: "MB is binary, as for the local driver", in: "1MB", want: 1 << 20},
		{name: "petabytes are past the limit", in: "1P", wantErr: "larger than the 64T limit"},
		{name: "beyond int64", in: "1e30T", wantErr: "larger than the 64T limit"},
		{name: "a suffix too long", in: "10GiBs", wantErr: `invalid size "10GiBs"`},
		{name: "not a number", in: "NaN", wantErr: `invalid size "NaN"`},
		{name: "too large", in: "100T", wantErr: "larger than the 64T limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			checkErr(t, err, tc.wantErr)
			if tc.wantErr == "" && got != tc.want {
				t.Fatalf("ParseSize(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	def := Defaults{Size: 1 << 30, FS: "ext4"}
	for _, tc := range []struct {
		name     string
		opts     map[string]string
		wantSize int64
		wantFS   string
		wantErr  string
	}{
		{name: "defaults", opts: nil, wantSize: 1 << 30, wantFS: "ext4"},
		{name: "size and fs", opts: map[string]string{"size": "2G", "fs": "xfs"}, wantSize: 2 << 30, wantFS: "xfs"},
		{name: "unknown option", opts: map[string]string{"sise": "1G"}, wantErr: `volume "db": unknown option "sise": valid options are fs, size`},
		{name: "unknown fs", opts: map[string]string{"fs": "btrfs"}, wantErr: `unsupported fs "btrfs": use one of ext4, xfs`},
		{name: "empty fs", opts: map[string]string{"fs": ""}, wantErr: `unsupported fs ""`},
		{name: "bad size", opts: map[string]string{"size": "12QB"}, wantErr: `volume "db": invalid size "12QB"`},
		{name: "xfs too small", opts: map[string]string{"fs": "xfs", "size": "100M"}, wantErr: "size 100M is too small for xfs: use at least 300M"},
		{name: "ext4 too small", opts: map[string]string{"size": "4M"}, wantErr: "size 4M is too small for ext4: use at least 8M"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse("db", tc.opts, def)
			checkErr(t, err, tc.wantErr)
			if tc.wantErr == "" && (s.Size != tc.wantSize || s.FS != tc.wantFS) {
				t.Fatalf("got %s %s, want %d %s", FormatSize(s.Size), s.FS, tc.wantSize, tc.wantFS)
			}
		})
	}
}

func TestConflicts(t *testing.T) {
	existing := Spec{Size: 1 << 30, FS: "ext4"}
	for _, tc := range []struct {
		name  string
		grown bool
		asked Spec
		want  string
	}{
		{name: "defaults never conflict", asked: Spec{Size: 5 << 30, FS: "xfs", Explicit: map[string]bool{}}, want: ""},
		{name: "same explicit", asked: Spec{Size: 1 << 30, FS: "ext4", Explicit: map[string]bool{"size": true, "fs": true}}, want: ""},
		{name: "other size", asked: Spec{Size: 2 << 30, Explicit: map[string]bool{"size": true}}, want: "size=2G (it has 1G)"},
		{name: "other fs", asked: Spec{FS: "xfs", Explicit: map[string]bool{"fs": true}}, want: "fs=xfs (it has ext4)"},
		{name: "grown: its creation size", grown: true, asked: Spec{Size: 512 << 20, Explicit: map[string]bool{"size": true}}, want: ""},
		{name: "grown: larger still conflicts", grown: true, asked: Spec{Size: 2 << 30, Explicit: map[string]bool{"size": true}}, want: "size=2G (it has 1G)"},
		{name: "never grown: smaller conflicts", asked: Spec{Size: 512 << 20, Explicit: map[string]bool{"size": true}}, want: "size=512M (it has 1G)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			existing := existing
			existing.Grown = tc.grown
			if got := strings.Join(Conflicts(existing, tc.asked), "; "); got != tc.want {
				t.Fatalf("Conflicts = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	for in, want := range map[int64]string{1 << 40: "1T", 3 << 30: "3G", 1536 << 20: "1536M", 1 << 10: "1K", 1000: "1000"} {
		if got := FormatSize(in); got != want {
			t.Errorf("FormatSize(%d) = %s, want %s", in, got, want)
		}
	}
}
