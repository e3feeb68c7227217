package e2e

import (
	"fmt"
	"io/fs"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relocvol/relocvol/backends/loop"
	"github.com/relocvol/relocvol/backends/lvm"
	"github.com/relocvol/relocvol/fencing/scsi3"
	"github.com/relocvol/relocvol/internal/fsutil"
)

// pluginPath is the PATH Docker gives a managed plugin's process.
const pluginPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// checkRootfsTools checks the root filesystem of the plugin Docker holds as
// ref: every command relocvol runs (the Tools lists its start-up check
// uses) is found there, and each of them runs, so that their shared
// libraries are there too (the rootfs holds only what
// scripts/plugin-rootfs.sh copied). It chroots into the rootfs, as root.
func checkRootfsTools(t *testing.T, ref string) {
	t.Helper()
	id := mustDocker(t, "plugin", "inspect", "-f", "{{.Id}}", ref)
	rootfs := filepath.Join(mustDocker(t, "info", "-f", "{{.DockerRootDir}}"), "plugins", id, "rootfs")
	tools := slices.Concat(lvm.Tools, scsi3.Tools, fsutil.Tools, loop.Tools)
	var names []string
	for _, tool := range tools {
		names = append(names, tool.Name)
	}
	// One chroot for every command: it prints those it cannot find.
	out, err := inRootfs(rootfs, append([]string{"sh", "-c",
		`for c in "$@"; do command -v "$c" >/dev/null || echo "$c"; done`, "sh"}, names...)...)
	if err != nil {
		t.Fatalf("chroot %s: %v\n%s", rootfs, err, out)
	}
	var missing []string
	for _, tool := range tools {
		if slices.Contains(strings.Fields(out), tool.Name) {
			missing = append(missing, tool.Name+" (package "+tool.Package+")")
		}
	}
	if len(missing) > 0 {
		t.Fatalf("the plugin's rootfs %s lacks commands relocvol runs: %s. Add their packages to RELOCVOL_BASE_PACKAGES (scripts/lib.sh) and to the Dockerfile's install, and the commands to the Dockerfile's scripts/plugin-rootfs.sh line",
			rootfs, strings.Join(missing, ", "))
	}
	for _, run := range []struct {
		argv []string
		want string
	}{
		{[]string{"lvm", "version"}, "LVM version:"},
		{[]string{"sg_persist", "--version"}, "version:"},
		{[]string{"mpathpersist", "-h"}, "multipath-tools v"},
		{[]string{"mkfs.ext4", "-V"}, "mke2fs "},
		{[]string{"mkfs.xfs", "-V"}, "mkfs.xfs version"},
		{[]string{"mount", "-V"}, "mount from util-linux"},
		{[]string{"umount", "-V"}, "umount from util-linux"},
		{[]string{"losetup", "-V"}, "losetup from util-linux"},
	} {
		out, err := inRootfs(rootfs, run.argv...)
		if err != nil || !strings.Contains(out, run.want) {
			t.Errorf("%s in the plugin's rootfs: %v, output:\n%s\nwant it to run and print %q", strings.Join(run.argv, " "), err, out, run.want)
		}
	}
	t.Logf("the plugin's rootfs has the %d commands relocvol runs, and they run there; BENCHMARK plugin rootfs: %s", len(names), treeSize(t, rootfs))
}

// treeSize is how much the regular files under dir hold, and how many.
func treeSize(t *testing.T, dir string) string {
	t.Helper()
	var files, bytes int64
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		files++
		bytes += info.Size()
		return nil
	})
	if err != nil {
		t.Fatalf("size of %s: %v", dir, err)
	}
	return fmt.Sprintf("%.1f MB in %d files", float64(bytes)/1e6, files)
}

// inRootfs runs argv chrooted into rootfs with the plugin's PATH, and
// returns its combined output.
func inRootfs(rootfs string, argv ...string) (string, error) {
	cmd := exec.Command("chroot", append([]string{rootfs}, argv...)...)
	// LVM warns of every descriptor the test binary leaves open.
	cmd.Env = []string{"PATH=" + pluginPath, "LC_ALL=C", "LVM_SUPPRESS_FD_WARNINGS=1"}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
