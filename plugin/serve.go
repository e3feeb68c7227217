package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/docker/go-plugins-helpers/volume"
)

// Serve answers the VolumeDriver protocol on a unix socket at path until ctx
// ends. A stale socket file left by a crashed process is replaced.
func Serve(ctx context.Context, path string, d volume.Driver) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("socket folder: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	go func() {
		<-ctx.Done()
		_ = l.Close()
	}()
	err = volume.NewHandler(d).Serve(l)
	if ctx.Err() != nil {
		return nil // closed on purpose
	}
	return fmt.Errorf("serve %s: %w", path, err)
}
