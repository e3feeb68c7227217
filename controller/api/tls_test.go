package api

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/internal/testenv"
)

// With a certificate the API serves HTTPS only: a client that trusts the
// certificate (WithCA) gets answers, one that does not is refused by TLS,
// and plain HTTP gets nothing from it. The token is never logged, even at
// debug level.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	testenv.NewCert(t, dir, "api", nil, nil) // its own CA
	cert, key := filepath.Join(dir, "api.pem"), filepath.Join(dir, "api-key.pem")
	ln, err := ListenTLS("127.0.0.1:0", cert, key)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logs)
	log.SetLevel(logrus.DebugLevel)
	const token = "tls-s3cret-token"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = Serve(ctx, ln, Handler(&fakeService{}, Options{Token: token, Log: log})) }()
	base := "https://" + ln.Addr().String()

	c := NewClient(base, token)
	if err := c.WithCA(cert); err != nil {
		t.Fatal(err)
	}
	if s, err := c.Status(ctx); err != nil || s.Host != "a" {
		t.Fatalf("status over HTTPS with the CA: %+v %v", s, err)
	}
	if _, err := NewClient(base, token).Status(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client that does not trust the certificate: %v, want a certificate error", err)
	}
	resp, err := http.Get("http://" + ln.Addr().String() + "/v1/status")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("plain HTTP to the HTTPS API answered %s", resp.Status)
		}
	}
	if strings.Contains(logs.String(), token) {
		t.Fatalf("the token is in the API's log:\n%s", logs.String())
	}

	// Bad files say which and what to give.
	if _, err := ListenTLS("127.0.0.1:0", cert, filepath.Join(dir, "missing.pem")); err == nil || !strings.Contains(err.Error(), "--api-key") {
		t.Fatalf("a missing key: %v", err)
	}
	if err := NewClient(base, "").WithCA(key); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Fatalf("a CA file without a certificate: %v", err)
	}
}
