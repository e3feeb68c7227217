package sanlab

import (
	"fmt"
	"testing"
	"time"
)

// fsckClean checks the filesystem of the volumes of app on vm, its new
// owner after a fault, read-only once the app is stopped (its last mount
// gone, the plugin deactivated the LVs): e2fsck -fn (xfs_repair -n for
// xfs) must find it clean. The app is started again after.
func (d *dockerLab) fsckClean(t *testing.T, vm, app string, vols ...string) {
	t.Helper()
	// The apps ignore SIGTERM (a shell as PID 1): killed after 1 s, not
	// Docker's 10.
	d.mustDocker(t, vm, "stop -t 1 "+app)
	for _, v := range vols {
		lv := dockerVG + "/rv-" + v
		out, err := d.lab.Run(t, vm, fmt.Sprintf(`pvscan --cache >/dev/null 2>&1; lvchange -ay %[1]s || exit 1
dev=/dev/%[1]s
case $(blkid -o value -s TYPE $dev) in
xfs) xfs_repair -n $dev ;;
*) e2fsck -fn $dev ;;
esac
rc=$?
lvchange -an %[1]s
exit $rc`, lv))
		if err != nil {
			t.Fatalf("the filesystem of %s on %s after the fault is not clean: %v\n%s", v, vm, err, out)
		}
		t.Logf("filesystem of %s clean on %s", v, vm)
	}
	d.mustDocker(t, vm, "start "+app)
	d.waitApp(t, vm, app, vm, 2*time.Minute)
}
