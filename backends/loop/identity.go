package loop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// markFile holds the identity of the relocvol cluster that uses the folder;
// its leading dot keeps it clear of volume images (<name>.img).
const markFile = ".relocvol-cluster"

// Storage implements plugin.ClusterMarker.
func (l *Loop) Storage() string { return "SAN folder " + l.dir }

// ClusterMark implements plugin.ClusterMarker.
func (l *Loop) ClusterMark(context.Context) (string, error) {
	b, err := os.ReadFile(filepath.Join(l.dir, markFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// MarkCluster implements plugin.ClusterMarker: the file is created only if
// absent (O_EXCL), so two first starts cannot both win.
func (l *Loop) MarkCluster(ctx context.Context, id string) (string, error) {
	path := filepath.Join(l.dir, markFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		// Another host created it first; it may still be writing it.
		for i := 0; i < 50; i++ {
			if found, err := l.ClusterMark(ctx); err != nil || found != "" {
				return found, err
			}
			time.Sleep(100 * time.Millisecond)
		}
		return "", fmt.Errorf("%s exists but stays empty: remove it and start again", path)
	}
	if err != nil {
		return "", err
	}
	_, werr := f.WriteString(id + "\n")
	serr := f.Sync()
	if cerr := f.Close(); werr == nil && serr == nil {
		werr = cerr
	} else if werr == nil {
		werr = serr
	}
	if werr != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("write %s: %w", path, werr)
	}
	return id, nil
}

// ClearHint implements plugin.ClusterMarker.
func (l *Loop) ClearHint(string) string { return "rm " + filepath.Join(l.dir, markFile) }
