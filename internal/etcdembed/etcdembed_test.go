package etcdembed_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/relocvol/relocvol/internal/etcdembed"
	"github.com/relocvol/relocvol/internal/pki"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

func start(t *testing.T, dir, addr string, o etcdembed.Options) *etcdembed.Server {
	t.Helper()
	o.NoFsync, o.LogLevel = true, "fatal"
	srv, err := etcdembed.Start(dir, addr, o)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func ensure(t *testing.T) *pki.Files {
	t.Helper()
	f, _, err := pki.Ensure(t.TempDir(), []string{"127.0.0.1", "localhost"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &f
}

func clientFiles(f *pki.Files) store.TLSFiles {
	return store.TLSFiles{CA: f.CA(), Cert: f.ClientCert(), Key: f.ClientKey()}
}

// put writes a key at endpoints with tlsCfg (nil: plain HTTP), giving up
// after a few seconds as a client that is refused does.
func put(endpoints []string, tlsCfg *tls.Config) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: tlsCfg, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer func() { _ = cli.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = cli.Put(ctx, "/relocvol/apps/x", "forged")
	return err
}

// With TLS, etcd answers on its client and its peer port only to a
// certificate of its CA: plain HTTP and TLS without a client certificate
// are refused on both; the client certificate works.
func TestClientsNeedTheCertificate(t *testing.T) {
	f := ensure(t)
	srv := start(t, t.TempDir(), "127.0.0.1:0", etcdembed.Options{TLS: f})
	defer srv.Close()
	eps := srv.Endpoints()
	if !strings.HasPrefix(eps[0], "https://") {
		t.Fatalf("endpoints %v, want https://", eps)
	}
	cfg, err := clientFiles(f).Config()
	if err != nil {
		t.Fatal(err)
	}
	if err := put(eps, cfg); err != nil {
		t.Fatalf("a write with the client certificate: %v", err)
	}
	addr := strings.TrimPrefix(eps[0], "https://")
	if err := put([]string{"http://" + addr}, nil); err == nil {
		t.Error("a write over plain HTTP worked")
	}
	noCert := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // a local user's client
	if err := put(eps, noCert); err == nil {
		t.Error("a write over TLS without a client certificate worked")
	}
	// The peer port: raft messages (a snapshot, say) only from a member
	// with a certificate.
	peer := srv.PeerAddrs()[0]
	c, err := tls.Dial("tcp", peer, noCert)
	if err == nil {
		// TLS 1.3 reports a refused client certificate at the first read.
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		_, err = fmt.Fprintf(c, "GET /members HTTP/1.1\r\nHost: x\r\n\r\n")
		if err == nil {
			_, err = c.Read(make([]byte, 1))
		}
		_ = c.Close()
	}
	if err == nil {
		t.Errorf("the peer port %s answered TLS without a client certificate", peer)
	}
	if resp, err := (&http.Client{Timeout: 3 * time.Second}).Get("http://" + peer + "/members"); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("the peer port answered plain HTTP: %s", resp.Status)
		}
	}
}

// A data folder made before TLS (member URLs over http://) keeps its data
// and works over TLS, its member's peer URL updated.
func TestUpgradeFromPlainHTTP(t *testing.T) {
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePorts(t, 2))
	old := start(t, dir, addr, etcdembed.Options{})
	if err := put(old.Endpoints(), nil); err != nil {
		t.Fatal(err)
	}
	old.Close()

	f := ensure(t)
	srv := start(t, dir, addr, etcdembed.Options{TLS: f})
	defer srv.Close()
	cli, err := store.Dial(context.Background(), srv.Endpoints(), clientFiles(f))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cli.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/relocvol/apps/x")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "forged" {
		t.Fatalf("the data written before TLS: %v %v", resp, err)
	}
	members, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	var p int
	fmt.Sscan(port, &p)
	want := fmt.Sprintf("https://%s:%d", host, p+1)
	if len(members.Members) != 1 || fmt.Sprint(members.Members[0].PeerURLs) != "["+want+"]" || fmt.Sprint(members.Members[0].ClientURLs) != "[https://"+addr+"]" {
		t.Fatalf("members after the upgrade: %v, want peer %s", members.Members, want)
	}
	if err := put([]string{"http://" + addr}, nil); err == nil {
		t.Error("a write over plain HTTP worked after the upgrade")
	}
}
