package plugin

import (
	"context"
	"maps"
	"sort"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/internal/store"
)

// mountRef is one mount ID of a volume on this host. Docker mounts an ID
// that is already mounted again (docker cp into or out of a running
// container, and other engine paths) and unmounts it as often, so each ID
// is counted: the volume is unmounted only when no count is left.
type mountRef struct {
	since time.Time // when the ID was first mounted
	n     int       // Mounts of the ID not unmounted yet
	// last is when this process last mounted the ID; zero when it was
	// recovered from the claim at start: Docker may not know it (the
	// plugin died before it answered), which the agent's cross-check with
	// the engine settles.
	last time.Time
}

// addMount counts one more Mount of id.
func (d *Driver) addMount(name, id string, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mounts[name] == nil {
		d.mounts[name] = map[string]mountRef{}
	}
	r, ok := d.mounts[name][id]
	if !ok {
		r.since = now
	}
	r.n++
	r.last = now
	d.mounts[name][id] = r
}

// delMount takes one count of id; false if this host does not count id.
func (d *Driver) delMount(name, id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.mounts[name][id]
	if !ok {
		return false
	}
	if r.n--; r.n > 0 {
		d.mounts[name][id] = r
		return true
	}
	delete(d.mounts[name], id)
	if len(d.mounts[name]) == 0 {
		delete(d.mounts, name)
	}
	return true
}

// recoverMounts takes name's mount IDs and counts from its claim, as when
// the plugin restarts while containers use the volume.
func (d *Driver) recoverMounts(c store.Claim) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(c.Mounts) == 0 {
		delete(d.mounts, c.Volume)
		return
	}
	refs := make(map[string]mountRef, len(c.Mounts))
	for id, since := range c.Mounts {
		refs[id] = mountRef{since: since, n: c.Refs(id)}
	}
	d.mounts[c.Volume] = refs
}

// forgetMounts drops every mount ID of name on this host.
func (d *Driver) forgetMounts(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.mounts, name)
}

// localMounts returns name's mount IDs on this host as a claim records
// them: ID → since, and the counts of IDs mounted more than once (nil when
// none).
func (d *Driver) localMounts(name string) (map[string]time.Time, map[string]int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := make(map[string]time.Time, len(d.mounts[name]))
	var counts map[string]int
	for id, r := range d.mounts[name] {
		ids[id] = r.since
		if r.n > 1 {
			if counts == nil {
				counts = map[string]int{}
			}
			counts[id] = r.n
		}
	}
	return ids, counts
}

// sameMounts reports whether two claims record the same mount IDs with the
// same counts.
func sameMounts(a, b store.Claim) bool {
	if len(a.Mounts) != len(b.Mounts) {
		return false
	}
	for id := range a.Mounts {
		if a.Refs(id) != b.Refs(id) {
			return false
		}
	}
	return true
}

// MountCount returns how many mount IDs name has on this host.
func (d *Driver) MountCount(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.mounts[name])
}

// Mounts maps each volume counted mounted on this host to when this
// process last mounted it (zero: its IDs were all recovered at start, or
// none is left but its device could not be closed and deactivated yet).
func (d *Driver) Mounts() map[string]time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]time.Time, len(d.mounts)+len(d.unsettled))
	for name := range d.unsettled {
		out[name] = time.Time{}
	}
	for name, refs := range d.mounts {
		var last time.Time
		for _, r := range refs {
			if r.last.After(last) {
				last = r.last
			}
		}
		out[name] = last
	}
	return out
}

// Drop forgets every mount ID of name on this host, unmounts and
// deactivates it and releases its claim: for IDs Docker will never unmount
// (the agent found no container using the volume) and for self-fencing.
// It does nothing (false) when the volume was mounted after since, the
// moment the caller looked at the containers. The unmount is not lazy and
// a device still open is not deactivated, so a filesystem something still
// uses keeps its claim and stays in Mounts() (and is retried: a Drop of a
// volume with no ID left but still active tries again).
func (d *Driver) Drop(ctx context.Context, name, why string, since time.Time) (bool, error) {
	defer d.locks.lock(name)()
	d.mu.Lock()
	var ids []string
	for id, r := range d.mounts[name] {
		if r.last.After(since) {
			d.mu.Unlock()
			return false, nil
		}
		ids = append(ids, shortID(id))
	}
	delete(d.mounts, name)
	unsettled := d.unsettled[name]
	d.mu.Unlock()
	if len(ids) == 0 && !unsettled {
		return false, nil
	}
	sort.Strings(ids)
	d.log.WithFields(logrus.Fields{"volume": name, "ids": ids}).Warn("dropping mount IDs: " + why)
	return true, d.settleNow(ctx, name)
}

// withMount returns c with one more mount of id recorded at now.
func withMount(c store.Claim, id string, now time.Time) store.Claim {
	c.Mounts, c.Counts = maps.Clone(c.Mounts), maps.Clone(c.Counts)
	if c.Mounts == nil {
		c.Mounts = map[string]time.Time{}
	}
	if n := c.Refs(id); n > 0 {
		if c.Counts == nil {
			c.Counts = map[string]int{}
		}
		c.Counts[id] = n + 1
		return c
	}
	c.Mounts[id] = now
	return c
}

// device is the device of name active here: from memory for a volume this
// process mounted (Get runs before every Unmount), else asked of the
// backend (mounted before this process started).
func (d *Driver) device(ctx context.Context, name string) (string, error) {
	d.mu.Lock()
	dev := d.devs[name]
	d.mu.Unlock()
	if dev != "" {
		return dev, nil
	}
	return d.backend.Device(ctx, name)
}
