package store

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The probe tells an etcd that answers anyone from one that asks for a
// client certificate.
func TestAnswersWithoutCert(t *testing.T) {
	for _, tc := range []struct {
		name string
		auth tls.ClientAuthType
		want bool
	}{
		{name: "no client authentication", auth: tls.NoClientCert, want: true},
		{name: "client certificates required", auth: tls.RequireAndVerifyClientCert, want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"etcdserver":"3.7.3"}`)) }))
			srv.TLS = &tls.Config{ClientAuth: tc.auth}
			srv.StartTLS()
			defer srv.Close()
			caOnly := srv.Client().Transport.(*http.Transport).TLSClientConfig
			got, err := AnswersWithoutCert(context.Background(), srv.URL, caOnly)
			if err != nil || got != tc.want {
				t.Fatalf("AnswersWithoutCert = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := AnswersWithoutCert(context.Background(), "https://127.0.0.1:1", nil); err == nil {
		t.Fatal("no error from an endpoint that does not answer")
	}
}
