package main

import (
	"context"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/internal/config"
	"github.com/relocvol/relocvol/internal/secret"
	"github.com/relocvol/relocvol/internal/store"
)

// apiTokens are the tokens this host's API accepts: --api-token as it is,
// or the cluster's, made once in etcd; and the cluster's read-only one.
// Both are mirrored into the state folder (mode 0600), where the CLI run
// as root finds them; a file that differs is rewritten whole. The API
// always requires one: any local user reaches it, and a maintenance ended
// or an app moved by one is a failover under running containers.
func apiTokens(ctx context.Context, st *store.Store, cfg config.Config, log logrus.FieldLogger) (full, read string, err error) {
	full, read, err = st.APITokens(ctx)
	if err != nil {
		return "", "", fmt.Errorf("the API's tokens: %w", err)
	}
	if cfg.APIToken != "" {
		full = cfg.APIToken
	}
	for _, f := range []struct{ path, token, what string }{
		{cfg.APITokenFile(), full, "the API token"},
		{cfg.APIReadTokenFile(), read, "the API's read-only token (GET requests: /metrics)"},
	} {
		changed, err := secret.Mirror(f.path, []byte(f.token+"\n"))
		if err != nil {
			return "", "", fmt.Errorf("keep %s for the CLI run as root: %w", f.what, err)
		}
		if changed {
			log.WithField("file", f.path).Info("wrote " + f.what + " (mode 0600, for root only)")
		}
	}
	return full, read, nil
}
