// Package backends defines what relocvol asks of a storage backend: provision
// a volume's block storage, make it active on this host, and undo both. Each
// backend lives in its own sub-package (loop, later lvm) and runs the shared
// conformance suite in backendtest. Filesystem work common to all backends
// (mkfs, mount) is in internal/fsutil; claims, fencing and reference counting
// belong to the plugin, never to a backend.
package backends

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors a backend classifies its failures into, so the plugin can
// tell the operator what happened without parsing command output.
var (
	ErrNotFound = errors.New("storage not found")
	ErrExists   = errors.New("storage already exists")
	ErrInUse    = errors.New("storage in use")
	// ErrForeign: the storage of that name was not made by the create
	// asked about (another create, an earlier cluster, or by hand), so it
	// is not removed.
	ErrForeign = errors.New("storage made by another create")
)

// Volume is what a backend needs to provision storage.
type Volume struct {
	Name string
	Size int64  // bytes
	FS   string // "ext4" or "xfs"
	// CreateID identifies the create that makes the storage; the storage
	// carries it, so that only what that create made is ever removed in
	// its name (ValidCreateID).
	CreateID string
}

// NewCreateID returns a fresh create identity: 128 random bits in hex.
func NewCreateID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// ValidCreateID checks a create's identity: lower-case hex, 8 to 64
// digits, so that it fits an LVM tag and a file name as it is.
func ValidCreateID(id string) error {
	if len(id) < 8 || len(id) > 64 || strings.Trim(id, "0123456789abcdef") != "" {
		return fmt.Errorf("invalid create ID %q: want 8 to 64 lower-case hex digits", id)
	}
	return nil
}

// Backend provisions and activates block storage for volumes. Every method is
// idempotent and undoes its own partial work on failure.
type Backend interface {
	// Name is the backend's configuration name ("loop", "lvm").
	Name() string
	// Create provisions storage of v.Size bytes, marked with v.CreateID,
	// and formats it with v.FS. It returns ErrExists if storage for v.Name
	// is already there.
	Create(ctx context.Context, v Volume) error
	// Remove deletes the storage of name if create createID made it
	// (createID "": storage made before creates carried an identity);
	// missing storage is not an error. It returns ErrForeign, removing
	// nothing, if the storage there carries another identity, and ErrInUse
	// if it is active on this host.
	Remove(ctx context.Context, name, createID string) error
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
