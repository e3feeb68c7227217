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
// absent (createOnce), so two first starts cannot both win.
func (l *Loop) MarkCluster(ctx context.Context, id string) (string, error) {
	created, err := createOnce(filepath.Join(l.dir, markFile), id+"\n", 0o644, func() (bool, error) {
		found, err := l.ClusterMark(ctx)
		return found != "", err
	})
	if err != nil {
		return "", err
	}
	if created {
		return id, nil
	}
	return l.ClusterMark(ctx)
}

// createOnce writes content to the new file path (mode), unless it exists
// (O_EXCL: of two hosts starting at once, one wins); then it waits up to
// 5 s for complete to report the file written (the other host may still
// be writing it). created says whether this call made the file.
func createOnce(path, content string, mode os.FileMode, complete func() (bool, error)) (created bool, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		for i := 0; i < 50; i++ {
			if done, err := complete(); err != nil || done {
				return false, err
			}
			time.Sleep(100 * time.Millisecond)
		}
		return false, fmt.Errorf("%s exists but stays empty: remove it and start again", path)
	}
	if err != nil {
		return false, err
	}
	_, werr := f.WriteString(content)
	serr := f.Sync()
	if cerr := f.Close(); werr == nil && serr == nil {
		werr = cerr
	} else if werr == nil {
		werr = serr
	}
	if werr != nil {
		_ = os.Remove(path)
		return false, fmt.Errorf("write %s: %w", path, werr)
	}
	return true, nil
}

// ClearHint implements plugin.ClusterMarker.
func (l *Loop) ClearHint(string) string { return "rm " + filepath.Join(l.dir, markFile) }
