//go:build !failpoints

package failpoint

// Enabled reports whether this build can trigger failpoints.
const Enabled = false

// Arm does nothing in a build without the failpoints tag.
func Arm(string) {}

// Hit does nothing in a build without the failpoints tag.
func Hit(string) {}
