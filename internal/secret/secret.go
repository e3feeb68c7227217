// Package secret keeps relocvol's secrets (the embedded etcd's keys, the
// API tokens) in files only their owner, root, can read: a folder of mode
// 0700, files of mode 0600 written whole (a temporary file renamed over
// the old one, so that a reader never sees half a key), and a file or
// folder another user owns or could change is refused rather than trusted.
package secret

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Modes of what this package makes.
const (
	DirMode  fs.FileMode = 0o700
	FileMode fs.FileMode = 0o600
)

// Dir makes the folder dir (mode 0700), or makes an existing one 0700; it
// refuses one that another user owns: that user could swap its files.
func Dir(dir string) error {
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a folder: remove it, relocvol makes it again", dir)
	}
	if err := ownedByUs(dir, fi); err != nil {
		return err
	}
	if fi.Mode().Perm() != DirMode {
		if err := os.Chmod(dir, DirMode); err != nil {
			return fmt.Errorf("make %s private (mode 0700): %w", dir, err)
		}
	}
	return nil
}

// Read returns the content of the secret file path; a file another user
// owns, or that others may read or write (its mode is made 0600 here,
// since the folder already kept them out), is refused with what to do.
func Read(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file: remove it, relocvol makes it again", path)
	}
	if err := ownedByUs(path, fi); err != nil {
		return nil, err
	}
	if fi.Mode().Perm() != FileMode {
		if err := os.Chmod(path, FileMode); err != nil {
			return nil, fmt.Errorf("make %s private (mode 0600): %w", path, err)
		}
	}
	return os.ReadFile(path)
}

// Write replaces path with data, mode 0600, atomically: a reader sees the
// old content or the new, never a part.
func Write(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(FileMode) // CreateTemp's 0600 already; umask-proof
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // the rename itself survives a crash
		_ = d.Close()
	}
	return nil
}

// Mirror makes path hold data (mode 0600), writing it only when it holds
// something else (or is not there, or cannot be trusted); changed says
// whether it was written.
func Mirror(path string, data []byte) (changed bool, err error) {
	old, err := Read(path)
	if err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		// Not ours or not a file: replace it only if it is a file we may
		// remove; anything else is for the operator.
		if rerr := os.Remove(path); rerr != nil {
			return false, fmt.Errorf("%w (and cannot remove it: %v)", err, rerr)
		}
	}
	return true, Write(path, data)
}

// ownedByUs refuses what another user owns.
func ownedByUs(path string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("%s is owned by uid %d, not by uid %d that runs relocvol: another user could replace it; remove it (relocvol makes it again) or chown it", path, st.Uid, uid)
	}
	return nil
}
