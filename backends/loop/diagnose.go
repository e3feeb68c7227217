package loop

import (
	"context"
	"os"

	"golang.org/x/sys/unix"

	"github.com/relocvol/relocvol/internal/doctor"
)

// Diagnose is the doctor's storage check for a loop host: the SAN folder
// takes a new file, and how much room is left in it (the images are
// sparse: they take room as they are written).
func (l *Loop) Diagnose(context.Context) []doctor.Check {
	const name = "san folder"
	f, err := os.CreateTemp(l.dir, ".relocvol-doctor-")
	if err != nil {
		return []doctor.Check{doctor.Failed(name, "check the san mount of the plugin (RELOCVOL_SAN_DIR and docker plugin set relocvol san.source=...) and that the folder is writable",
			"%s does not take a new file: %v", l.dir, err)}
	}
	_ = f.Close()
	_ = os.Remove(f.Name())
	var st unix.Statfs_t
	if err := unix.Statfs(l.dir, &st); err != nil {
		return []doctor.Check{doctor.Failed(name, "check the san mount of the plugin", "statfs %s: %v", l.dir, err)}
	}
	free := int64(st.Bavail) * st.Bsize
	if free < 1<<30 {
		return []doctor.Check{doctor.Warned(name, "free room in the folder, or move it to a larger filesystem: volume images are sparse and fail their writes when it is full",
			"%s is writable but has only %.1f GiB free", l.dir, float64(free)/(1<<30))}
	}
	return []doctor.Check{doctor.Passed(name, "%s is writable, %.1f GiB free", l.dir, float64(free)/(1<<30))}
}
