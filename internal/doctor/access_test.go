package doctor

import (
	"errors"
	"testing"
)

func TestAccess(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name string
		a    EtcdAccess
		want Status
		says string
	}{
		{name: "embedded", a: EtcdAccess{Endpoints: []string{"https://127.0.0.1:12379"}, Embedded: true, ClientCert: true, OpenToAnyone: &no}, want: Pass, says: "embedded etcd answers over TLS to its own client certificate only"},
		{name: "external with client certificates", a: EtcdAccess{Endpoints: []string{"https://e1:2379", "https://e2:2379"}, ClientCert: true, OpenToAnyone: &no}, want: Pass, says: "refuses clients without a certificate"},
		{name: "plain http", a: EtcdAccess{Endpoints: []string{"http://e1:2379", "https://e2:2379"}}, want: Warn, says: "plain HTTP (http://e1:2379), with no client certificate: anyone who can reach etcd can write it, and write access to etcd is root on every host"},
		{name: "https without a client certificate", a: EtcdAccess{Endpoints: []string{"https://e1:2379"}, OpenToAnyone: &yes}, want: Warn, says: "answered a client that showed no certificate"},
		{name: "https, no certificate configured, not probed", a: EtcdAccess{Endpoints: []string{"https://e1:2379"}}, want: Warn, says: "shows no client certificate (RELOCVOL_ETCD_CERT empty)"},
		{name: "client certificate but etcd does not ask for it", a: EtcdAccess{Endpoints: []string{"https://e1:2379"}, ClientCert: true, OpenToAnyone: &yes}, want: Warn, says: "--client-cert-auth is off"},
		{name: "probe failed otherwise", a: EtcdAccess{Endpoints: []string{"https://e1:2379"}, ClientCert: true, ProbeErr: errors.New("timeout")}, want: Pass, says: "not checked without a certificate: timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check(t, Access(tc.a), tc.want, tc.says)
		})
	}
}
