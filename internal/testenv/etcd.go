package testenv

import (
	"context"
	"net"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/relocvol/relocvol/internal/etcdembed"
	"github.com/relocvol/relocvol/internal/pki"
	"github.com/relocvol/relocvol/internal/store"
)

// Etcd starts a real single-member etcd for t (embedded, in a temporary
// folder, on a free port) and returns its client endpoints. It stops when t
// ends; clients made by the test must be closed before (t.Cleanup runs in
// reverse order, so register their Close after calling Etcd).
func Etcd(t testing.TB) []string {
	t.Helper()
	return EtcdOn(t, "127.0.0.1:0")
}

// EtcdOn is Etcd serving clients on addr: host:port (port 0 picks a free
// one) or a bare host (a free port), e.g. "0.0.0.0" for an etcd that
// docker-in-docker nodes reach through their network's gateway. The
// endpoints name the address bound (http://0.0.0.0:PORT answers on the host
// too).
func EtcdOn(t testing.TB, addr string) []string {
	t.Helper()
	return startEtcd(t, addr, t.TempDir(), true)
}

// EtcdDurable is EtcdOn with etcd's fsyncs on, its data in dir: for tests
// of how hosts fare when etcd's disk is slow.
func EtcdDurable(t testing.TB, addr, dir string) []string {
	t.Helper()
	return startEtcd(t, addr, dir, false)
}

func startEtcd(t testing.TB, addr, dir string, noFsync bool) []string {
	t.Helper()
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "0")
	}
	srv, err := etcdembed.Start(dir, addr, etcdembed.Options{NoFsync: noFsync, LogLevel: "fatal"})
	if err != nil {
		t.Fatalf("start embedded etcd on %s: %v", addr, err)
	}
	t.Cleanup(srv.Close)
	return srv.Endpoints()
}

// EtcdTLS starts a real single-member etcd for t as production's should
// be: TLS only, to client certificates of its own CA (valid for 127.0.0.1
// and hosts). It returns its endpoints and the files a client dials it
// with.
func EtcdTLS(t testing.TB, hosts ...string) ([]string, store.TLSFiles) {
	t.Helper()
	files, _, err := pki.Ensure(t.TempDir(), append([]string{"127.0.0.1"}, hosts...), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := etcdembed.Start(t.TempDir(), "127.0.0.1:0", etcdembed.Options{NoFsync: true, LogLevel: "fatal", TLS: &files})
	if err != nil {
		t.Fatalf("start embedded etcd with TLS: %v", err)
	}
	t.Cleanup(srv.Close)
	return srv.Endpoints(), store.TLSFiles{CA: files.CA(), Cert: files.ClientCert(), Key: files.ClientKey()}
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

// Store is a store under prefix on a real etcd of t's own, and a context
// that ends with t.
func Store(t testing.TB, prefix string) (*store.Store, context.Context) {
	t.Helper()
	cli := EtcdClient(t, Etcd(t))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return store.New(cli, prefix), ctx
}
