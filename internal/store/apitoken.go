package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// APITokens returns the cluster's API tokens, creating each (32 random
// bytes, hex) the first time a host asks, in one transaction that
// otherwise reads the one there, so that every host serves the same: the
// full token (<prefix>/api/token) and the read-only one
// (<prefix>/api/token-read), for scrapes of /metrics and other reads.
// Whoever reads etcd reads them; write access to etcd is root on every
// host anyway.
func (s *Store) APITokens(ctx context.Context) (full, read string, err error) {
	if full, err = s.apiToken(ctx, "token"); err != nil {
		return "", "", err
	}
	if read, err = s.apiToken(ctx, "token-read"); err != nil {
		return "", "", err
	}
	return full, read, nil
}

func (s *Store) apiToken(ctx context.Context, name string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make the API %s: %w", name, err)
	}
	key := s.key("api", name)
	tok := hex.EncodeToString(b)
	if _, _, _, err := s.createOrGet(ctx, "read the API "+name+" "+key, key, tok, &tok); err != nil {
		return "", err
	}
	if len(tok) < 32 {
		return "", fmt.Errorf("the API %s in %s is %d characters: too short to guess at; delete the key and every host makes a new one at its next start", name, key, len(tok))
	}
	return tok, nil
}
