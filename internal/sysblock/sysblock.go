// Package sysblock reads, from sysfs, the block device topology that
// fencing and the doctor's LVM checks ask about: whether a device is a
// multipath map, the paths of a map, the map that holds a disk, and a SCSI
// disk's WWID (its LUN's identity). Reading it in one place keeps the
// fencer and the doctor agreeing on what a path is.
package sysblock

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Sysfs is a sysfs root: "/sys", or a folder a test fills.
type Sysfs string

// Block is the folder of block device name (class/block/NAME).
func (s Sysfs) Block(name string) string { return filepath.Join(string(s), "class", "block", name) }

// DMUUID is the device-mapper UUID of device name (dm-N).
func (s Sysfs) DMUUID(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(s.Block(name), "dm", "uuid"))
	return strings.TrimSpace(string(b)), err
}

// IsMultipathMap says whether device name is a dm-multipath map.
func (s Sysfs) IsMultipathMap(name string) bool {
	uuid, err := s.DMUUID(name)
	return err == nil && strings.HasPrefix(uuid, "mpath-")
}

// MapOf is the multipath map that holds disk name ("" when none does).
func (s Sysfs) MapOf(name string) string {
	holders, _ := os.ReadDir(filepath.Join(s.Block(name), "holders"))
	for _, h := range holders {
		if s.IsMultipathMap(h.Name()) {
			return h.Name()
		}
	}
	return ""
}

// Paths are the devices a device-mapper device name is made of (its
// slaves: a multipath map's paths), sorted.
func (s Sysfs) Paths(name string) []string {
	entries, _ := os.ReadDir(filepath.Join(s.Block(name), "slaves"))
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// WWID is the WWID of SCSI disk name: the identity of its LUN, the same on
// every path to it.
func (s Sysfs) WWID(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(s.Block(name), "device", "wwid"))
	if err != nil {
		return "", err
	}
	w := strings.TrimSpace(string(b))
	if w == "" {
		return "", os.ErrNotExist
	}
	return w, nil
}

// Disks are the names of the SCSI disks (block devices with a WWID), by
// WWID.
func (s Sysfs) Disks() map[string][]string {
	entries, _ := os.ReadDir(filepath.Join(string(s), "class", "block"))
	out := map[string][]string{}
	for _, e := range entries {
		if w, err := s.WWID(e.Name()); err == nil {
			out[w] = append(out[w], e.Name())
		}
	}
	for _, names := range out {
		sort.Strings(names)
	}
	return out
}
