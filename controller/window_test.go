package controller

import (
	"context"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/store"
)

// raceStore lands an operator's window right after MaintainOnStop read
// the host's maintenance (an operator's `relocvol maintenance on` at the
// moment the plugin stops).
type raceStore struct {
	*store.Store
	done bool
}

func (r *raceStore) GetMaintenance(ctx context.Context, host string) (store.Maintenance, int64, error) {
	m, rev, err := r.Store.GetMaintenance(ctx, host)
	if !r.done {
		r.done = true
		if _, err := r.Store.SetMaintenance(ctx, host, time.Hour, "operator", "kernel update"); err != nil {
			panic(err)
		}
	}
	return m, rev, err
}

// An operator's longer window that lands between the plugin stop's read
// and its write is kept: the write lands only onto the window read. (It
// compared only its own later read, and the plugin's shorter window, which
// the rejoin then ended, replaced the operator's.)
func TestPluginStopKeepsAnOperatorWindowSetMeanwhile(t *testing.T) {
	st, ctx, c := stoppingHost(t)
	c.st = &raceStore{Store: st}
	c.MaintainOnStop(ctx, 10*time.Minute)
	m, _, err := st.GetMaintenance(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if m.By != "operator" || time.Until(m.Until) < 50*time.Minute {
		t.Fatalf("the operator's hour, announced as the plugin stopped, was replaced by %+v (ends in %s)", m, time.Until(m.Until).Round(time.Second))
	}
}
