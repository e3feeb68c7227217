package cluster

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// cleanup logs the nodes' daemons when the test failed, then removes the
// nodes, the network, mounts under the temp folder and loop devices of the
// SAN's files. t.TempDir removes the folder itself afterwards.
func (c *Cluster) cleanup() {
	t := c.t
	if t.Failed() {
		for _, n := range c.nodes {
			var daemon []string // without the plugin's lines and gRPC chatter
			for _, l := range strings.Split(n.DockerdLog(), "\n") {
				if !strings.Contains(l, " plugin=") && !strings.Contains(l, " module=grpc") {
					daemon = append(daemon, l)
				}
			}
			t.Logf("---- node %s: dockerd log (tail) ----\n%s", n.Name, tail(strings.Join(daemon, "\n"), 40))
			t.Logf("---- node %s: plugin output (tail) ----\n%s", n.Name, tail(n.PluginLogs(), 80))
		}
	}
	for _, n := range c.nodes {
		if err := removeContainer(n.container); err != nil {
			t.Errorf("cluster cleanup: %v", err)
		}
	}
	if c.network != "" {
		if err := removeNetwork(c.network); err != nil {
			t.Errorf("cluster cleanup: %v", err)
		}
	}
	unmountUnder(t, c.dir)
	detachLoops(t, c.san)
}

// unmountUnder lazily unmounts whatever is mounted at or below dir in the
// test's mount namespace, deepest first.
func unmountUnder(t testing.TB, dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			mounts = append(mounts, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	for _, m := range mounts {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
			t.Errorf("cluster cleanup: umount %s: %v", m, err)
		} else {
			t.Logf("cluster cleanup: unmounted %s", m)
		}
	}
}

// detachLoops detaches the loop devices backed by files under san. Loop
// devices are the kernel's, not a node's: a killed node leaves its own
// attached, and only their backing file's device and inode tell them
// apart (the path recorded is the one the plugin saw, in a mount namespace
// gone with the node).
func detachLoops(t testing.TB, san string) {
	type key struct{ dev, ino uint64 }
	files := map[key]string{}
	_ = filepath.WalkDir(san, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil {
			files[key{st.Dev, st.Ino}] = p
		}
		return nil
	})
	if len(files) == 0 {
		return
	}
	out, err := run(nil, "losetup", "--list", "--json", "--output", "NAME,BACK-INO,BACK-MAJ:MIN")
	if err != nil {
		t.Errorf("cluster cleanup: %v", err)
		return
	}
	var list struct {
		Devices []struct {
			Name   string `json:"name"`
			Ino    uint64 `json:"back-ino"`
			MajMin string `json:"back-maj:min"` // space-padded
		} `json:"loopdevices"`
	}
	if out != "" { // no devices: no output at all
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Errorf("cluster cleanup: losetup --list --json: %v", err)
			return
		}
	}
	for _, d := range list.Devices {
		maj, min, ok := strings.Cut(strings.TrimSpace(d.MajMin), ":")
		ma, err1 := strconv.ParseUint(maj, 10, 32)
		mi, err2 := strconv.ParseUint(min, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			continue
		}
		file, ok := files[key{unix.Mkdev(uint32(ma), uint32(mi)), d.Ino}]
		if !ok {
			continue
		}
		if out, err := run(nil, "losetup", "--detach", d.Name); err != nil {
			t.Errorf("cluster cleanup: detach %s (%s): %v: %s", d.Name, file, err, out)
		} else {
			t.Logf("cluster cleanup: detached %s, left attached to %s", d.Name, file)
		}
	}
}

// reapStale removes the nodes and networks of clusters whose test process
// is gone (a test killed by its timeout runs no cleanup): networks are few.
func reapStale(t testing.TB) {
	containers, networks, err := labelled(labelPID)
	if err != nil {
		t.Logf("cluster: %v", err)
		return
	}
	for _, kind := range []struct {
		what   string
		ids    map[string]map[string]string
		remove func(string) error
	}{
		{"container", containers, removeContainer}, // nodes first: a network in use stays
		{"network", networks, removeNetwork},
	} {
		for id, labels := range kind.ids {
			pid, err := strconv.Atoi(labels[labelPID])
			if err != nil || pid <= 0 || alive(pid) {
				continue
			}
			if err := kind.remove(id); err == nil {
				t.Logf("cluster: removed %s %s left by test process %d, which is gone", kind.what, id, pid)
			}
		}
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
