package fsutil

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/relocvol/relocvol/internal/execx"
)

// capSysResource is CAP_SYS_RESOURCE's bit: the kernel requires it to grow
// a mounted ext4 filesystem (ext4_resize_begin), while XFS asks only for
// CAP_SYS_ADMIN, which the plugin has anyway.
const capSysResource = 24

// GrowsOnline says whether this process can grow a mounted filesystem of
// type fstype; when not, why (the caller grows it offline, before its next
// mount).
func GrowsOnline(fstype string) (bool, string) {
	if fstype != "ext4" {
		return true, ""
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false, fmt.Sprintf("cannot read this process's capabilities: %v", err)
	}
	if has, err := hasCapability(status, capSysResource); err != nil {
		return false, err.Error()
	} else if !has {
		return false, "the kernel grows a mounted ext4 filesystem only for a process with CAP_SYS_RESOURCE, and this one lacks it " +
			"(the managed plugin does where its Docker engine cannot grant it: scripts/build-plugin.sh then leaves it out)"
	}
	return true, ""
}

// GrowsOnline is GrowsOnline, for callers that take an FS.
func (FS) GrowsOnline(fstype string) (bool, string) { return GrowsOnline(fstype) }

// hasCapability reads the effective capability set (CapEff) of a
// /proc/PID/status and says whether it holds capability bit.
func hasCapability(status []byte, bit uint) (bool, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "CapEff:")
		if !ok {
			continue
		}
		set, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return false, fmt.Errorf("read the effective capabilities %q: %w", strings.TrimSpace(v), err)
		}
		return set&(1<<bit) != 0, nil
	}
	return false, errors.New("no CapEff line in /proc/self/status")
}

// GrowOffline grows the ext4 filesystem on dev, which nothing mounts, to
// the size of dev: e2fsck -f -p first, since resize2fs refuses a
// filesystem mounted since its last check. It takes a while on a large,
// full filesystem; Mount calls it only for a volume grown on a host that
// could not grow it online. XFS grows only while mounted (Grow).
func (f FS) GrowOffline(ctx context.Context, fstype, dev string) error {
	if fstype != "ext4" {
		return fmt.Errorf("grow %s offline: %w %q: only ext4 grows unmounted", dev, ErrUnsupportedFS, fstype)
	}
	_, err := f.Run.Run(ctx, "e2fsck", "-f", "-p", dev)
	var ee *execx.ExecError
	// 1: errors found and corrected, which -p does only for safe ones.
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode == 1) {
		return fmt.Errorf("check the ext4 filesystem of %s before growing it: %w", dev, err)
	}
	if _, err := f.Run.Run(ctx, "resize2fs", dev); err != nil {
		return fmt.Errorf("grow the ext4 filesystem of %s: %w", dev, err)
	}
	return nil
}
