package api

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
)

// ListenTLS is Listen serving HTTPS with the certificate and key files
// (PEM): beyond loopback the bearer token must not cross the network in the
// clear. A renewed certificate takes effect when the plugin restarts.
func ListenTLS(addr, certFile, keyFile string) (net.Listener, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("API: certificate %s with key %s: %w (set PEM files with --api-cert and --api-key)", certFile, keyFile, err)
	}
	ln, err := Listen(addr)
	if err != nil {
		return nil, err
	}
	return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}), nil
}

// WithCA makes c trust the certificate authorities in the PEM file caFile
// (besides the system's) for an https:// API, e.g. a self-signed
// certificate of the hosts.
func (c *Client) WithCA(caFile string) error {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("--api-ca (RELOCVOL_API_CA): %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("--api-ca (RELOCVOL_API_CA) %s holds no PEM certificate: give the CA that signed the API's certificate", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	hc := *c.HTTP
	hc.Transport = tr
	c.HTTP = &hc
	return nil
}
