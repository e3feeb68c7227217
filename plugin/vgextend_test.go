package plugin

import (
	"slices"
	"strings"
	"testing"

	"github.com/relocvol/relocvol/internal/store"
)

func TestExtendVerdict(t *testing.T) {
	ok := store.VGAck{}
	for _, tc := range []struct {
		name        string
		alive       []string
		acks        map[string]store.VGAck
		wantWaiting []string
		wantErr     string
	}{
		{"nobody answered", []string{"b", "a"}, nil, []string{"a", "b"}, ""},
		{"one answered", []string{"a", "b"}, map[string]store.VGAck{"a": ok}, []string{"b"}, ""},
		{"all answered", []string{"a", "b"}, map[string]store.VGAck{"a": ok, "b": ok}, nil, ""},
		// A host that died after it answered is not waited for; one that
		// died before is not either (its join registers on every PV).
		{"a dead host is not waited for", []string{"a"}, map[string]store.VGAck{"a": ok}, nil, ""},
		{"a host that joined meanwhile is", []string{"a", "c"}, map[string]store.VGAck{"a": ok}, []string{"c"}, ""},
		{"one refused", []string{"a", "b"}, map[string]store.VGAck{"a": ok, "b": {Host: "b", Error: "this host does not see the PV(s) u-z"}}, nil, "host b: this host does not see the PV(s) u-z"},
		{"a refusal counts from a host no longer alive", []string{"a"}, map[string]store.VGAck{"a": ok, "b": {Host: "b", Error: "cannot register"}}, nil, "host b: cannot register"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			waiting, err := extendVerdict(tc.alive, tc.acks)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "nothing was added") {
					t.Fatalf("err = %v, want one saying %q and that nothing was added", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(waiting, tc.wantWaiting) {
				t.Fatalf("extendVerdict = %v, %v; want %v", waiting, err, tc.wantWaiting)
			}
		})
	}
}
