package spec

import "testing"

func TestGrowTo(t *testing.T) {
	for _, tc := range []struct {
		name, asked string
		cur, want   int64
		unchanged   bool
		wantErr     string
	}{
		{name: "larger", cur: 1 << 30, asked: "2G", want: 2 << 30},
		{name: "by one MiB", cur: 1 << 30, asked: "1025M", want: 1025 << 20},
		{name: "rounded up to a MiB", cur: 1 << 30, asked: "1048577K", want: 1025 << 20},
		{name: "same size", cur: 1 << 30, asked: "1G", want: 1 << 30, unchanged: true},
		{name: "same size other unit", cur: 1 << 30, asked: "1024MiB", want: 1 << 30, unchanged: true},
		{name: "a fraction that rounds to the same size", cur: 1 << 30, asked: "1073741000", want: 1 << 30, unchanged: true},
		{name: "smaller", cur: 2 << 30, asked: "1G", wantErr: `grow volume "db" to 1G: it is 2G already, and relocvol only grows volumes (a filesystem in use cannot shrink): give a size above 2G, or create a smaller volume`},
		{name: "garbage", cur: 1 << 30, asked: "12QB", wantErr: `grow volume "db": invalid size "12QB": use a positive number with K, M, G or T`},
		{name: "empty", cur: 1 << 30, asked: "", wantErr: `grow volume "db": invalid size ""`},
		{name: "zero", cur: 1 << 30, asked: "0", wantErr: "greater than zero"},
		{name: "negative", cur: 1 << 30, asked: "-1G", wantErr: `invalid size "-1G"`},
		{name: "beyond the limit", cur: 1 << 30, asked: "65T", wantErr: "larger than the 64T limit"},
		{name: "up to the limit", cur: 1 << 30, asked: "64T", want: MaxSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, unchanged, err := GrowTo("db", tc.cur, tc.asked)
			checkErr(t, err, tc.wantErr)
			if tc.wantErr == "" && (got != tc.want || unchanged != tc.unchanged) {
				t.Fatalf("GrowTo(%d, %q) = %d, unchanged %v; want %d, %v", tc.cur, tc.asked, got, unchanged, tc.want, tc.unchanged)
			}
		})
	}
}
