package controller

import (
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/heartbeat"
	"github.com/relocvol/relocvol/internal/store"
)

// newHeartbeat is a host's heartbeat with no storage side, registered as a
// host with an agent (an engine).
func newHeartbeat(t testing.TB, st *store.Store, host string) *heartbeat.Heartbeat {
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	hb := heartbeat.New(st, host, 3*time.Second, t.TempDir(), "test", log)
	hb.Info = func(h *store.Host) { h.Agent = true }
	return hb
}
