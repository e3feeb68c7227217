package store

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// AnswersWithoutCert tells whether the etcd member at endpoint (https://)
// answers a client that shows no certificate, as anyone who reaches it
// could: it asks GET /version with tlsCfg (the CA to verify the member,
// no certificate). A TLS alert from the member is a refusal (false); an
// answer of any status is true; anything else is an error.
func AnswersWithoutCert(ctx context.Context, endpoint string, tlsCfg *tls.Config) (bool, error) {
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	defer hc.CloseIdleConnections()
	url := strings.TrimSuffix(endpoint, "/") + "/version"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		if strings.Contains(err.Error(), "remote error: tls:") {
			return false, nil // the member refused the handshake: no certificate
		}
		return false, fmt.Errorf("GET %s without a client certificate: %w", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return true, nil
}
