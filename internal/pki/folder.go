package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/relocvol/relocvol/internal/secret"
)

// What Ensure makes lives this long, and is made again at start-up once it
// has less than RenewBefore left. The files never leave the host: their
// modes, not their expiry, are what keeps them to root.
const (
	Validity    = 10 * 365 * 24 * time.Hour
	RenewBefore = 30 * 24 * time.Hour
)

// Files are the PEM files of the private authority Ensure keeps in Dir: its
// CA, the server's certificate and the client's.
type Files struct{ Dir string }

func (f Files) path(name string) string { return filepath.Join(f.Dir, name) }

// CA is the authority's certificate (what clients verify the server with).
func (f Files) CA() string { return f.path("ca.pem") }

// CAKey is the authority's key.
func (f Files) CAKey() string { return f.path("ca-key.pem") }

// ServerCert and ServerKey are the server's (also the member's own client
// certificate towards its peer listener).
func (f Files) ServerCert() string { return f.path("server.pem") }

// ServerKey is ServerCert's key.
func (f Files) ServerKey() string { return f.path("server-key.pem") }

// ClientCert and ClientKey are what a client presents.
func (f Files) ClientCert() string { return f.path("client.pem") }

// ClientKey is ClientCert's key.
func (f Files) ClientKey() string { return f.path("client-key.pem") }

// Ensure makes, or reuses, the authority in dir (mode 0700, every file
// 0600): a CA, a certificate for a server at hosts (IP addresses or DNS
// names) and one for its clients. What is missing, unreadable, not signed
// by the CA, not valid for every host or within RenewBefore of its end is
// made again (with a new CA, everything is); made says what and why.
func Ensure(dir string, hosts []string, now time.Time) (f Files, made []string, err error) {
	f = Files{Dir: dir}
	if err := secret.Dir(dir); err != nil {
		return f, nil, fmt.Errorf("the folder of the embedded etcd's certificates: %w", err)
	}
	ca, loadErr := load(f.CA(), f.CAKey())
	why := renewal(ca, loadErr, nil, nil, now)
	if why != "" {
		if ca, err = Issue("relocvol embedded etcd CA", nil, now.Add(-time.Hour), now.Add(Validity)); err != nil {
			return f, nil, err
		}
		if err := store(ca, f.CA(), f.CAKey()); err != nil {
			return f, nil, err
		}
		made = append(made, "CA "+f.CA()+": "+why)
	}
	for _, leaf := range []struct {
		name, cert, key string
		hosts           []string
	}{
		{"relocvol embedded etcd server", f.ServerCert(), f.ServerKey(), hosts},
		{"relocvol embedded etcd client", f.ClientCert(), f.ClientKey(), nil},
	} {
		c, loadErr := load(leaf.cert, leaf.key)
		lwhy := renewal(c, loadErr, ca.Cert, leaf.hosts, now)
		if why != "" {
			lwhy = "the CA is new"
		}
		if lwhy == "" {
			continue
		}
		if c, err = Issue(leaf.name, ca, now.Add(-time.Hour), now.Add(Validity), leaf.hosts...); err != nil {
			return f, nil, err
		}
		if err := store(c, leaf.cert, leaf.key); err != nil {
			return f, nil, err
		}
		made = append(made, "certificate "+leaf.cert+": "+lwhy)
	}
	return f, made, nil
}

// renewal says why c (loaded with loadErr) must be made again: signed by
// ca (nil: c is the CA), valid for hosts, at least RenewBefore from its
// end at now; "" when it is good.
func renewal(c *Cert, loadErr error, ca *x509.Certificate, hosts []string, now time.Time) string {
	switch {
	case errors.Is(loadErr, fs.ErrNotExist):
		return "missing"
	case loadErr != nil:
		return fmt.Sprintf("unreadable (%v)", loadErr)
	case ca == nil && !c.Cert.IsCA:
		return "not a CA"
	case ca != nil && c.Cert.CheckSignatureFrom(ca) != nil:
		return "not signed by the CA"
	case now.Before(c.Cert.NotBefore):
		return fmt.Sprintf("not valid before %s", c.Cert.NotBefore.Format(time.RFC3339))
	case c.Cert.NotAfter.Sub(now) < RenewBefore:
		return fmt.Sprintf("expires %s", c.Cert.NotAfter.Format(time.RFC3339))
	}
	for _, h := range hosts {
		if c.Cert.VerifyHostname(h) != nil {
			return "not valid for " + h
		}
	}
	return ""
}

// load reads a certificate and its key from their files (secret.Read:
// files another user owns are refused).
func load(certFile, keyFile string) (*Cert, error) {
	cb, err := secret.Read(certFile)
	if err != nil {
		return nil, err
	}
	kb, err := secret.Read(keyFile)
	if err != nil {
		return nil, err
	}
	return Parse(cb, kb)
}

// store writes c and its key, mode 0600.
func store(c *Cert, certFile, keyFile string) error {
	cb, kb, err := c.PEM()
	if err != nil {
		return err
	}
	if err := secret.Write(keyFile, kb); err != nil {
		return err
	}
	return secret.Write(certFile, cb)
}
