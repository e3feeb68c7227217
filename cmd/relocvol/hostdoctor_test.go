package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/config"
	"github.com/relocvol/relocvol/internal/doctor"
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
	tlsEPs, withCert := testenv.EtcdTLS(t)
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
		{name: "embedded", endpoints: tlsEPs, files: withCert, want: doctor.Pass, says: "the embedded etcd answers over TLS to its own client certificate only"},
		{name: "external with client certificates", endpoints: tlsEPs, external: true, files: withCert, want: doctor.Pass, says: "refuses clients without a certificate"},
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
