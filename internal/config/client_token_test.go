package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The plugin's token file is sent by itself only to this host's API
// socket, which only root can have made: a TCP port, even on loopback, is
// anyone's to listen on while the plugin is down, and whoever listens
// there would receive root's token. A token file given by the user goes
// wherever the user says.
func TestTokenFileGoesOnlyToTheSocket(t *testing.T) {
	file := filepath.Join(t.TempDir(), "api-token")
	if err := os.WriteFile(file, []byte("root-only-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, api string
		given     bool
		want      string
		wantErr   string
	}{
		{name: "this host's socket", api: "unix:///var/lib/relocvol/api.sock", want: "root-only-token"},
		{name: "a loopback port", api: "http://127.0.0.1:7480", wantErr: "sends the plugin's token file (" + file + ") by itself only to this host's root-only socket"},
		{name: "another host", api: "https://10.0.0.2:7480", wantErr: "give --token (RELOCVOL_API_TOKEN) or --token-file"},
		{name: "a file the user gave, to a port", api: "http://127.0.0.1:7480", given: true, want: "root-only-token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Client{API: tc.api, TokenFile: file, TokenFileGiven: tc.given}
			err := c.LoadToken()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || c.Token != "" {
					t.Fatalf("LoadToken: token %q, err %v; want none and %q", c.Token, err, tc.wantErr)
				}
				return
			}
			if err != nil || c.Token != tc.want {
				t.Fatalf("LoadToken: token %q, err %v; want %q", c.Token, err, tc.want)
			}
		})
	}
}
