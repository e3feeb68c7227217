package pki_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/pki"
	"github.com/relocvol/relocvol/internal/testenv"
)

// Ensure makes a private folder of 0600 files whose certificates work for
// a TLS server and its client, reuses them, and makes again what is
// missing, unreadable or expiring (everything with a new CA).
func TestEnsure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd-pki")
	hosts := []string{"127.0.0.1", "localhost"}
	f, made, err := pki.Ensure(dir, hosts, time.Now())
	if err != nil || len(made) != 3 {
		t.Fatalf("first Ensure: made %v, %v", made, err)
	}
	if m := testenv.Perm(t, dir); m != 0o700 {
		t.Errorf("folder mode %o, want 700", m)
	}
	for _, p := range []string{f.CA(), f.CAKey(), f.ServerCert(), f.ServerKey(), f.ClientCert(), f.ClientKey()} {
		if m := testenv.Perm(t, p); m != 0o600 {
			t.Errorf("%s mode %o, want 600", p, m)
		}
	}
	handshake(t, f)

	// Reused as it is.
	before, _ := os.ReadFile(f.ServerCert())
	if _, made, err := pki.Ensure(dir, hosts, time.Now()); err != nil || len(made) != 0 {
		t.Fatalf("second Ensure: made %v, %v", made, err)
	}
	if after, _ := os.ReadFile(f.ServerCert()); string(after) != string(before) {
		t.Fatal("a good server certificate was made again")
	}

	// Loosened modes are made private again.
	_ = os.Chmod(dir, 0o755)
	_ = os.Chmod(f.ClientKey(), 0o644)
	if _, made, err := pki.Ensure(dir, hosts, time.Now()); err != nil || len(made) != 0 {
		t.Fatalf("Ensure after chmod: made %v, %v", made, err)
	}
	if testenv.Perm(t, dir) != 0o700 || testenv.Perm(t, f.ClientKey()) != 0o600 {
		t.Errorf("modes not restored: folder %o, client key %o", testenv.Perm(t, dir), testenv.Perm(t, f.ClientKey()))
	}

	// A missing key and an unreadable certificate: those are made again.
	_ = os.Remove(f.ClientKey())
	_ = os.WriteFile(f.ServerCert(), []byte("garbage"), 0o600)
	_, made, err = pki.Ensure(dir, hosts, time.Now())
	if err != nil || len(made) != 2 || !strings.Contains(made[0], "unreadable") || !strings.Contains(made[1], "missing") {
		t.Fatalf("Ensure after damage: made %v, %v", made, err)
	}
	handshake(t, f)

	// A new address: the server's certificate is made again.
	if _, made, err = pki.Ensure(dir, append(hosts, "10.0.0.5"), time.Now()); err != nil || len(made) != 1 || !strings.Contains(made[0], "not valid for 10.0.0.5") {
		t.Fatalf("Ensure with a new address: made %v, %v", made, err)
	}

	// Within 30 days of the CA's end: everything is new.
	_, made, err = pki.Ensure(dir, hosts, time.Now().Add(pki.Validity-29*24*time.Hour))
	if err != nil || len(made) != 3 || !strings.Contains(made[0], "expires") || !strings.Contains(made[1], "the CA is new") {
		t.Fatalf("Ensure near the CA's end: made %v, %v", made, err)
	}
}

// handshake checks that the server certificate serves TLS on 127.0.0.1
// to a client with the client certificate, verified both ways.
func handshake(t *testing.T, f pki.Files) {
	t.Helper()
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(f.CA())
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("the CA file holds no certificate")
	}
	srvCert, err := tls.LoadX509KeyPair(f.ServerCert(), f.ServerKey())
	if err != nil {
		t.Fatal(err)
	}
	cliCert, err := tls.LoadX509KeyPair(f.ClientCert(), f.ClientKey())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cliCert}})
	if err != nil {
		t.Fatalf("TLS with the made certificates: %v", err)
	}
	_ = c.Close()
}
