package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/config"
	"github.com/relocvol/relocvol/internal/doctor"
	"github.com/relocvol/relocvol/internal/etcdembed"
	"github.com/relocvol/relocvol/internal/pki"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

type alive bool

func (a alive) Alive() bool { return bool(a) }

// The doctor's etcd access check, measured on real etcds: one over plain
// HTTP is a warning (anyone who reaches it can write it, which is root on
// every host), the embedded one and an external one that asks for client
// certificates pass.
func TestDoctorEtcdAccess(t *testing.T) {
	files, _, err := pki.Ensure(t.TempDir(), []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tlsSrv, err := etcdembed.Start(t.TempDir(), "127.0.0.1:0", etcdembed.Options{NoFsync: true, LogLevel: "fatal", TLS: &files})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tlsSrv.Close)
	withCert := store.TLSFiles{CA: files.CA(), Cert: files.ClientCert(), Key: files.ClientKey()}
	plain := testenv.Etcd(t)
	for _, tc := range []struct {
		name      string
		endpoints []string
		external  bool
		files     store.TLSFiles
		want      doctor.Status
		says      string
	}{
		{name: "external over plain http", endpoints: plain, external: true, want: doctor.Warn, says: "anyone who can reach etcd can write it"},
		{name: "embedded", endpoints: tlsSrv.Endpoints(), files: withCert, want: doctor.Pass, says: "the embedded etcd answers over TLS to its own client certificate only"},
		{name: "external with client certificates", endpoints: tlsSrv.Endpoints(), external: true, files: withCert, want: doctor.Pass, says: "refuses clients without a certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Defaults()
			cfg.Host, cfg.DockerHost = "h1", ""
			if tc.external {
				cfg.EtcdEndpoints = tc.endpoints
			}
			cli, err := store.Dial(context.Background(), tc.endpoints, tc.files)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cli.Close() })
			hd := &hostDoctor{cfg: cfg, st: store.New(cli, "/t"), beat: alive(true), endpoints: tc.endpoints, etcdTLS: tc.files, etcdName: tc.endpoints[0],
				timings: func() (time.Duration, time.Duration, time.Duration) { return time.Second, 3 * time.Second, time.Second }}
			for _, c := range hd.Report(context.Background()).Checks {
				if c.Name == "etcd access" {
					if c.Status != tc.want || !strings.Contains(c.Detail, tc.says) {
						t.Fatalf("etcd access %+v, want %s saying %q", c, tc.want, tc.says)
					}
					return
				}
			}
			t.Fatal("no etcd access check")
		})
	}
}
