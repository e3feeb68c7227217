// Package backends defines what relocvol asks of a storage backend: provision
// a volume's block storage, make it active on this host, and undo both. Each
// backend lives in its own sub-package (loop, later lvm) and runs the shared
// conformance suite in backendtest. Filesystem work common to all backends
// (mkfs, mount) is in internal/fsutil; claims, fencing and reference counting
// belong to the plugin, never to a backend.
package backends

import (
	"context"
	"errors"
)

// Sentinel errors a backend classifies its failures into, so the plugin can
// tell the operator what happened without parsing command output.
var (
	ErrNotFound = errors.New("storage not found")
	ErrExists   = errors.New("storage already exists")
	ErrInUse    = errors.New("storage in use")
)

// Volume is what a backend needs to provision storage.
type Volume struct {
	Name string
	Size int64  // bytes
	FS   string // "ext4" or "xfs"
}

// Backend provisions and activates block storage for volumes. Every method is
// idempotent and undoes its own partial work on failure.
type Backend interface {
	// Name is the backend's configuration name ("loop", "lvm").
	Name() string
	// Create provisions storage of v.Size bytes and formats it with v.FS.
	// It returns ErrExists if storage for v.Name is already there.
	Create(ctx context.Context, v Volume) error
	// Remove deletes the storage; missing storage is not an error. It returns
	// ErrInUse if the storage is active on this host.
	Remove(ctx context.Context, name string) error
	// Activate makes the block device available on this host and returns its
	// path; if it is already active it returns the same device. It returns
	// ErrNotFound if there is no storage for name.
	Activate(ctx context.Context, name string) (string, error)
	// Deactivate makes the block device unavailable on this host; doing so
	// when it is not active is not an error. It returns ErrInUse if the
	// device is still open (mounted), because then it stays usable.
	Deactivate(ctx context.Context, name string) error
	// Device returns the active device of name on this host, or "" when the
	// volume is not active here.
	Device(ctx context.Context, name string) (string, error)
}

// Grower is an optional ability of a backend: growing a volume's storage
// while it is active, and in use, on any host.
type Grower interface {
	// Grow extends the storage of name to at least size bytes, from any
	// host, whichever host has it active; storage that large already is
	// left as it is. It returns ErrNotFound if there is no storage for
	// name.
	Grow(ctx context.Context, name string, size int64) error
	// Refresh makes the device of name active on this host show the size
	// its storage has now (another host may have grown it); a no-op when
	// it is not active here.
	Refresh(ctx context.Context, name string) error
}
