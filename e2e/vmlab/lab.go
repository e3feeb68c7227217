// Package vmlab runs the VM lab from Go tests: a "san" VM exporting one LUN
// over iSCSI (LIO) and host VMs ("hostA", "hostB") logged into it with
// open-iscsi, each a qemu (TCG) VM with its own kernel, so that tests get
// real LVM (device-mapper) and real SCSI-3 persistent reservations, which
// this machine's own kernel lacks.
//
// The lab is scripts/vmlab/lab.sh (images by scripts/vmlab/build.sh); this
// package only runs it and ssh. It is a plain (non-test) package so that
// other test packages can import it:
//
//	lab := vmlab.Start(t)
//	out, err := lab.Run(t, "hostA", "sg_persist -n -i -k "+lab.LUN(t, "hostA"))
//
// Inside a VM, HostGateway (10.0.2.2) is the physical machine's 127.0.0.1: a
// test's etcd listening on 127.0.0.1:PORT is 10.0.2.2:PORT for the VMs.
package vmlab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/testenv"
)

// HostGateway is the physical machine's loopback address as the VMs see it
// (qemu user networking).
const HostGateway = "10.0.2.2"

// San is the name of the VM that exports the LUN.
const San = "san"

// Timeouts of the lab's steps. Start includes a first image build.
var (
	StartTimeout = 20 * time.Minute
	BootTimeout  = 5 * time.Minute
	RunTimeout   = 3 * time.Minute
)

// Lab is a running VM lab. Its methods are safe for concurrent use.
type Lab struct {
	// Dir holds the lab's disks, consoles (NAME.log) and lab.env.
	Dir string
	// Hosts are the host VMs' names, in order.
	Hosts []string

	t      testing.TB
	script string
	env    []string // for lab.sh
	key    string
	ports  map[string]int
}

// Option changes how Start sets up the lab.
type Option func(*config)

type config struct {
	hosts  []string
	mem    int
	docker bool
	paths  int
}

// WithMemory gives each VM mib MiB of RAM (default: lab.sh's, 640).
func WithMemory(mib int) Option { return func(c *config) { c.mem = mib } }

// WithDocker has every host VM start Docker (Debian's docker.io) at boot,
// once it sees the LUN, as a host's docker.service would; the lab is ready
// when dockerd answers. Without it the VMs have docker.io but never start it.
func WithDocker() Option { return func(c *config) { c.docker = true } }

// WithPaths gives each host VM n SAN links to the san VM, each to a portal
// of its target (default 1). With 2 or more each host logs in through every
// link and reaches each LUN through a dm-multipath map over its paths
// (multipathd set up as docs/production.md says), as on a real SAN: LUN
// then names the map, Paths its disks.
func WithPaths(n int) Option { return func(c *config) { c.paths = n } }

// Start boots a lab of its own (fresh disks, free ports, in a temporary
// folder) and stops it when t ends; it fails t if the lab does not come up.
// It skips t (fails it under CI=true) when not root, in -short mode, or when
// qemu is not installed (scripts/vmlab/build.sh installs it; under CI=true
// Start runs it). RELOCVOL_VMLAB_KEEP=1 leaves the lab running and its
// folder in place, for a look after the test (scripts/vmlab/lab.sh with
// RELOCVOL_VMLAB_RUN=<folder>).
func Start(t testing.TB, opts ...Option) *Lab {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if testing.Short() && !ci {
		t.Skip("the VM lab boots three qemu VMs (minutes): skipped in -short mode")
	}
	testenv.RequireRoot(t)
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil && !ci {
		t.Skip("qemu-system-x86_64 is not installed: run scripts/vmlab/build.sh (as root) first; with CI=true this fails instead")
	}
	c := config{hosts: []string{"hostA", "hostB"}}
	for _, o := range opts {
		o(&c)
	}
	repo := testenv.RepoRoot(t)
	dir, err := os.MkdirTemp("", "relocvol-vmlab-")
	if err != nil {
		t.Fatal(err)
	}
	l := &Lab{
		Dir:    dir,
		Hosts:  c.hosts,
		t:      t,
		script: filepath.Join(repo, "scripts", "vmlab", "lab.sh"),
		ports:  map[string]int{},
	}
	l.env = []string{"RELOCVOL_VMLAB_RUN=" + dir, "RELOCVOL_VMLAB_HOSTS=" + strings.Join(c.hosts, " ")}
	if c.mem > 0 {
		l.env = append(l.env, "RELOCVOL_VMLAB_MEM="+strconv.Itoa(c.mem))
	}
	if c.docker {
		l.env = append(l.env, "RELOCVOL_VMLAB_DOCKER=on")
	}
	if c.paths > 0 {
		l.env = append(l.env, "RELOCVOL_VMLAB_PATHS="+strconv.Itoa(c.paths))
	}
	keep := os.Getenv("RELOCVOL_VMLAB_KEEP") == "1"
	if !keep {
		// lab.sh leaves a watcher that stops the VMs should this process
		// die without its cleanups (go test -timeout, a signal).
		l.env = append(l.env, "RELOCVOL_VMLAB_OWNER_PID="+strconv.Itoa(os.Getpid()), "RELOCVOL_VMLAB_OWNER_CLEAN=1")
	}
	t.Cleanup(func() { l.stop(keep) })

	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	if err := l.labsh(ctx, "start"); err != nil {
		t.Fatalf("start the VM lab: %v", err)
	}
	if err := l.loadEnv(); err != nil {
		t.Fatal(err)
	}
	t.Logf("VM lab up in %s (%s)", time.Since(t0).Round(time.Second), dir)
	return l
}

func (l *Lab) stop(keep bool) {
	if keep {
		l.t.Logf("RELOCVOL_VMLAB_KEEP=1: the lab keeps running: RELOCVOL_VMLAB_RUN=%s %s status|stop|clean", l.Dir, l.script)
		return
	}
	if l.t.Failed() {
		l.logConsoles()
	}
	for _, vm := range l.VMs() {
		l.closeSSH(vm)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := l.labsh(ctx, "clean"); err != nil {
		l.t.Errorf("stop the VM lab: %v", err)
	}
	_ = os.RemoveAll(l.Dir)
}

// logConsoles sends the end of each VM's serial console to t.Logf: enough
// to tell how a boot went, short enough that the test's own failure, logged
// before these, stays near the end of its output.
func (l *Lab) logConsoles() {
	for _, vm := range l.VMs() {
		b, err := os.ReadFile(filepath.Join(l.Dir, vm+".log"))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		l.t.Logf("---- console of %s (last %d lines of %s) ----\n%s", vm, len(lines), filepath.Join(l.Dir, vm+".log"), strings.Join(lines, "\n"))
	}
}

// labsh runs lab.sh with args, its output to t.Logf.
func (l *Lab) labsh(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "bash", append([]string{l.script}, args...)...)
	cmd.Env = append(append(os.Environ(), "LC_ALL=C"), l.env...)
	cmd.Stdin = nil
	w := testenv.LogWriter{T: l.t, Prefix: "lab.sh: "}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("lab.sh %s: %w (%v)", strings.Join(args, " "), ctx.Err(), err)
		}
		return fmt.Errorf("lab.sh %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// loadEnv reads lab.env (written by lab.sh start): the key and ssh ports.
func (l *Lab) loadEnv() error {
	f, err := os.Open(filepath.Join(l.Dir, "lab.env"))
	if err != nil {
		return fmt.Errorf("read the lab's settings: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		switch {
		case k == "LAB_KEY":
			l.key = v
		case strings.HasPrefix(k, "SSH_PORT_"):
			p, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("lab.env: %s=%q: %w", k, v, err)
			}
			l.ports[strings.TrimPrefix(k, "SSH_PORT_")] = p
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	for _, vm := range l.VMs() {
		if l.ports[vm] == 0 {
			return fmt.Errorf("lab.env has no ssh port for %s", vm)
		}
	}
	if l.key == "" {
		return errors.New("lab.env has no LAB_KEY")
	}
	return nil
}

// VMs are the lab's VMs: the san, then the hosts.
func (l *Lab) VMs() []string { return append([]string{San}, l.Hosts...) }

// SSHArgs are the arguments of ssh (after "ssh") that log into vm as root,
// for commands a test builds itself.
func (l *Lab) SSHArgs(vm string) []string {
	return append(l.sshOpts(), "-p", strconv.Itoa(l.ports[vm]), "root@127.0.0.1")
}

// sshOpts share one connection per VM between the commands run on it (a
// master that stays 60 s after its last command): under TCG a VM's sshd
// takes a second or two to set up each new connection, a command on an
// open one a few hundred milliseconds, and the lab's tests run hundreds.
// A VM that dies takes its master with it (qemu's forwarded socket
// closes); the next command starts a new one.
func (l *Lab) sshOpts() []string {
	return []string{"-i", l.key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
		"-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=6",
		"-o", "ControlMaster=auto", "-o", "ControlPath=" + l.controlPath(), "-o", "ControlPersist=60"}
}

// controlPath is where the VM's shared connection listens (%p: its port).
func (l *Lab) controlPath() string { return filepath.Join(l.Dir, "ssh-%p") }

// closeSSH stops vm's shared connection, if one runs: after a power loss
// (it may not have noticed yet) and when the lab stops.
func (l *Lab) closeSSH(vm string) {
	if l.ports[vm] == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = exec.CommandContext(ctx, "ssh", "-o", "ControlPath="+l.controlPath(), "-p", strconv.Itoa(l.ports[vm]), "-O", "exit", "root@127.0.0.1").Run()
}

// Result is what a command run on a VM did.
type Result struct {
	Stdout, Stderr string
	// ExitCode is the command's exit status (255 also when ssh fails).
	ExitCode int
}

// Combined is stdout then stderr.
func (r Result) Combined() string { return r.Stdout + r.Stderr }

// Exec runs the shell command cmd on vm as root over ssh. Its error is only
// for what kept the command from finishing (unknown VM, ctx done); a
// command that fails is an error-free Result with a non-zero ExitCode.
func (l *Lab) Exec(ctx context.Context, vm, cmd string) (Result, error) {
	if l.ports[vm] == 0 {
		return Result{}, fmt.Errorf("no VM %q in the lab (%s)", vm, strings.Join(l.VMs(), ", "))
	}
	c := exec.CommandContext(ctx, "ssh", append(l.SSHArgs(vm), "LC_ALL=C; "+cmd)...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	c.WaitDelay = 5 * time.Second
	err := c.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return r, fmt.Errorf("on %s: %q: %w", vm, cmd, ctx.Err())
	case errors.As(err, &ee):
		r.ExitCode = ee.ExitCode()
	case err != nil:
		return r, fmt.Errorf("on %s: %q: %w", vm, cmd, err)
	}
	return r, nil
}

// CmdError is a command that ran on a VM and failed.
type CmdError struct {
	VM, Cmd  string
	ExitCode int
	Output   string
}

func (e *CmdError) Error() string {
	return fmt.Sprintf("on %s: %q: exit %d: %s", e.VM, e.Cmd, e.ExitCode, strings.TrimSpace(e.Output))
}

// Run runs the shell command cmd on vm (within RunTimeout) and returns its
// combined output; a non-zero exit is a *CmdError. The command and its
// output go to t.Logf.
func (l *Lab) Run(t testing.TB, vm, cmd string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), RunTimeout)
	defer cancel()
	at := time.Now()
	r, err := l.Exec(ctx, vm, cmd)
	out := r.Combined()
	// The time each command took: where a slow or failing step spent it.
	t.Logf("%s# %s\n%s[exit %d, %s]", vm, cmd, out, r.ExitCode, time.Since(at).Round(10*time.Millisecond))
	if err != nil {
		return out, err
	}
	if r.ExitCode != 0 {
		return out, &CmdError{VM: vm, Cmd: cmd, ExitCode: r.ExitCode, Output: out}
	}
	return out, nil
}

// MustRun is Run that fails t on error.
func (l *Lab) MustRun(t testing.TB, vm, cmd string) string {
	t.Helper()
	out, err := l.Run(t, vm, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// LUN is the shared LUN's device on host vm (e.g. /dev/sda, or
// /dev/mapper/mpatha in a lab WithPaths), as its role script found it after
// the iSCSI logins.
func (l *Lab) LUN(t testing.TB, vm string) string {
	t.Helper()
	return strings.TrimSpace(l.MustRun(t, vm, "cat /run/relocvol/lun"))
}

// Paths are the disks through which host vm reaches the shared LUN, one per
// SAN link (the paths of its multipath map in a lab WithPaths).
func (l *Lab) Paths(t testing.TB, vm string) []string {
	t.Helper()
	return strings.Fields(l.MustRun(t, vm, "relocvol-lun --paths 0"))
}

// AddLUN exports another LUN from the san VM while the lab runs (LUN n,
// size bytes, backed by a sparse file on the san VM's disk), as when a
// storage admin adds a LUN for a VG to grow on; every host rescans its
// iSCSI sessions. It returns each host's device of the new LUN (its
// multipath map in a lab WithPaths). A host that boots again logs in to
// both LUNs by itself.
func (l *Lab) AddLUN(t testing.TB, n int, size int64) map[string]string {
	t.Helper()
	l.MustRun(t, San, fmt.Sprintf(`set -e
. /etc/relocvol-vmlab.conf
T=/sys/kernel/config/target
so=$T/core/fileio_%[1]d/lun%[1]d
truncate -s %[2]d /var/tmp/lun%[1]d.img
mkdir -p $so
echo "fd_dev_name=/var/tmp/lun%[1]d.img,fd_dev_size=%[2]d" >$so/control
# Its own unit serial (hex digits): LUN 0's with its last byte n+1.
printf '%%s%%02x' "${VMLAB_LUN_SERIAL%%??}" %[3]d >$so/wwn/vpd_unit_serial
echo 1 >$so/enable
tpg=$T/iscsi/$VMLAB_TARGET_IQN/tpgt_1
mkdir -p $tpg/lun/lun_%[1]d
ln -s $so $tpg/lun/lun_%[1]d/lun%[1]d
for acl in $tpg/acls/*; do
	mkdir -p $acl/lun_%[1]d
	ln -s $tpg/lun/lun_%[1]d $acl/lun_%[1]d/lun%[1]d
done`, n, size, n+1))
	devs := map[string]string{}
	for _, h := range l.Hosts {
		// The device is the last line of stdout (MustRun adds stderr).
		out := strings.Fields(l.MustRun(t, h, fmt.Sprintf("iscsiadm -m session --rescan >/dev/null 2>&1; relocvol-lun %d 2>/dev/null", n)))
		if len(out) > 0 {
			devs[h] = out[len(out)-1]
		}
		if devs[h] == "" || !strings.HasPrefix(devs[h], "/dev/") {
			t.Fatalf("%s does not see LUN %d after a rescan", h, n)
		}
	}
	return devs
}

// Kill is a power loss of vm: its qemu is killed (SIGKILL); its disk stays.
func (l *Lab) Kill(vm string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := l.labsh(ctx, "kill", vm)
	l.closeSSH(vm)
	return err
}

// Boot starts vm again on its disk and waits until it is ready (a host has
// logged into the target again and sees the LUN; in a lab WithDocker, its
// dockerd answers).
func (l *Lab) Boot(vm string) error {
	ctx, cancel := context.WithTimeout(context.Background(), BootTimeout)
	defer cancel()
	return l.labsh(ctx, "boot", vm)
}

// BootHoldingDocker is Boot, except that host vm does not start Docker:
// StartDocker does, when the test has looked at the host without it.
func (l *Lab) BootHoldingDocker(vm string) error {
	ctx, cancel := context.WithTimeout(context.Background(), BootTimeout)
	defer cancel()
	return l.labsh(ctx, "boot", "--hold-docker", vm)
}

// StartDocker starts Docker on host vm, as the boot does in a lab
// WithDocker, and waits until dockerd answers (its plugins enabled).
func (l *Lab) StartDocker(t testing.TB, vm string) {
	t.Helper()
	l.MustRun(t, vm, "relocvol-docker start")
}

// CopyTo copies the local file to remote on vm (scp, modes kept).
func (l *Lab) CopyTo(vm, local, remote string) error {
	return l.scp(vm, local, "root@127.0.0.1:"+remote)
}

func (l *Lab) scp(vm, from, to string) error {
	if l.ports[vm] == 0 {
		return fmt.Errorf("no VM %q in the lab", vm)
	}
	ctx, cancel := context.WithTimeout(context.Background(), RunTimeout)
	defer cancel()
	args := append(l.sshOpts(), "-q", "-p", "-P", strconv.Itoa(l.ports[vm]), from, to)
	out, err := exec.CommandContext(ctx, "scp", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("scp %s %s (%s): %w: %s", from, to, vm, err, bytes.TrimSpace(out))
	}
	return nil
}
