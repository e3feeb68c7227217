package controller

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/relocvol/relocvol/internal/store"
)

// Write access to etcd is root on every host: an agent creates containers
// from app records, bind mounts, user and network as recorded. So an agent
// starts only what an agent recorded: each record carries an HMAC-SHA256
// of what the recording agent took from docker inspect (name, volumes,
// allowed hosts, spec), keyed with the cluster's app key, which is kept
// next to the data (a file in the SAN folder, a VG tag), never in etcd. A
// principal who can write etcd but not read the storage (an etcd open on
// the network, a shared one, a backup restored) cannot forge one; every
// host of the cluster reads the key from the storage it joins.
//
// Not covered, so that the leader and the API need no key: the placement
// (Host, Relocation), which only picks among hosts an agent recorded as
// allowed, and Stopped, the container's run state as its user left it
// (flipped by docker start/stop): changing either can at worst start,
// stop or move an app with its recorded spec, which write access to etcd
// allows anyway (deleting claims or records, say), never run anything
// that was not recorded.

// Errors of verifyApp.
var (
	errUnsigned = errors.New("is not signed by an agent of this cluster (no MAC)")
	errBadMAC   = errors.New("does not match its MAC (changed after an agent recorded it, or signed with another cluster's key)")
	errNoKey    = errors.New("no app key (the cluster's key on the storage) to sign or check app records with")
)

// appMACDomain separates this use of the key from any other.
const appMACDomain = "relocvol app record v1\x00"

// recorded is what the MAC covers: what an agent took from docker inspect.
type recorded struct {
	Name    string        `json:"name"`
	Volumes []string      `json:"volumes"`
	Allowed []string      `json:"allowed"`
	Spec    store.AppSpec `json:"spec"`
}

// canonical is the encoding the MAC is computed over: the recorded fields
// of the app as etcd holds it (one JSON round trip first, so that what is
// signed before the write and what is checked after a read encode alike:
// empty and nil lists, invalid UTF-8 replaced), then JSON, whose struct
// fields keep their order and whose maps are sorted by key.
func canonical(a store.App) ([]byte, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	var stored store.App
	if err := json.Unmarshal(b, &stored); err != nil {
		return nil, err
	}
	return json.Marshal(recorded{Name: stored.Name, Volumes: stored.Volumes, Allowed: stored.Allowed, Spec: stored.Spec})
}

// appMAC is the hex HMAC-SHA256 of a's recorded fields under key.
func appMAC(key []byte, a store.App) (string, error) {
	c, err := canonical(a)
	if err != nil {
		return "", fmt.Errorf("encode app %s for its MAC: %w", a.Name, err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(appMACDomain))
	m.Write(c)
	return hex.EncodeToString(m.Sum(nil)), nil
}

// signApp sets a's MAC: the agent that recorded it from docker inspect.
func signApp(key []byte, a *store.App) error {
	if len(key) == 0 {
		return fmt.Errorf("sign app %s: %w", a.Name, errNoKey)
	}
	mac, err := appMAC(key, *a)
	if err != nil {
		return err
	}
	a.MAC = mac
	return nil
}

// verifyApp checks that an agent of this cluster recorded a as it is.
func verifyApp(key []byte, a store.App) error {
	switch {
	case len(key) == 0:
		return fmt.Errorf("app record %s: %w", a.Name, errNoKey)
	case a.MAC == "":
		return fmt.Errorf("app record %s %w", a.Name, errUnsigned)
	}
	want, err := appMAC(key, a)
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(a.MAC)
	if w, _ := hex.DecodeString(want); err != nil || !hmac.Equal(got, w) {
		return fmt.Errorf("app record %s %w", a.Name, errBadMAC)
	}
	return nil
}
