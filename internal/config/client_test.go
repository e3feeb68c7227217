package config

import (
	"strings"
	"testing"
)

func TestClientComplete(t *testing.T) {
	for _, tc := range []struct {
		api, want, wantErr string
	}{
		{"", "http://127.0.0.1:7480", ""}, // RELOCVOL_API set to nothing
		{"http://10.0.0.1:7480", "http://10.0.0.1:7480", ""},
		{"https://relocvol.example.com", "https://relocvol.example.com", ""},
		{"10.0.0.1:7480", "", `--api (RELOCVOL_API) "10.0.0.1:7480" is not a URL of an API: use one such as http://10.0.0.1:7480`},
		{"ftp://10.0.0.1", "", `is not a URL of an API`},
		{"http://", "", `is not a URL of an API`},
	} {
		c := Client{API: tc.api}
		err := c.Complete()
		switch {
		case tc.wantErr == "" && (err != nil || c.API != tc.want):
			t.Errorf("Complete(%q) = %q, %v; want %q", tc.api, c.API, err, tc.want)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("Complete(%q): %v, want %q", tc.api, err, tc.wantErr)
		}
	}
}
