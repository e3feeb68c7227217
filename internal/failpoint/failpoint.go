// Package failpoint lets the crash tests kill the plugin at a chosen step
// of a request (after the backend attached a volume, before Mount replies),
// the way a power cut or an OOM kill would. Only a build with the
// `failpoints` tag can trigger one: in every other build Hit does nothing,
// so production plugins cannot be crashed by a file or a setting.
//
// A test arms a failpoint by writing its name into the file Path(stateDir)
// on the host (the plugin's state mount); the next Hit of that name removes
// the file, so that the restarted plugin runs on, and ends the process at
// once, as SIGKILL would (exit status 137, no deferred function run).
package failpoint

import "path/filepath"

// The failpoints of the plugin, one after each step of Mount and Unmount.
const (
	// MountAfterClaim: the claim is written in etcd with the mount ID;
	// nothing is attached yet.
	MountAfterClaim = "mount-after-claim"
	// MountAfterAttach: the backend attached (activated) the volume, its
	// filesystem is not mounted yet.
	MountAfterAttach = "mount-after-attach"
	// MountAfterFilesystem: the filesystem is mounted, the mount ID not
	// counted on this host yet.
	MountAfterFilesystem = "mount-after-filesystem"
	// MountBeforeReply: the volume is mounted and counted, Docker has no
	// answer yet.
	MountBeforeReply = "mount-before-reply"
	// UnmountAfterFilesystem: the last mount ID is dropped and the
	// filesystem unmounted; the volume is still attached and claimed.
	UnmountAfterFilesystem = "unmount-after-filesystem"
	// UnmountAfterDetach: the backend detached (deactivated) the volume;
	// the claim is not released yet.
	UnmountAfterDetach = "unmount-after-detach"
	// UnmountBeforeReply: the claim is released, Docker has no answer yet.
	UnmountBeforeReply = "unmount-before-reply"
)

// All are the failpoints in the order a Mount and an Unmount pass them.
var All = []string{
	MountAfterClaim, MountAfterAttach, MountAfterFilesystem, MountBeforeReply,
	UnmountAfterFilesystem, UnmountAfterDetach, UnmountBeforeReply,
}

// Path is the file that arms a failpoint, in the plugin's state folder.
func Path(stateDir string) string { return filepath.Join(stateDir, "failpoint") }
