package main

import (
	"fmt"
	"testing"
)

// The embedded etcd's certificate names what clients dial: loopback, and
// the configured address unless it is a wildcard, dialled on loopback.
func TestEmbeddedEtcdNames(t *testing.T) {
	for _, tc := range []struct{ addr, names, dial string }{
		{"127.0.0.1:12379", "[127.0.0.1 ::1 localhost]", "https://127.0.0.1:12379"},
		{"localhost:12379", "[127.0.0.1 ::1 localhost]", "https://localhost:12379"},
		{"0.0.0.0:12379", "[127.0.0.1 ::1 localhost]", "https://127.0.0.1:12379"},
		{"[::]:12379", "[127.0.0.1 ::1 localhost]", "https://127.0.0.1:12379"},
		{"10.0.0.5:12379", "[127.0.0.1 ::1 localhost 10.0.0.5]", "https://10.0.0.5:12379"},
		{"etcd.local:12379", "[127.0.0.1 ::1 localhost etcd.local]", "https://etcd.local:12379"},
	} {
		if got := fmt.Sprint(serverNames(tc.addr)); got != tc.names {
			t.Errorf("serverNames(%s) = %s, want %s", tc.addr, got, tc.names)
		}
		if got := dialable("https://" + tc.addr); got != tc.dial {
			t.Errorf("dialable(https://%s) = %s, want %s", tc.addr, got, tc.dial)
		}
	}
}
