package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/testenv"
)

const (
	pluginRef = "relocvol-e2e:latest" // isolated from a relocvol:latest set up by setup.sh
	driver    = "relocvol-e2e"
	image     = "debian:bookworm-slim" // made offline by scripts/lib.sh
	vol       = "e2e-db"
)

// dockerdLog is where scripts/lib.sh has dockerd log.
const dockerdLog = "/var/log/relocvol-dockerd.log"

// TestManagedPlugin installs the real plugin in the real engine and walks
// an operator's first session, a second host's refused and granted mounts,
// a plugin restart under a running container, and the cleanup.

func TestManagedPlugin(t *testing.T) {
	testenv.RequireDocker(t)
	root := testenv.RepoRoot(t)
	dirs := hostDirs(t)
	san := dirs.san
	port := testenv.FreePorts(t, 2)
	apiPort := testenv.FreePorts(t, 2)

	buildStart := time.Now()
	t.Cleanup(func() { removePlugin(t) })
	buildPlugin(t, root, pluginRef)
	t.Logf("plugin built and created in %s", time.Since(buildStart).Round(time.Second))
	checkRootfsTools(t, pluginRef)
	mustDocker(t, append(append([]string{"plugin", "set", pluginRef}, dirs.sources()...),
		"RELOCVOL_HOST=e2e-host-a",
		fmt.Sprintf("RELOCVOL_EMBEDDED_ETCD=127.0.0.1:%d", port),
		fmt.Sprintf("RELOCVOL_API_ADDR=127.0.0.1:%d", apiPort),
		"RELOCVOL_LOG_LEVEL=debug")...)
	mustDocker(t, "plugin", "enable", pluginRef)
	// Root's CLI reads the plugin's API token from its state folder, which
	// is a temporary one here, not /var/lib/relocvol.
	t.Setenv("RELOCVOL_API_TOKEN_FILE", filepath.Join(dirs.state, "api-token"))

	// ---- first session: create, ls, inspect ----
	mustDocker(t, "volume", "create", "-d", driver, "-o", "size=64M", vol)
	if ls := mustDocker(t, "volume", "ls", "--format", "{{.Driver}} {{.Name}}"); !strings.Contains(ls, pluginRef+" "+vol) {
		t.Fatalf("docker volume ls does not list %s with driver %s:\n%s", vol, pluginRef, ls)
	}
	st := inspect(t, vol)
	for k, want := range map[string]string{"backend": "loop", "size": "64M", "fs": "ext4", "owner": "", "state": "ready", "createdBy": "e2e-host-a"} {
		if fmt.Sprint(st[k]) != want {
			t.Errorf("inspect Status[%s] = %v, want %s", k, st[k], want)
		}
	}

	// ---- bad input through the CLI: clear errors, nothing created ----
	for _, bad := range []struct{ args, want []string }{
		{[]string{"-o", "size=12QB", "e2e-bad"}, []string{`invalid size "12QB": use a positive number with K, M, G or T`}},
		{[]string{"-o", "colour=blue", "e2e-bad"}, []string{`unknown option "colour": valid options are fs, size`}},
		{[]string{"-o", "fs=zfs", "e2e-bad"}, []string{`unsupported fs "zfs": use one of ext4, xfs`}},
		{[]string{"x"}, []string{`invalid volume name "x"`}},
	} {
		out, err := docker(t, append([]string{"volume", "create", "-d", driver}, bad.args...)...)
		if err == nil {
			t.Errorf("docker volume create %v was accepted", bad.args)
		}
		for _, w := range bad.want {
			if !strings.Contains(out, w) {
				t.Errorf("docker volume create %v said %q, want %q", bad.args, out, w)
			}
		}
	}
	if ls := mustDocker(t, "volume", "ls", "-q"); strings.Contains(ls, "e2e-bad") {
		t.Errorf("a rejected create left a volume: %s", ls)
	}
	if files, _ := filepath.Glob(filepath.Join(san, "*")); !onlyVolume(files, san, vol) || !slices.Contains(files, filepath.Join(san, ".relocvol-cluster")) || !slices.Contains(files, filepath.Join(san, ".relocvol-app-key")) {
		t.Errorf("SAN folder holds %v, want only %s.img (a link to its create's image %[2]s.img.ID), the cluster's mark .relocvol-cluster and its app key .relocvol-app-key", files, vol)
	}
	if m := testenv.Perm(t, filepath.Join(san, ".relocvol-app-key")); m != 0o600 {
		t.Errorf("the app key file has mode %o, want 600", m)
	}

	// ---- host B: a second relocvol on the same etcd and SAN folder ----
	b := startHostB(t, root, dirs, port)
	// ---- host C: on an etcd of its own (the embedded one), the same SAN
	// folder would be a second cluster: refused at start ----
	refusedOnOtherCluster(t, b.bin, san)
	var got struct {
		Volume struct{ Status map[string]any }
	}
	if err := b.call("Get", map[string]string{"Name": vol}, &got); err != nil {
		t.Fatalf("Get on host B: %v", err)
	}
	if got.Volume.Status["backend"] != "loop" || got.Volume.Status["createdBy"] != "e2e-host-a" {
		t.Fatalf("host B sees %v", got.Volume.Status)
	}

	// ---- a container writes, another uses the volume too ----
	t.Cleanup(func() { _, _ = docker(t, "rm", "-f", "e2e-writer", "e2e-idle") })
	mustDocker(t, "run", "-d", "--name", "e2e-writer", "-v", vol+":/data", image, "sh", "-c",
		// It goes on from the last line after a restart (checkGrow's).
		`i=$(cat /data/log 2>/dev/null | wc -l); while :; do i=$((i+1)); echo "line $i" >> /data/log; sync; sleep 0.1; done`)
	mustDocker(t, "run", "-d", "--name", "e2e-idle", "-v", vol+":/data", image, "sleep", "3600")
	st = inspect(t, vol)
	if st["owner"] != "e2e-host-a" || fmt.Sprint(st["mounts"]) != "2" || st["ownerAlive"] != true {
		t.Fatalf("inspect while two containers use it: %v", st)
	}

	// ---- removal of a volume in use is refused ----
	if out, err := docker(t, "volume", "rm", vol); err == nil || !strings.Contains(out, "in use") {
		t.Fatalf("docker volume rm of a volume in use: err %v, output %q", err, out)
	}

	// ---- the controller's API, CLI, metrics and status page ----
	checkAPI(t, b.bin, fmt.Sprintf("http://127.0.0.1:%d", apiPort), dirs)
	checkDoctor(t, b.bin, fmt.Sprintf("http://127.0.0.1:%d", apiPort))
	checkStatusPage(t, fmt.Sprintf("http://127.0.0.1:%d", apiPort), dirs.token(t, "api-token"))
	checkLocalUsers(t, dirs, port, fmt.Sprintf("http://127.0.0.1:%d", apiPort), b.bin)

	// ---- host B is refused while A holds it ----
	err := b.call("Mount", map[string]string{"Name": vol, "ID": "b1"}, nil)
	if err == nil || !strings.Contains(err.Error(), `volume "e2e-db" is in use on host e2e-host-a (alive`) {
		t.Fatalf("Mount on host B while A holds it: %v", err)
	}

	// ---- the plugin restarts under the running containers ----
	before := lineCount(t, "e2e-writer")
	// The host sees the one mount at every peer of the propagated-mount
	// folder (Docker binds it more than once), so compare, don't assume 1.
	mountsBefore := hostMounts(t, vol)
	if mountsBefore == 0 {
		t.Fatalf("the volume is not mounted under the plugin's propagated mount")
	}
	mustDocker(t, "plugin", "disable", "-f", pluginRef)
	mustDocker(t, "plugin", "enable", pluginRef)
	testenv.Eventually(t, 30*time.Second, "volume inspect after re-enable", func() error {
		_, err := docker(t, "volume", "inspect", vol)
		return err
	})
	st = inspect(t, vol)
	if st["owner"] != "e2e-host-a" || fmt.Sprint(st["mounts"]) != "2" {
		t.Fatalf("inspect after the plugin restart: %v, want owner e2e-host-a with 2 mounts", st)
	}
	if n := hostMounts(t, vol); n != mountsBefore {
		t.Fatalf("after the plugin restart the host has %d mounts of the volume, %d before: mounted twice or lost", n, mountsBefore)
	}
	testenv.Eventually(t, 10*time.Second, "the writer keeps writing after the plugin restart", func() error {
		if n := lineCount(t, "e2e-writer"); n <= before+5 {
			return fmt.Errorf("%d lines, had %d before the restart", n, before)
		}
		return nil
	})

	// ---- counts: one container stops, the other keeps the volume ----
	mustDocker(t, "rm", "-f", "e2e-idle")
	st = inspect(t, vol)
	if st["owner"] != "e2e-host-a" || fmt.Sprint(st["mounts"]) != "1" {
		t.Fatalf("inspect after one of two containers stopped: %v", st)
	}
	waitMoreLines(t, "e2e-writer")

	// ---- docker cp into and out of the running container: Docker mounts
	// the container's mount ID again and unmounts it after the copy ----
	logFrom := dockerdLogSize(t)
	src := filepath.Join(t.TempDir(), "copied-in")
	if err := os.WriteFile(src, []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustDocker(t, "cp", src, "e2e-writer:/data/copied-in")
	out := filepath.Join(t.TempDir(), "copied-out")
	mustDocker(t, "cp", "e2e-writer:/data/copied-in", out)
	if b, err := os.ReadFile(out); err != nil || string(b) != "from the host\n" {
		t.Fatalf("docker cp out of the container: %q %v", b, err)
	}
	st = inspect(t, vol)
	if st["owner"] != "e2e-host-a" || fmt.Sprint(st["mounts"]) != "1" {
		t.Fatalf("inspect after docker cp: %v, want owner e2e-host-a with 1 mount", st)
	}
	if n := hostMounts(t, vol); n == 0 {
		t.Fatal("docker cp left the volume unmounted under the running container")
	}
	waitMoreLines(t, "e2e-writer")

	// ---- online grow under the running writer ----
	checkGrow(t, b.bin, fmt.Sprintf("http://127.0.0.1:%d", apiPort))

	mustDocker(t, "stop", "-t", "1", "e2e-writer")
	st = inspect(t, vol)
	if st["owner"] != "" || fmt.Sprint(st["mounts"]) != "0" {
		t.Fatalf("inspect after the last container stopped: %v, want released", st)
	}
	if bad := dockerdLogSince(t, logFrom, "VolumeDriver.Unmount", "nothing to unmount", "VolumeDriver.Mount"); bad != "" {
		t.Fatalf("dockerd logged a volume error around docker cp and stop:\n%s", bad)
	}
	mustDocker(t, "rm", "e2e-writer")
	if n := hostMounts(t, vol); n != 0 {
		t.Fatalf("still mounted %d times after the last container stopped", n)
	}

	// ---- a second container reads every line back ----
	data := mustDocker(t, "run", "--rm", "-v", vol+":/data", image, "cat", "/data/log")
	last := checkLines(t, data)
	if last < before+5 {
		t.Fatalf("only %d lines read back, %d were there before the restart", last, before)
	}

	// ---- host B may mount it now, and sees the same data ----
	var mr struct{ Mountpoint string }
	testenv.Eventually(t, 30*time.Second, "Mount on host B once A released it", func() error {
		return b.call("Mount", map[string]string{"Name": vol, "ID": "b1"}, &mr)
	})
	onB, err := os.ReadFile(filepath.Join(mr.Mountpoint, "log"))
	if err != nil || string(onB) != data+"\n" {
		t.Fatalf("host B reads %d bytes (err %v), A wrote %d", len(onB), err, len(data)+1)
	}
	st = inspect(t, vol)
	if st["owner"] != "e2e-host-b" || fmt.Sprint(st["epoch"]) == "1" {
		t.Fatalf("inspect while host B holds it: %v", st)
	}
	// Docker on A has no local user, so the plugin decides: refused, naming B.
	if out, err := docker(t, "volume", "rm", vol); err == nil || !strings.Contains(out, `volume "e2e-db" is in use on host e2e-host-b`) {
		t.Fatalf("docker volume rm while host B holds it: err %v, output %q", err, out)
	}
	if err := b.call("Unmount", map[string]string{"Name": vol, "ID": "b1"}, nil); err != nil {
		t.Fatalf("Unmount on host B: %v", err)
	}
	mustDocker(t, "volume", "rm", vol)
	if _, err := os.Stat(filepath.Join(san, vol+".img")); !os.IsNotExist(err) {
		t.Fatalf("image file left after docker volume rm: %v", err)
	}
	if out, _ := exec.Command("losetup", "-j", filepath.Join(san, vol+".img")).CombinedOutput(); len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("loop device left: %s", out)
	}
}

// dockerdLogSize is where the dockerd log ends now.
func dockerdLogSize(t *testing.T) int64 {
	t.Helper()
	fi, err := os.Stat(dockerdLog)
	if err != nil {
		t.Fatalf("the dockerd log: %v", err)
	}
	return fi.Size()
}

// dockerdLogSince returns the lines of the dockerd log written after from
// that contain any of words.
func dockerdLogSince(t *testing.T, from int64, words ...string) string {
	t.Helper()
	raw, err := os.ReadFile(dockerdLog)
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	for _, l := range strings.Split(string(raw[min(from, int64(len(raw))):]), "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				bad = append(bad, l)
				break
			}
		}
	}
	return strings.Join(bad, "\n")
}

// inspect returns the Status of docker volume inspect.
func inspect(t *testing.T, name string) map[string]any {
	t.Helper()
	out := mustDocker(t, "volume", "inspect", "--format", "{{json .Status}}", name)
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("inspect %s: %v in %q", name, err, out)
	}
	return st
}

// lineCount is the number of lines of /data/log in container c.
func lineCount(t *testing.T, c string) int {
	t.Helper()
	out := mustDocker(t, "exec", c, "sh", "-c", "wc -l < /data/log")
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("line count %q: %v", out, err)
	}
	return n
}

// checkLines asserts "line 1".."line N" with no gap or repeat, returns N.
func checkLines(t *testing.T, data string) int {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(data), "\n")
	for i, l := range lines {
		if want := fmt.Sprintf("line %d", i+1); l != want {
			// The writer may have been killed in the middle of its last line.
			if i == len(lines)-1 && strings.HasPrefix(want, l) {
				return i
			}
			t.Fatalf("line %d is %q, want %q", i+1, l, want)
		}
	}
	return len(lines)
}

// hostMounts counts the host's mounts of the volume's filesystem under the
// plugin's propagated mount.
func hostMounts(t *testing.T, name string) int {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasSuffix(f[4], "/propagated-mount/"+name) {
			n++
		}
	}
	return n
}

// hostB drives a second relocvol process over its socket with the
// `relocvol driver` subcommand, as Docker would.
type hostB struct {
	bin, socket string
}

// call runs `relocvol driver METHOD JSON`; the plugin's Err comes back as
// the error, the answer is decoded into resp.
func (h hostB) call(method string, req, resp any) error {
	body, _ := json.Marshal(req)
	cmd := exec.Command(h.bin, "driver", "--socket", h.socket, method, string(body))
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %s", method, strings.TrimSpace(stderr.String()))
	}
	if resp != nil {
		if err := json.Unmarshal([]byte(stdout.String()), resp); err != nil {
			return fmt.Errorf("%s: decode %q: %w", method, stdout.String(), err)
		}
	}
	return nil
}

// startHostB runs a second relocvol plugin process, host e2e-host-b, on the
// managed plugin's embedded etcd and the same SAN folder. That etcd answers
// only over TLS, to its client certificate: root on the host reads it in
// the plugin's state folder, as any relocvol process there does.
func startHostB(t *testing.T, root string, dirs folders, etcdPort int) hostB {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "relocvol")
	gobuild := exec.Command("go", "build", "-o", bin, "./cmd/relocvol")
	gobuild.Dir = root
	if out, err := gobuild.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sock := filepath.Join(dir, "b.sock")
	cmd := exec.Command(bin, "plugin")
	cmd.Env = append(os.Environ(),
		"RELOCVOL_HOST=e2e-host-b",
		fmt.Sprintf("RELOCVOL_ETCD_ENDPOINTS=https://127.0.0.1:%d", etcdPort),
		"RELOCVOL_ETCD_CA="+embeddedPKI(dirs).CA,
		"RELOCVOL_ETCD_CERT="+embeddedPKI(dirs).Cert,
		"RELOCVOL_ETCD_KEY="+embeddedPKI(dirs).Key,
		"RELOCVOL_SAN_DIR="+dirs.san,
		"RELOCVOL_STATE_DIR="+filepath.Join(dir, "state"),
		"RELOCVOL_MOUNT_ROOT="+filepath.Join(dir, "mnt"),
		"RELOCVOL_SOCKET="+sock,
		"RELOCVOL_LEASE_TTL=3s",
		"RELOCVOL_API_ADDR=",    // the managed plugin serves the API here
		"RELOCVOL_DOCKER_HOST=", // and drives this engine
	)
	cmd.Stdout, cmd.Stderr = testenv.LogWriter{T: t, Prefix: "host-b: "}, testenv.LogWriter{T: t, Prefix: "host-b: "}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	b := hostB{bin: bin, socket: sock}
	testenv.Eventually(t, 30*time.Second, "host B answers on its socket", func() error {
		return b.call("List", struct{}{}, nil)
	})
	return b
}

// refusedOnOtherCluster runs relocvol with its own embedded etcd on the SAN
// folder the managed plugin's cluster uses: it must refuse the folder,
// saying how to fix it, to every request on its socket (it keeps trying to
// start, as it would after any failed start-up), and write nothing there.
func refusedOnOtherCluster(t *testing.T, bin, san string) {
	t.Helper()
	dir := t.TempDir()
	port := testenv.FreePorts(t, 2)
	before := folderState(t, san)
	sock := filepath.Join(dir, "c.sock")
	cmd := exec.Command(bin, "plugin")
	cmd.Env = append(os.Environ(),
		"RELOCVOL_HOST=e2e-host-c", "RELOCVOL_ETCD_ENDPOINTS=",
		fmt.Sprintf("RELOCVOL_EMBEDDED_ETCD=127.0.0.1:%d", port),
		"RELOCVOL_SAN_DIR="+san, "RELOCVOL_STATE_DIR="+filepath.Join(dir, "state"),
		"RELOCVOL_MOUNT_ROOT="+filepath.Join(dir, "mnt"), "RELOCVOL_SOCKET="+sock,
		"RELOCVOL_API_ADDR=", "RELOCVOL_DOCKER_HOST=",
	)
	cmd.Stdout, cmd.Stderr = testenv.LogWriter{T: t, Prefix: "host-c: "}, testenv.LogWriter{T: t, Prefix: "host-c: "}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	c := hostB{bin: bin, socket: sock}
	testenv.Eventually(t, time.Minute, "host C (its own etcd) refusing the SAN folder, saying why", func() error {
		err := c.call("Create", map[string]any{"Name": "e2e-host-c-vol"}, nil)
		if err == nil {
			t.Fatalf("a relocvol on another etcd created a volume on the same SAN folder %s", san)
		}
		if !strings.Contains(err.Error(), "the SAN folder "+san+" belongs to relocvol cluster") || !strings.Contains(err.Error(), "point RELOCVOL_ETCD_ENDPOINTS") {
			return fmt.Errorf("not refused for the folder yet: %v", err)
		}
		t.Logf("host C refuses: %v", err)
		return nil
	})
	if after := folderState(t, san); after != before {
		t.Fatalf("host C changed the SAN folder it refused:\nbefore %s\nafter  %s", before, after)
	}
}

// folderState lists dir's files with their sizes and times.
func folderState(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %d %s; ", e.Name(), info.Size(), info.ModTime().Format(time.RFC3339Nano))
	}
	return b.String()
}

// removePlugin removes everything the test put in the engine, whatever
// state the test stopped in, and prints the plugin's log on failure.
func removePlugin(t *testing.T) {
	logDockerdOnFailure(t, 150)
	_, _ = docker(t, "rm", "-f", "e2e-writer", "e2e-idle")
	_, _ = docker(t, "volume", "rm", "-f", vol)
	_, _ = docker(t, "plugin", "disable", "-f", pluginRef)
	_, _ = docker(t, "plugin", "rm", "-f", pluginRef)
}

// checkAPI reads the managed plugin's REST API through the relocvol CLI
// (root's: it reads the plugin's token file) and plain HTTP while
// e2e-writer and e2e-idle use the volume on host A; /metrics with the
// read-only token, as Prometheus scrapes it.
func checkAPI(t *testing.T, bin, base string, dirs folders) {
	t.Helper()
	cli := func(args ...string) string {
		out, err := exec.Command(bin, append(args, "--api", base)...).CombinedOutput()
		if err != nil {
			t.Fatalf("relocvol %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	testenv.Eventually(t, 20*time.Second, "host A is the leader", func() error {
		if out := cli("status"); !strings.Contains(out, "leader:     e2e-host-a") {
			return fmt.Errorf("relocvol status:\n%s", out)
		}
		return nil
	})
	vols := cli("volumes")
	if !regexpMatch(`(?m)^e2e-db\s+64M\s+ext4\s+loop\s+ready\s+e2e-host-a\s+\d+\s+2\s*$`, vols) {
		t.Errorf("relocvol volumes does not show e2e-db owned by e2e-host-a with 2 mounts:\n%s", vols)
	}
	hosts := cli("hosts")
	if !regexpMatch(`(?m)^e2e-host-a\s+alive\s+\S+ ago\s+yes`, hosts) || !regexpMatch(`(?m)^e2e-host-b\s+alive`, hosts) {
		t.Errorf("relocvol hosts:\n%s", hosts)
	}
	var parsed []map[string]any
	if err := json.Unmarshal([]byte(cli("volumes", "--json")), &parsed); err != nil || len(parsed) != 1 || parsed[0]["owner"] != "e2e-host-a" {
		t.Errorf("relocvol volumes --json: %v %v", parsed, err)
	}
	get := func(path, token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	read := dirs.token(t, "api-token-read")
	if code, body := get("/metrics", read); code != 200 || !strings.Contains(body, "relocvol_host_alive 1") || !strings.Contains(body, "relocvol_volumes_mounted 1") {
		t.Errorf("GET /metrics: %d\n%s", code, body)
	}
	if code, body := get("/metrics", ""); code != 401 || !strings.Contains(body, "missing or wrong bearer token") {
		t.Errorf("GET /metrics without a token: %d\n%s", code, body)
	}
	// The status page is static (its data come from the API above, in the
	// browser: controller/api/uitest drives it in Chromium); the installed
	// binary serves it and its script.
	if code, body := get("/", ""); code != 200 || !strings.Contains(body, `src="/ui/status.js"`) {
		t.Errorf("GET / (status page): %d\n%s", code, body)
	}
	if code, body := get("/ui/status.js", ""); code != 200 || !strings.Contains(body, "/v1/status") {
		t.Errorf("GET /ui/status.js: %d\n%s", code, body)
	}
	if code, body := get("/v1/nothing", read); code != 404 || !strings.Contains(body, `"error": "no such endpoint GET /v1/nothing`) {
		t.Errorf("GET /v1/nothing: %d %s", code, body)
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// onlyVolume reports whether files (a SAN folder's) are those of volume
// vol alone: its link vol.img, the one image it links to, and the
// cluster's own dot files (.relocvol-cluster and the like).
func onlyVolume(files []string, san, vol string) bool {
	var images []string
	for _, f := range files {
		switch name := filepath.Base(f); {
		case strings.HasPrefix(name, ".relocvol-"):
		case name == vol+".img":
		case strings.HasPrefix(name, vol+".img."):
			images = append(images, name)
		default:
			return false
		}
	}
	target, err := os.Readlink(filepath.Join(san, vol+".img"))
	return err == nil && len(images) == 1 && target == images[0]
}
