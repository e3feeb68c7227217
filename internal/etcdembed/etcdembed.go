// Package etcdembed runs a single-member etcd inside the relocvol process,
// so that one host works with no etcd to install (development, the default
// of the managed plugin). Production clusters point at an external etcd.
//
// Write access to relocvol's etcd is root on every host (the agents start
// containers from its records), and the plugin uses the host's network:
// with Options.TLS, as the plugin runs it, etcd answers on its client and
// its peer port only over TLS and only to a client certificate its private
// CA signed, whose files only root reads (pki.Ensure). Without it (tests),
// anyone who reaches the ports can write.
package etcdembed

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"

	"github.com/relocvol/relocvol/internal/pki"
)

// Server is a running embedded etcd.
type Server struct {
	etcd   *embed.Etcd
	scheme string
}

// Options tune an embedded etcd.
type Options struct {
	// NoFsync trades durability for speed; for tests only.
	NoFsync bool
	// LogLevel of etcd's own logger ("error" keeps the plugin log readable).
	LogLevel string
	// TLS, when set, is the private authority etcd serves with: TLS only,
	// on both ports, to clients with a certificate it signed (ClientCertAuth).
	TLS *pki.Files
}

// Start runs etcd with its data in dir, serving clients on clientAddr
// (host:port; port 0 picks a free one). The peer port is the client port
// plus one, so a restart finds the member where it left it. A member
// whose recorded peer address is not the one it now serves (a data folder
// made before TLS, over http://) is updated to it.
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
	s := &Server{scheme: "http"}
	if o.TLS != nil {
		s.scheme = "https"
		info := transport.TLSInfo{
			CertFile: o.TLS.ServerCert(), KeyFile: o.TLS.ServerKey(), TrustedCAFile: o.TLS.CA(),
			ClientCertAuth: true,
		}
		cfg.ClientTLSInfo, cfg.PeerTLSInfo = info, info
	}
	cu := url.URL{Scheme: s.scheme, Host: net.JoinHostPort(host, port)}
	pu := url.URL{Scheme: s.scheme, Host: net.JoinHostPort(host, strconv.Itoa(peerPort))}
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
	s.etcd = e
	if err := s.updatePeerURLs(); err != nil {
		e.Close()
		return nil, err
	}
	return s, nil
}

// updatePeerURLs records the peer URLs the member serves now, where the
// cluster still records others: a member made by an older relocvol, over
// http://, keeps that URL in its data folder across restarts.
func (s *Server) updatePeerURLs() error {
	var now []string
	for _, a := range s.PeerAddrs() {
		now = append(now, s.scheme+"://"+a)
	}
	id := s.etcd.Server.MemberID()
	m := s.etcd.Server.Cluster().Member(id)
	if m == nil {
		return fmt.Errorf("embedded etcd: its own member %s is not in its cluster", id)
	}
	if want := slices.Sorted(slices.Values(now)); slices.Equal(slices.Sorted(slices.Values(m.PeerURLs)), want) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	urls, err := types.NewURLs(now)
	if err != nil {
		return err
	}
	if _, err := s.etcd.Server.UpdateMember(ctx, membership.Member{ID: id, RaftAttributes: membership.RaftAttributes{PeerURLs: urls.StringSlice()}}); err != nil {
		return fmt.Errorf("embedded etcd: record its peer URLs %v (were %v): %w", now, m.PeerURLs, err)
	}
	return nil
}

// Endpoints are the client URLs actually bound (with the real port).
func (s *Server) Endpoints() []string {
	var eps []string
	for _, l := range s.etcd.Clients {
		eps = append(eps, s.scheme+"://"+l.Addr().String())
	}
	return eps
}

// Close stops etcd. Close its clients first.
func (s *Server) Close() { s.etcd.Close() }

// PeerAddrs are the peer listeners' addresses (host:port).
func (s *Server) PeerAddrs() []string {
	var out []string
	for _, l := range s.etcd.Peers {
		out = append(out, l.Addr().String())
	}
	return out
}
