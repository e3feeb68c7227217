package doctor

import (
	"fmt"
	"strings"
)

// EtcdAccess is what a host knows of who may write its etcd.
type EtcdAccess struct {
	Endpoints []string
	// Embedded: the plugin's own etcd (TLS, its private client certificate).
	Embedded bool
	// ClientCert: this host presents a client certificate (RELOCVOL_ETCD_CERT).
	ClientCert bool
	// OpenToAnyone: over TLS, etcd answered a client that showed no
	// certificate (nil: not asked; false: refused it).
	OpenToAnyone *bool
	// ProbeErr: the probe without a certificate failed otherwise than by
	// a refusal it could tell (for the detail only).
	ProbeErr error
}

// etcdWriteIsRoot is why an open etcd matters.
const etcdWriteIsRoot = "anyone who can reach etcd can write it, and write access to etcd is root on every host: " +
	"the agents start containers from its app records (their bind mounts, user and network) and the API's token is kept there"

// etcdAccessFix says how to close an external etcd.
const etcdAccessFix = "serve etcd over TLS with client-certificate authentication (etcd --client-cert-auth --trusted-ca-file CA.pem " +
	"--cert-file --key-file, https:// client URLs) and give each host a client certificate: RELOCVOL_ETCD_ENDPOINTS=https://…, " +
	"RELOCVOL_ETCD_CA, RELOCVOL_ETCD_CERT and RELOCVOL_ETCD_KEY (files under the plugin's state mount, readable by root only); " +
	"and let only the hosts reach etcd's ports (docs/production.md)"

// Access judges who may write this host's etcd: the embedded one and an
// external one over TLS that refuses clients without a certificate pass;
// plain http://, https:// without a client certificate, or an etcd that
// answers one without a certificate, are a warning.
func Access(a EtcdAccess) Check {
	const name = "etcd access"
	var plain []string
	for _, ep := range a.Endpoints {
		if !strings.HasPrefix(ep, "https://") {
			plain = append(plain, ep)
		}
	}
	switch {
	case len(plain) > 0:
		return Warned(name, etcdAccessFix, "etcd is reached over plain HTTP (%s), with no client certificate: %s", strings.Join(plain, ", "), etcdWriteIsRoot)
	case a.OpenToAnyone != nil && *a.OpenToAnyone:
		return Warned(name, etcdAccessFix, "etcd at %s answered a client that showed no certificate (its --client-cert-auth is off): %s", strings.Join(a.Endpoints, ", "), etcdWriteIsRoot)
	case !a.Embedded && !a.ClientCert:
		return Warned(name, etcdAccessFix, "etcd is reached over TLS but this host shows no client certificate (RELOCVOL_ETCD_CERT empty), so etcd cannot tell the hosts from anyone else: %s", etcdWriteIsRoot)
	}
	detail := "etcd over TLS refuses clients without a certificate; this host shows its own"
	if a.Embedded {
		detail = "the embedded etcd answers over TLS to its own client certificate only (the state folder's etcd-pki, readable by root)"
	}
	if a.OpenToAnyone == nil && a.ProbeErr != nil {
		detail += fmt.Sprintf(" (not checked without a certificate: %v)", a.ProbeErr)
	}
	return Passed(name, "%s", detail)
}
