package store

import (
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// FuzzDecodeRecords reads whatever may sit at relocvol's keys (a record
// of another version, another program's value) as each kind of record.
// Nothing panics, and an error names the key and what to check. `go test`
// runs the seeds and any failing input kept under testdata/fuzz;
// scripts/test.sh fuzzes it briefly.
func FuzzDecodeRecords(f *testing.F) {
	for _, v := range []any{
		Claim{Host: "a", Epoch: 3},
		Volume{Name: "db", Size: 1 << 30, FS: "ext4"},
		Host{Version: "dev", Agent: true},
		App{Name: "db", Host: "a"},
		Fence{By: "b"},
		Maintenance{Host: "a", By: "operator"},
		Event{Phase: "done", App: "db"},
	} {
		f.Add([]byte(mustJSON(v)))
	}
	for _, s := range []string{"", "null", "{}", "[]", `{"epoch": -1}`, `{"mounts": "m1"}`, `{"size": 1e400}`, "\xff", `{"host": "a"}{"host": "b"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		const key = "/relocvol/claims/db"
		kvs := []*mvccpb.KeyValue{{Key: []byte(key), Value: value, ModRevision: 7}}
		for name, decode := range map[string]func() error{
			"claim":       func() error { _, err := decodeAll[Claim](kvs); return err },
			"volume":      func() error { _, err := decodeAll[Volume](kvs); return err },
			"host":        func() error { _, err := decodeAll[Host](kvs); return err },
			"app":         func() error { _, err := decodeAll[App](kvs); return err },
			"fence":       func() error { _, err := decodeAll[Fence](kvs); return err },
			"maintenance": func() error { _, err := decodeAll[Maintenance](kvs); return err },
			"event":       func() error { _, err := decodeAll[Event](kvs); return err },
		} {
			if err := decode(); err != nil && (!strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "etcdctl get "+key)) {
				t.Fatalf("as a %s: %v: the error does not name the key and how to see it", name, err)
			}
		}
	})
}
