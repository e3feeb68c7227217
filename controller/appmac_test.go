package controller

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/store"
)

// A record signed by an agent verifies as etcd hands it back, whatever the
// leader or the user's start and stop change in it; a change to anything
// the agent recorded, a missing MAC or another cluster's key does not.
func TestAppMAC(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	otherKey := []byte("fedcba9876543210fedcba9876543210")
	timeout := 10
	base := func() store.App {
		return store.App{Name: "pg", Host: "a", Volumes: []string{"db"}, Allowed: []string{"a", "b"}, Spec: store.AppSpec{
			Image: "postgres:16", Cmd: []string{"postgres"}, Env: []string{"PGDATA=/data"}, User: "999",
			Labels: map[string]string{LabelRelocate: "true", "z": "1", "a": "2"}, StopTimeout: &timeout,
			Mounts: []store.AppMount{{Type: "volume", Source: "db", Target: "/data", Driver: "relocvol"}},
			Ports:  []store.AppPort{{Port: "5432/tcp", HostPort: "5432"}},
		}}
	}
	// roundTrip is the record as a reader of etcd decodes it.
	roundTrip := func(a store.App) store.App {
		b, _ := json.Marshal(a)
		var out store.App
		_ = json.Unmarshal(b, &out)
		return out
	}
	for _, tc := range []struct {
		name   string
		before func(*store.App) // before signing
		after  func(*store.App) // after signing, before the check
		key    []byte
		want   error
	}{
		{name: "as recorded"},
		{name: "placed elsewhere by the leader", after: func(a *store.App) {
			a.Host, a.Relocation = "b", &store.Relocation{ID: "pg-1", Kind: store.KindFailover, From: "a", To: "b", Started: time.Now()}
		}},
		{name: "stopped by its user", after: func(a *store.App) { a.Stopped, a.UpdatedAt = true, time.Now() }},
		{name: "empty lists read back as none", before: func(a *store.App) { a.Allowed, a.Spec.Entrypoint = []string{}, []string{} }},
		{name: "invalid UTF-8 read back replaced", before: func(a *store.App) { a.Spec.Env = append(a.Spec.Env, "X=\xff\xfe") }},
		{name: "no MAC", after: func(a *store.App) { a.MAC = "" }, want: errUnsigned},
		{name: "a MAC that is not hex", after: func(a *store.App) { a.MAC = "not hex" }, want: errBadMAC},
		{name: "a MAC of another record", after: func(a *store.App) { o := base(); o.Name = "web"; _ = signApp(key, &o); a.MAC = o.MAC }, want: errBadMAC},
		{name: "another cluster's key", key: otherKey, want: errBadMAC},
		{name: "no key", key: []byte{}, want: errNoKey},
		{name: "renamed", after: func(a *store.App) { a.Name = "pg2" }, want: errBadMAC},
		{name: "a volume added", after: func(a *store.App) { a.Volumes = append(a.Volumes, "other") }, want: errBadMAC},
		{name: "allowed on another host", after: func(a *store.App) { a.Allowed = []string{"a", "b", "evil"} }, want: errBadMAC},
		{name: "the host's / bound", after: func(a *store.App) {
			a.Spec.Mounts = append(a.Spec.Mounts, store.AppMount{Type: "bind", Source: "/", Target: "/host"})
		}, want: errBadMAC},
		{name: "run as root", after: func(a *store.App) { a.Spec.User = "0" }, want: errBadMAC},
		{name: "another image", after: func(a *store.App) { a.Spec.Image = "evil:latest" }, want: errBadMAC},
		{name: "another command", after: func(a *store.App) { a.Spec.Cmd = []string{"sh", "-c", "id"} }, want: errBadMAC},
		{name: "the host's network", after: func(a *store.App) { a.Spec.Network = "host" }, want: errBadMAC},
		{name: "a label changed", after: func(a *store.App) { a.Spec.Labels["z"] = "2" }, want: errBadMAC},
		{name: "an environment variable added", after: func(a *store.App) { a.Spec.Env = append(a.Spec.Env, "LD_PRELOAD=/x.so") }, want: errBadMAC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := base()
			if tc.before != nil {
				tc.before(&a)
			}
			if err := signApp(key, &a); err != nil {
				t.Fatal(err)
			}
			a = roundTrip(a)
			if tc.after != nil {
				tc.after(&a)
			}
			k := key
			if tc.key != nil {
				k = tc.key
			}
			err := verifyApp(k, roundTrip(a))
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("verifyApp = %v, want %v", err, tc.want)
			}
		})
	}
	if err := signApp(nil, &store.App{Name: "x"}); !errors.Is(err, errNoKey) {
		t.Fatalf("signing without a key: %v", err)
	}
}
