package controller

import (
	"context"
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

// testAppKey is the app key of the agents' tests' cluster.
var testAppKey = []byte("relocvol-agents-tests-app-key-32")

func testKeySource(context.Context) ([]byte, error) { return testAppKey, nil }

// signed is app as an agent of the test cluster records it: with its MAC.
func signed(t testing.TB, app store.App) store.App {
	t.Helper()
	if err := signApp(testAppKey, &app); err != nil {
		t.Fatal(err)
	}
	return app
}
