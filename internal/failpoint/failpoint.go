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

// The failpoints of the plugin.
const (
	// MountAfterAttach: the backend attached (activated) the volume, its
	// filesystem is not mounted yet.
	MountAfterAttach = "mount-after-attach"
	// MountBeforeReply: the volume is mounted and counted, Docker has no
	// answer yet.
	MountBeforeReply = "mount-before-reply"
)

// Path is the file that arms a failpoint, in the plugin's state folder.
func Path(stateDir string) string { return filepath.Join(stateDir, "failpoint") }
