package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// hostKeyText gives a host's key and the configuration that goes with it,
// and refuses a name the plugin would not run with. The keys are written
// out: a key that changed between versions would leave every host unable
// to fence the others' old registrations.
func TestHostKeyText(t *testing.T) {
	for _, tc := range []struct {
		host    string
		want    []string // in the text, in this order
		wantErr string
	}{
		{host: "hostA", want: []string{
			"host hostA: SCSI-3 reservation key 0x5256a901e3011c3d\n",
			"in /etc/multipath.conf",
			"    defaults {\n        reservation_key file\n    }\n",
			"then: multipathd reconfigure\n",
			"/etc/multipath/prkeys",
			"Only the defaults section",
			"restart it",
			"Storage array",
			"0x5256a901e3011c3d.",
			"all_tg_pt (mpathpersist --param-alltgpt)",
		}},
		{host: "node-1", want: []string{"host node-1: SCSI-3 reservation key 0x52567c1277223113\n", "this one,\n0x52567c1277223113."}},
		{host: "db01.example.com", want: []string{"host db01.example.com: SCSI-3 reservation key 0x5256"}},
		{host: "", wantErr: "empty: set a host name"},
		{host: "a", wantErr: `"a" is not a usable host name: use 2 to 96 letters`},
		{host: "a/b", wantErr: `"a/b" is not a usable host name`},
		{host: "a..b", wantErr: `without ".."`},
		{host: "node 1", wantErr: `"node 1" is not a usable host name`},
	} {
		t.Run(tc.host, func(t *testing.T) {
			got, err := hostKeyText(tc.host)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rest := got
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("text does not say %q (in order):\n%s", w, got)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

// relocvol host key runs without the API: HOST, else the plugin's own
// name for this host (RELOCVOL_HOST); --json gives the host and the key.
func TestHostKeyCommand(t *testing.T) {
	run := func(args ...string) (string, error) {
		root := rootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(args)
		err := root.Execute()
		return out.String(), err
	}
	t.Setenv("RELOCVOL_HOST", "node-1")
	out, err := run("host", "key")
	if err != nil || !strings.HasPrefix(out, "host node-1: SCSI-3 reservation key 0x52567c1277223113\n") {
		t.Fatalf("host key: %v\n%s", err, out)
	}
	out, err = run("host", "key", "hostA", "--json")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("RELOCVOL_HOST", "")
	if _, err := run("host", "key"); err == nil || !strings.Contains(err.Error(), "this host's name (RELOCVOL_HOST, else the hostname): empty") || !strings.Contains(err.Error(), "relocvol host key HOST") {
		t.Fatalf("empty RELOCVOL_HOST: %v", err)
	}
	var k hostKey
	if err := json.Unmarshal([]byte(out), &k); err != nil || k != (hostKey{Host: "hostA", Key: "0x5256a901e3011c3d"}) {
		t.Fatalf("--json: %+v, %v\n%s", k, err, out)
	}
}
