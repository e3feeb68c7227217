package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

// An etcd on this machine shares its clock: the offset is within the
// measurement's uncertainty of zero, and that uncertainty is small.
func TestServerClockOfALocalEtcd(t *testing.T) {
	endpoints := testenv.Etcd(t)
	off, unc, err := store.ServerClock(context.Background(), endpoints[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	if unc <= 0 || unc > 200*time.Millisecond {
		t.Fatalf("uncertainty %s: want a few tens of milliseconds", unc)
	}
	if off < -unc-5*time.Millisecond || off > unc+5*time.Millisecond {
		t.Fatalf("offset %s ± %s from an etcd on this very machine: want about zero", off, unc)
	}
	if _, _, err := store.ServerClock(context.Background(), "http://127.0.0.1:1", nil); err == nil {
		t.Fatal("no etcd there: no error")
	}
}

func TestLatency(t *testing.T) {
	st, _ := testenv.Store(t, "/relocvol")
	if _, err := st.Cluster(context.Background(), "h"); err != nil {
		t.Fatal(err)
	}
	d, err := st.Latency(context.Background(), 3)
	if err != nil || d <= 0 || d > time.Second {
		t.Fatalf("Latency = %s, %v", d, err)
	}
}
