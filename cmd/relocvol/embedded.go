package main

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/internal/config"
	"github.com/relocvol/relocvol/internal/etcdembed"
	"github.com/relocvol/relocvol/internal/pki"
	"github.com/relocvol/relocvol/internal/store"
)

// startEmbeddedEtcd runs the embedded etcd in the state folder, reachable
// by root only: TLS on its client and peer ports, and only to the client
// certificate of its private authority, whose files (in
// <state>/etcd-pki, 0700) only root reads. Write access to etcd is root on
// every host (the agent starts containers from its records), and the
// plugin shares the host's network with every local user. It returns the
// server and the files its clients (this plugin, another relocvol on this
// host as RELOCVOL_ETCD_CA/CERT/KEY) dial it with.
func startEmbeddedEtcd(cfg config.Config, log logrus.FieldLogger) (*etcdembed.Server, store.TLSFiles, error) {
	pkiDir := filepath.Join(cfg.StateDir, "etcd-pki")
	files, made, err := pki.Ensure(pkiDir, serverNames(cfg.EmbeddedEtcd), time.Now())
	if err != nil {
		return nil, store.TLSFiles{}, fmt.Errorf("embedded etcd: %w", err)
	}
	for _, m := range made {
		log.WithField("dir", pkiDir).Info("embedded etcd: made " + m)
	}
	srv, err := etcdembed.Start(filepath.Join(cfg.StateDir, "etcd"), cfg.EmbeddedEtcd, etcdembed.Options{TLS: &files})
	if err != nil {
		return nil, store.TLSFiles{}, err
	}
	return srv, store.TLSFiles{CA: files.CA(), Cert: files.ClientCert(), Key: files.ClientKey()}, nil
}

// serverNames are the names the embedded etcd's certificate must be valid
// for: loopback, and the configured address unless it is a wildcard
// (clients then dial it on loopback: dialable).
func serverNames(addr string) []string {
	names := []string{"127.0.0.1", "::1", "localhost"}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || host == "" || slices.Contains(names, host) || ip != nil && ip.IsUnspecified() {
		return names
	}
	return append(names, host)
}

// dialable is an endpoint a client can verify the server at: a wildcard
// listen address (0.0.0.0, ::) is dialled on loopback.
func dialable(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return endpoint
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsUnspecified() {
		u.Host = net.JoinHostPort("127.0.0.1", u.Port())
	}
	return u.String()
}
