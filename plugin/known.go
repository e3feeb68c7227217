package plugin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/relocvol/relocvol/internal/spec"
)

// Known is the set of the cluster's volume names this host has learnt, one
// empty file per name in a folder of the host's state, so that it outlives
// the plugin.
//
// It exists because of how Docker reads a plugin's Get: moby's
// lookupVolume takes any answer but a network error for "no such volume",
// forgets the volume (and does so for every plugin volume at each dockerd
// start), and the next `docker run -v db:/data` creates an empty local
// volume named db and runs the container on it. While etcd does not answer,
// or the plugin has not finished starting, Get answers a known name with
// "exists, state unknown" instead; Mount, which needs etcd, stays the gate.
// The set is a hint for Get and List only: nothing that decides who may
// write reads it.
type Known struct {
	dir string
	mu  sync.Mutex
	// names maps each known name to the generation it was learnt in, so
	// that Sync forgets only names learnt before its list was read.
	names map[string]uint64
	gen   uint64
}

// OpenKnown reads the names kept in dir, creating it when missing; a file
// there that is not a volume name is left alone.
func OpenKnown(dir string) (*Known, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("the known volumes' folder %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("the known volumes' folder %s: %w", dir, err)
	}
	k := &Known{dir: dir, names: map[string]uint64{}}
	for _, e := range entries {
		if e.Type().IsRegular() && spec.ValidateName(e.Name()) == nil {
			k.names[e.Name()] = 0
		}
	}
	return k, nil
}

// Has says whether name is known.
func (k *Known) Has(name string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.names[name]
	return ok
}

// Names are the known names.
func (k *Known) Names() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]string, 0, len(k.names))
	for n := range k.names {
		out = append(out, n)
	}
	return out
}

// Add records that name is a volume of the cluster.
func (k *Known) Add(name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.add(name)
}

func (k *Known) add(name string) error {
	k.gen++
	if _, ok := k.names[name]; ok || k.dir == "" {
		k.names[name] = k.gen
		return nil
	}
	f, err := os.OpenFile(filepath.Join(k.dir, name), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("record volume %q as known: %w", name, err)
	}
	k.names[name] = k.gen
	return f.Close()
}

// Forget records that name is no volume of the cluster (any longer).
func (k *Known) Forget(name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.forget(name)
}

func (k *Known) forget(name string) error {
	if _, ok := k.names[name]; !ok {
		return nil
	}
	if k.dir != "" {
		if err := os.Remove(filepath.Join(k.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("forget volume %q: %w", name, err)
		}
	}
	delete(k.names, name)
	return nil
}

// Mark is the generation to pass to Sync: take it before reading the list.
func (k *Known) Mark() uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.gen
}

// Sync makes the set the cluster's volumes (names, each once) as read
// after mark: it adds what is missing and forgets the rest, except names
// learnt since mark (a Create that finished while the list was read). List
// calls it each time, so the usual case, nothing changed, costs one lookup
// per name and nothing else.
func (k *Known) Sync(mark uint64, names []string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	missing := 0
	for _, n := range names {
		if _, ok := k.names[n]; !ok {
			missing++
		}
	}
	if missing == 0 && len(names) == len(k.names) {
		return nil // the same set
	}
	var errs []error
	listed := make(map[string]bool, len(names))
	for _, n := range names {
		listed[n] = true
		if _, ok := k.names[n]; !ok {
			errs = append(errs, k.add(n))
		}
	}
	for n, gen := range k.names {
		if !listed[n] && gen <= mark {
			errs = append(errs, k.forget(n))
		}
	}
	return errors.Join(errs...)
}

// memoryKnown is a Known kept in memory only, for a driver given none.
func memoryKnown() *Known { return &Known{names: map[string]uint64{}} }

// unknownVolume is Get's answer for a known volume whose state cannot be
// read now: it exists; why its state is unknown is what `docker volume
// inspect` shows.
func unknownVolume(name, mountpoint, reason string) *volume.Volume {
	return &volume.Volume{Name: name, Mountpoint: mountpoint, Status: map[string]interface{}{
		"state":  "unknown",
		"reason": reason + "; a Mount is refused until that is fixed",
	}}
}

// knownList is List's answer when the cluster's list cannot be read.
func knownList(k *Known, mountpoint func(string) string) *volume.ListResponse {
	names := k.Names()
	sort.Strings(names)
	resp := &volume.ListResponse{Volumes: make([]*volume.Volume, 0, len(names))}
	for _, n := range names {
		resp.Volumes = append(resp.Volumes, &volume.Volume{Name: n, Mountpoint: mountpoint(n)})
	}
	return resp
}
