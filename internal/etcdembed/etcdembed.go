// Package etcdembed runs a single-member etcd inside the relocvol process,
// so that one host works with no etcd to install (development, the default
// of the managed plugin). Production clusters point at an external etcd.
package etcdembed

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Server is a running embedded etcd.
type Server struct {
	etcd *embed.Etcd
}

// Options tune an embedded etcd.
type Options struct {
	// NoFsync trades durability for speed; for tests only.
	NoFsync bool
	// LogLevel of etcd's own logger ("error" keeps the plugin log readable).
	LogLevel string
}

// Start runs etcd with its data in dir, serving clients on clientAddr
// (host:port; port 0 picks a free one). The peer port is the client port
// plus one, so a restart finds the member where it left it.
func Start(dir, clientAddr string, o Options) (*Server, error) {
	host, port, err := net.SplitHostPort(clientAddr)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd address %q: %w", clientAddr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd port %q: %w", port, err)
	}
	peerPort := 0
	if p != 0 {
		peerPort = p + 1
	}
	cfg := embed.NewConfig()
	cfg.Name = "relocvol"
	cfg.Dir = dir
	cu := url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}
	pu := url.URL{Scheme: "http", Host: net.JoinHostPort(host, strconv.Itoa(peerPort))}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.UnsafeNoFsync = o.NoFsync
	cfg.LogLevel = o.LogLevel
	if cfg.LogLevel == "" {
		cfg.LogLevel = "error"
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s: %w", dir, err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s: not ready after 60s", dir)
	}
	return &Server{etcd: e}, nil
}

// Endpoints are the client URLs actually bound (with the real port).
func (s *Server) Endpoints() []string {
	var eps []string
	for _, l := range s.etcd.Clients {
		eps = append(eps, "http://"+l.Addr().String())
	}
	return eps
}

// Close stops etcd. Close its clients first.
func (s *Server) Close() { s.etcd.Close() }
