// Package sanlab proves the production path in the VM lab, as an operator
// runs it: two host VMs, each its own kernel, with Docker (Debian's
// docker.io) and the managed plugin installed from a registry with `docker
// plugin install`, the lvm backend and scsi3 fencing on iSCSI LUNs with
// real SCSI-3 persistent reservations, each reached through two portals
// and a dm-multipath map as on a real SAN, coordinated by a real etcd in
// the test process. Everything goes through the docker and relocvol CLIs on
// the VMs.
package sanlab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/e2e/vmlab"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

// The plugin as the VMs install it, and the app's image.
const (
	driver    = "relocvol" // the alias: docker volume create -d relocvol
	appImage  = "relocvol-lab/busybox:1"
	appName   = "writer"
	sideApp   = "side" // a second app, on a LUN added later
	vmMemory  = 1024   // MiB: dockerd, containerd, the plugin and an app under TCG
	dockerVG  = "rvdocker"
	volSize   = "64M"
	pluginRef = "relocvol:lab" // repository:tag in the test's registry
	ttl       = 6              // seconds of lease: TCG VMs are slow, a tighter lease would flap
	perHost   = 4              // volumes each host creates at once, later contended
	// paths: SAN links per host: each LUN is a dm-multipath map over two
	// iSCSI sessions, as on a real SAN.
	paths = 2
)

// dockerLab is the VM lab with Docker on each host VM and the managed
// plugin installed from a registry on the physical machine, on an etcd
// there: the production path as an operator sets it up.
type dockerLab struct {
	lab *vmlab.Lab
	st  *store.Store
	// etcdTLS are the files the clients of the test's etcd need (it asks
	// for a certificate, as a production etcd must); regPort is the port of
	// the test's registry on vmlab.HostGateway (plain HTTP, on the same
	// machine: the VMs set their clocks from its Date).
	etcdTLS store.TLSFiles
	regPort string
	// etcdPort is the test's etcd's client port on vmlab.HostGateway (a
	// partition drops a host's packets to it).
	etcdPort string
	// fencedOnPurpose is, by host, when a step that made it self-fence
	// (the doctor's host without its key) was over.
	fencedOnPurpose map[string]time.Time
}

// startDockerLab publishes the plugin (scripts/publish.sh, the operator's
// way) to a registry of the test's own while the VMs boot, puts the shared
// VG on the LUN and installs the plugin on every host VM with
// `docker plugin install`, set to lvm + scsi3 on the test's etcd.
func startDockerLab(t *testing.T) *dockerLab {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireDocker(t)
	root := testenv.RepoRoot(t)
	testenv.EnsureRegistry(t, root)
	reg := testenv.StartRegistry(t, testenv.FreePorts(t, 1))
	regPort := reg[strings.LastIndex(reg, ":")+1:]

	// Building the plugin and booting the VMs each take minutes: at once.
	published := make(chan error, 1)
	go func() { published <- publishPlugin(t, root, reg+"/"+pluginRef) }()

	// The hosts' etcd, as production's must be: TLS, for client
	// certificates only (write access to etcd is root on every host). The
	// VMs reach it at the host's gateway address.
	eps, etcdTLS := testenv.EtcdTLS(t, vmlab.HostGateway)
	etcdPort := eps[0][strings.LastIndex(eps[0], ":")+1:]
	cli, err := store.Dial(context.Background(), eps, etcdTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	d := &dockerLab{st: store.New(cli, "/relocvol"), regPort: regPort, etcdPort: etcdPort, etcdTLS: etcdTLS, fencedOnPurpose: map[string]time.Time{}}
	d.lab = vmlab.Start(t, vmlab.WithDocker(), vmlab.WithMemory(vmMemory), vmlab.WithPaths(paths))
	// On a failure, what each host's plugin said last (before the lab's
	// own clean-up stops the VMs).
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, h := range d.lab.Hosts {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			r, err := d.lab.Exec(ctx, h, "tail -n 200 /var/log/dockerd.log | cut -c1-500; free -m")
			cancel()
			t.Logf("---- last lines of dockerd's log (the plugin's) on %s (%v) ----\n%s", h, err, r.Combined())
		}
	})
	image := busyboxImage(t)
	if err := <-published; err != nil {
		t.Fatal(err)
	}

	// The operator's one-time setup of the shared VG, from one host.
	lun := d.lab.LUN(t, "hostA")
	d.lab.MustRun(t, "hostA", fmt.Sprintf("pvcreate -y %s && vgcreate %s %s && vgchange --setautoactivation n %s", lun, dockerVG, lun, dockerVG))
	d.lab.MustRun(t, "hostB", "pvscan --cache >/dev/null; vgs "+dockerVG)

	var wg sync.WaitGroup
	errs := make(chan error, len(d.lab.Hosts))
	for _, h := range d.lab.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.install(t, h, vmlab.HostGateway+":"+regPort+"/"+pluginRef, etcdPort, image); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return d
}

// install installs the plugin on host vm from the registry, with settings
// on the command line as publish.sh tells operators, the CLI from the
// plugin's own rootfs, and the app's image; then syncs, as the test cuts
// power later.
func (d *dockerLab) install(t *testing.T, vm, ref, etcdPort, image string) error {
	if err := d.lab.CopyTo(vm, image, "/root/app-image.tar"); err != nil {
		return err
	}
	// The host's etcd client certificate, where the plugin's state mount
	// shows it, for root only.
	if _, err := d.lab.Run(t, vm, "mkdir -p -m 0700 /var/lib/relocvol/tls"); err != nil {
		return err
	}
	for from, to := range map[string]string{d.etcdTLS.CA: "ca.pem", d.etcdTLS.Cert: "client.pem", d.etcdTLS.Key: "client-key.pem"} {
		if err := d.lab.CopyTo(vm, from, "/var/lib/relocvol/tls/"+to); err != nil {
			return err
		}
	}
	start := time.Now()
	// The pull and unpacking of the plugin's layers takes minutes under TCG.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// Installed and enabled in one command, as the README tells operators:
	// the plugin's start-up (the tools, the VG, the LUN's registration)
	// takes longer than the 12 s Docker waits for a plugin's socket on these
	// emulated hosts, so the plugin answers it at once (plugin.Starting).
	r, err := d.lab.Exec(ctx, vm, fmt.Sprintf(`set -e
docker plugin install --grant-all-permissions --alias %s %s \
	RELOCVOL_HOST=%s RELOCVOL_BACKEND=lvm RELOCVOL_LVM_VG=%s RELOCVOL_FENCING=scsi3 \
	RELOCVOL_ETCD_ENDPOINTS=https://%s:%s RELOCVOL_ETCD_CA=/var/lib/relocvol/tls/ca.pem \
	RELOCVOL_ETCD_CERT=/var/lib/relocvol/tls/client.pem RELOCVOL_ETCD_KEY=/var/lib/relocvol/tls/client-key.pem \
	RELOCVOL_LEASE_TTL=%ds RELOCVOL_LOG_LEVEL=debug
cp "/var/lib/docker/plugins/$(docker plugin inspect -f '{{.Id}}' %s)/rootfs/usr/bin/relocvol" /usr/local/bin/relocvol
docker import /root/app-image.tar %s >/dev/null
sync`, driver, ref, vm, dockerVG, vmlab.HostGateway, etcdPort, ttl, driver, appImage))
	t.Logf("%s: docker plugin install …\n%s[exit %d]", vm, r.Combined(), r.ExitCode)
	if err == nil && r.ExitCode != 0 {
		err = fmt.Errorf("exit %d", r.ExitCode)
	}
	if err != nil {
		return fmt.Errorf("install the plugin on %s: %w\n%s", vm, err, d.pluginLog(t, vm, 40))
	}
	installed := time.Since(start)
	// Ready: joined, its API (which starts with the host) answering.
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(time.Second) {
		out, err := d.quiet(vm, "relocvol local --json")
		var l api.Local
		if err == nil && json.Unmarshal([]byte(out), &l) == nil && l.Alive {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the plugin on %s is not ready 3 minutes after its install: %v %s\n%s", vm, err, out, d.pluginLog(t, vm, 40))
		}
	}
	t.Logf("%s: plugin installed from %s and enabled in %s, ready in %s", vm, ref, installed.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
	return nil
}

// publishPlugin builds the plugin and pushes it to ref with
// scripts/publish.sh, then removes the local copy publish.sh leaves.
func publishPlugin(t *testing.T, root, ref string) error {
	start := time.Now()
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "publish.sh"), ref)
	cmd.Env = append(os.Environ(), "RELOCVOL_REPO="+root, "RELOCVOL_IMAGE=relocvol-rootfs:sanlab")
	w := testenv.LogWriter{T: t, Prefix: "publish: "}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("scripts/publish.sh %s: %w", ref, err)
	}
	if out, err := exec.Command("docker", "plugin", "rm", "-f", ref).CombinedOutput(); err != nil {
		t.Logf("remove the local %s: %v %s", ref, err, out)
	}
	t.Logf("plugin built and pushed to %s in %s", ref, time.Since(start).Round(time.Second))
	return nil
}

// busyboxImage makes the app's image as a tarball for `docker import`:
// Debian's static busybox and its applets, a megabyte (no image can be
// pulled, and a Debian image is slow to load into TCG VMs).
func busyboxImage(t *testing.T) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox (busybox-static, installed by scripts/vmlab/build.sh): %v", err)
	}
	tree := filepath.Join(t.TempDir(), "tree")
	if err := os.MkdirAll(filepath.Join(tree, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("cp", bb, filepath.Join(tree, "bin", "busybox")).CombinedOutput()
	if err != nil {
		t.Fatalf("copy busybox: %v %s", err, out)
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" {
			if err := os.Symlink("busybox", filepath.Join(tree, "bin", applet)); err != nil {
				t.Fatal(err)
			}
		}
	}
	tarball := filepath.Join(t.TempDir(), "app-image.tar")
	if out, err := exec.Command("tar", "-C", tree, "--numeric-owner", "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	return tarball
}

// docker runs the docker CLI on vm with args (a shell command line).
func (d *dockerLab) docker(t *testing.T, vm, args string) (string, error) {
	t.Helper()
	out, err := d.lab.Run(t, vm, "docker "+args)
	return strings.TrimSpace(out), err
}

func (d *dockerLab) mustDocker(t *testing.T, vm, args string) string {
	t.Helper()
	out, err := d.docker(t, vm, args)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// quiet runs the shell command cmd on vm within a minute, without logging
// it (for what the test polls), and returns its stdout; a command that
// fails is an error with its output.
func (d *dockerLab) quiet(vm, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := d.lab.Exec(ctx, vm, cmd)
	if err == nil && r.ExitCode != 0 {
		err = fmt.Errorf("on %s: %q: exit %d: %s", vm, cmd, r.ExitCode, strings.TrimSpace(r.Combined()))
	}
	return r.Stdout, err
}

// apps asks vm's relocvol API (the CLI in the VM) for the apps.
func (d *dockerLab) apps(t *testing.T, vm string) ([]api.App, error) {
	t.Helper()
	out, err := d.quiet(vm, "relocvol apps --json")
	if err != nil {
		return nil, err
	}
	var apps []api.App
	if err := json.Unmarshal([]byte(out), &apps); err != nil {
		return nil, fmt.Errorf("relocvol apps --json on %s: %w: %q", vm, err, out)
	}
	return apps, nil
}

// waitApp waits until vm's API shows app running on host, not moving.
func (d *dockerLab) waitApp(t *testing.T, vm, app, host string, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, app+" running on "+host+" (asked "+vm+")", func() error {
		apps, err := d.apps(t, vm)
		if err != nil {
			return err
		}
		for _, a := range apps {
			if a.Name == app && a.ActualHost == host && a.DesiredHost == host && a.Relocation == nil {
				return nil
			}
		}
		return fmt.Errorf("apps %+v", apps)
	})
}

// readLog is the writer's log, read in the running writer on vm.
func (d *dockerLab) readLog(t *testing.T, vm string) string {
	t.Helper()
	out, err := d.quiet(vm, "docker exec "+appName+" cat /data/log")
	if err != nil {
		t.Fatalf("read the log: %v", err)
	}
	return out
}

// lastLine is the number and writer of the log's last line on vm.
func (d *dockerLab) lastLine(t *testing.T, vm string) (string, int, error) {
	out, err := d.quiet(vm, "docker exec "+appName+" tail -n 1 /data/log")
	if err != nil {
		return "", 0, fmt.Errorf("tail the log: %w", err)
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return "", 0, fmt.Errorf("last line %q", out)
	}
	n, err := strconv.Atoi(f[1])
	return f[0], n, err
}

// waitLines waits until the log on vm has at least min lines, the last
// written by vm.
func (d *dockerLab) waitLines(t *testing.T, vm string, min int) int {
	t.Helper()
	var n int
	testenv.Eventually(t, 2*time.Minute, fmt.Sprintf("%d lines on %s, the last its own", min, vm), func() error {
		who, last, err := d.lastLine(t, vm)
		if err != nil {
			return err
		}
		if who != vm || last < min {
			return fmt.Errorf("last line %s %d", who, last)
		}
		n = last
		return nil
	})
	return n
}

// checkLog checks the whole log on vm: every line intact, the writers in
// order, never two at once; it returns each writer's number of lines.
func (d *dockerLab) checkLog(t *testing.T, vm string, order ...string) []int {
	t.Helper()
	sizes, err := testenv.CheckWriterLog(d.readLog(t, vm), order)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("log on %s intact: writers %v with %v lines", vm, order, sizes)
	return sizes
}

// pluginLog is the end of the plugin's log on vm (dockerd logs it).
func (d *dockerLab) pluginLog(t *testing.T, vm string, lines int) string {
	out, _ := d.quiet(vm, fmt.Sprintf("grep -a 'plugin=' /var/log/dockerd.log | tail -n %d | cut -c1-400", lines))
	return out
}

// clockOffset estimates how far vm's clock is ahead of this machine's: the
// VMs' clocks start from qemu's emulated RTC, to the second.
func (d *dockerLab) clockOffset(t *testing.T, vm string) time.Duration {
	t.Helper()
	best := time.Hour
	var off time.Duration
	for range 3 {
		t0 := time.Now()
		out := strings.TrimSpace(d.lab.MustRun(t, vm, "date +%s.%N"))
		rtt := time.Since(t0)
		f, err := strconv.ParseFloat(out, 64)
		if err != nil {
			t.Fatalf("date on %s: %q", vm, out)
		}
		if rtt < best {
			best = rtt
			off = time.Unix(0, int64(f*1e9)).Sub(t0.Add(rtt / 2))
		}
	}
	return off
}

// shq quotes s for a POSIX shell.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
