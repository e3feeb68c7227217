package testenv

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/relocvol/relocvol/internal/etcdembed"
)

// Etcd starts a real single-member etcd for t (embedded, in a temporary
// folder, on a free port) and returns its client endpoints. It stops when t
// ends; clients made by the test must be closed before (t.Cleanup runs in
// reverse order, so register their Close after calling Etcd).
func Etcd(t testing.TB) []string {
	t.Helper()
	srv, err := etcdembed.Start(t.TempDir(), "127.0.0.1:0", etcdembed.Options{NoFsync: true, LogLevel: "fatal"})
	if err != nil {
		t.Fatalf("start embedded etcd: %v", err)
	}
	t.Cleanup(srv.Close)
	return srv.Endpoints()
}

// EtcdClient returns a client of endpoints, closed when t ends.
func EtcdClient(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, "ping"); err != nil {
		t.Fatalf("etcd at %v does not answer: %v", endpoints, err)
	}
	return cli
}
