package store

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TLSFiles are the optional client TLS files for an external etcd.
type TLSFiles struct{ CA, Cert, Key string }

// Config is the client TLS configuration of the files (nil: none).
func (files TLSFiles) Config() (*tls.Config, error) {
	if files.CA == "" && files.Cert == "" {
		return nil, nil
	}
	info := transport.TLSInfo{TrustedCAFile: files.CA, CertFile: files.Cert, KeyFile: files.Key}
	cfg, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd TLS files: %w", err)
	}
	return cfg, nil
}

// Dial connects to etcd and checks that it answers, so a wrong endpoint is
// reported at start-up rather than at the first Docker request.
func Dial(ctx context.Context, endpoints []string, files TLSFiles) (*clientv3.Client, error) {
	tlsCfg, err := files.Config()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		TLS:         tlsCfg,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", endpoints, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Get(cctx, "health-check-of-relocvol"); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcd at %v does not answer: %w (check --etcd-endpoints and the TLS files)", endpoints, err)
	}
	return cli, nil
}
