package testenv

import (
	"crypto/ecdsa"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/pki"
)

// NewCert writes dir/NAME.pem and dir/NAME-key.pem, a certificate for
// 127.0.0.1 and the extra hosts (IP addresses or DNS names), for server
// and client use, valid for an hour, signed by parent, or a self-signed CA
// when parent is nil, and returns it with its key (to sign others).
func NewCert(t testing.TB, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, hosts ...string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	var ca *pki.Cert
	if parent != nil {
		ca = &pki.Cert{Cert: parent, Key: parentKey}
	}
	c, err := pki.Issue(name, ca, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), append([]string{"127.0.0.1"}, hosts...)...)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := c.PEM()
	if err != nil {
		t.Fatal(err)
	}
	for file, b := range map[string][]byte{name + ".pem": cert, name + "-key.pem": key} {
		if err := os.WriteFile(filepath.Join(dir, file), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c.Cert, c.Key
}
