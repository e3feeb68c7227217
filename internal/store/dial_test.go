package store_test

import (
	"context"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

// TestDialTLS runs a real etcd that requires client certificates and
// checks that Dial connects with the right files and explains the wrong ones.
func TestDialTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := testenv.NewCert(t, dir, "ca", nil, nil)
	testenv.NewCert(t, dir, "server", ca, caKey)
	testenv.NewCert(t, dir, "client", ca, caKey)

	cfg := embed.NewConfig()
	cfg.Dir = filepath.Join(dir, "data")
	cfg.LogLevel = "fatal"
	cfg.UnsafeNoFsync = true
	cu, _ := url.Parse("https://127.0.0.1:0")
	pu, _ := url.Parse("http://127.0.0.1:0")
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ClientTLSInfo.CertFile = filepath.Join(dir, "server.pem")
	cfg.ClientTLSInfo.KeyFile = filepath.Join(dir, "server-key.pem")
	cfg.ClientTLSInfo.TrustedCAFile = filepath.Join(dir, "ca.pem")
	cfg.ClientTLSInfo.ClientCertAuth = true
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd not ready")
	}
	ep := []string{"https://" + e.Clients[0].Addr().String()}
	ctx := context.Background()

	files := store.TLSFiles{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "client.pem"), Key: filepath.Join(dir, "client-key.pem")}
	cli, err := store.Dial(ctx, ep, files)
	if err != nil {
		t.Fatalf("dial with the right files: %v", err)
	}
	if _, err := cli.Put(ctx, "/relocvol/x", "y"); err != nil {
		t.Fatalf("put over TLS: %v", err)
	}
	cli.Close()

	// No client certificate: the server refuses, and the error says where to look.
	if cli, err := store.Dial(ctx, ep, store.TLSFiles{CA: files.CA}); err == nil {
		cli.Close()
		t.Fatal("dial without a client certificate succeeded")
	} else if !strings.Contains(err.Error(), "does not answer") || !strings.Contains(err.Error(), "check --etcd-endpoints and the TLS files") {
		t.Fatalf("error %q", err)
	}
	if _, err := store.Dial(ctx, ep, store.TLSFiles{CA: files.CA, Cert: filepath.Join(dir, "missing.pem"), Key: files.Key}); err == nil || !strings.Contains(err.Error(), "etcd TLS files") {
		t.Fatalf("missing cert file: %v", err)
	}
}
