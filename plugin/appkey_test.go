package plugin_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
	"github.com/relocvol/relocvol/plugin"
)

// The first host that joins makes the cluster's app key on the storage
// (the SAN folder: a 0600 file), every host that joins after reads the
// same, and the storage keeps it across joins; there is none before.
func TestJoinMakesTheAppKey(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	log := logrus.New()
	var logged bytes.Buffer
	log.SetOutput(io.MultiWriter(&logged, testenv.LogWriter{T: t}))
	log.SetLevel(logrus.DebugLevel)
	st := store.New(testenv.EtcdClient(t, c.endpoints), "/relocvol")
	cl, err := st.Cluster(ctx, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plugin.ReadAppKey(ctx, c.be); err == nil || !strings.Contains(err.Error(), "has no app key yet") {
		t.Fatalf("ReadAppKey before any host joined: %v", err)
	}
	var keys [][]byte
	for _, h := range []string{"node-a", "node-b", "node-a"} {
		drv := plugin.New(st, c.be, c.fs, fencing.None{Log: log}, alwaysAlive{}, plugin.Options{Host: h, MountRoot: t.TempDir(), Cluster: cl, Etcd: "etcd-1", Log: log})
		if err := drv.Join(ctx); err != nil {
			t.Fatal(err)
		}
		k, err := plugin.ReadAppKey(ctx, c.be)
		if err != nil || len(k) != plugin.AppKeyLen {
			t.Fatalf("ReadAppKey after %s joined: %x, %v", h, k, err)
		}
		keys = append(keys, k)
	}
	if !bytes.Equal(keys[0], keys[1]) || !bytes.Equal(keys[0], keys[2]) {
		t.Fatalf("the key changed between joins: %x", keys)
	}
	if m := testenv.Perm(t, filepath.Join(c.san, ".relocvol-app-key")); m != 0o600 {
		t.Fatalf("the key file has mode %o, want 600", m)
	}
	if strings.Contains(logged.String(), hex.EncodeToString(keys[0])) {
		t.Fatal("the app key is in the log")
	}
}
