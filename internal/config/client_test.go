package config

import (
	"strings"
	"testing"
)

func TestClientComplete(t *testing.T) {
	for _, tc := range []struct {
		api, want, wantErr string
		ca                 string
	}{
		{api: "https://10.0.0.1:7480", ca: "/etc/relocvol/ca.pem", want: "https://10.0.0.1:7480"},
		{api: "http://10.0.0.1:7480", ca: "/etc/relocvol/ca.pem", wantErr: `--api-ca (RELOCVOL_API_CA) is set but --api "http://10.0.0.1:7480" is not https://`},
		{api: "", want: "http://127.0.0.1:7480"}, // RELOCVOL_API set to nothing
		{api: "http://10.0.0.1:7480", want: "http://10.0.0.1:7480"},
		{api: "https://relocvol.example.com", want: "https://relocvol.example.com"},
		{api: "10.0.0.1:7480", wantErr: `--api (RELOCVOL_API) "10.0.0.1:7480" is not a URL of an API: use one such as http://10.0.0.1:7480`},
		{api: "ftp://10.0.0.1", wantErr: `is not a URL of an API`},
		{api: "http://", wantErr: `is not a URL of an API`},
	} {
		c := Client{API: tc.api, CA: tc.ca}
		err := c.Complete()
		switch {
		case tc.wantErr == "" && (err != nil || c.API != tc.want):
			t.Errorf("Complete(%q) = %q, %v; want %q", tc.api, c.API, err, tc.want)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("Complete(%q): %v, want %q", tc.api, err, tc.wantErr)
		}
	}
}
