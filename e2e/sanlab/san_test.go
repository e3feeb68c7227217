// Package sanlab proves the production path in the VM lab: two host VMs,
// each its own kernel, running the real relocvol plugin with the lvm backend
// and scsi3 fencing on one iSCSI LUN with real SCSI-3 persistent
// reservations, coordinated by a real etcd in the test process. The plugin
// is driven over its socket with `relocvol driver` (no Docker in the VMs).
package sanlab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relocvol/relocvol/e2e/vmlab"
	"github.com/relocvol/relocvol/fencing/scsi3"
	"github.com/relocvol/relocvol/internal/etcdembed"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

const (
	vg     = "rvlab"
	socket = "/run/relocvol.sock"
	ttl    = 6 // seconds: TCG VMs are slow, a tighter lease would flap
)

type env struct {
	lab  *vmlab.Lab
	etcd []string // as the test sees it
	port int
	st   *store.Store
}

// startEnv boots the lab, runs etcd, installs the relocvol binary in each
// host VM and puts the shared VG on the LUN.
func startEnv(t *testing.T) *env {
	t.Helper()
	root := testenv.RepoRoot(t)
	bin := filepath.Join(t.TempDir(), "relocvol")
	build := exec.Command("go", "build", "-o", bin, "./cmd/relocvol")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	srv, err := etcdembed.Start(t.TempDir(), "127.0.0.1:0", etcdembed.Options{NoFsync: true, LogLevel: "fatal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	eps := srv.Endpoints()
	port, _ := strconv.Atoi(eps[0][strings.LastIndex(eps[0], ":")+1:])
	cli := testenv.EtcdClient(t, eps)

	lab := vmlab.Start(t)
	e := &env{lab: lab, etcd: eps, port: port, st: store.New(cli, "/relocvol")}
	for _, h := range lab.Hosts {
		if err := lab.CopyTo(h, bin, "/usr/local/bin/relocvol"); err != nil {
			t.Fatalf("copy relocvol to %s: %v", h, err)
		}
	}
	// Installed for good, as on a real host: the test cuts hostA's power
	// later, which loses whatever is still only in its page cache.
	for _, h := range lab.Hosts {
		lab.MustRun(t, h, "sync")
	}
	lun := lab.LUN(t, "hostA")
	lab.MustRun(t, "hostA", fmt.Sprintf("pvcreate -y %s && vgcreate %s %s && vgchange --setautoactivation n %s", lun, vg, lun, vg))
	lab.MustRun(t, "hostB", "pvscan --cache >/dev/null; vgs "+vg)
	return e
}

// startPlugin runs `relocvol plugin` on vm in the background and waits
// until its socket answers.
func (e *env) startPlugin(t *testing.T, vm string) {
	t.Helper()
	cmd := fmt.Sprintf(`mkdir -p /var/lib/relocvol /mnt/volumes
RELOCVOL_HOST=%s RELOCVOL_BACKEND=lvm RELOCVOL_LVM_VG=%s RELOCVOL_FENCING=scsi3 \
RELOCVOL_ETCD_ENDPOINTS=http://%s:%d RELOCVOL_LEASE_TTL=%ds RELOCVOL_SOCKET=%s \
RELOCVOL_DOCKER_HOST= RELOCVOL_LOG_LEVEL=debug setsid nohup /usr/local/bin/relocvol plugin >>/var/log/relocvol.log 2>&1 </dev/null &`,
		vm, vg, vmlab.HostGateway, e.port, ttl, socket)
	e.lab.MustRun(t, vm, cmd)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if _, err := e.driver(t, vm, "List", nil); err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := e.lab.Run(t, vm, "ls -l /usr/local/bin/relocvol; relocvol version; tail -50 /var/log/relocvol.log | tr -d '\\000'")
			t.Fatalf("relocvol on %s does not answer:\n%s", vm, log)
		}
		time.Sleep(time.Second)
	}
}

// driver calls one VolumeDriver method of vm's plugin; the plugin's Err is
// the returned error.
func (e *env) driver(t *testing.T, vm, method string, req any) (string, error) {
	t.Helper()
	body := "{}"
	if req != nil {
		b, _ := json.Marshal(req)
		body = string(b)
	}
	out, err := e.lab.Run(t, vm, fmt.Sprintf("relocvol driver --socket %s %s '%s'", socket, method, body))
	if err != nil {
		return "", fmt.Errorf("%s on %s: %s", method, vm, strings.TrimSpace(out))
	}
	return strings.TrimSpace(out), nil
}

func (e *env) mount(t *testing.T, vm, name, id string) (string, error) {
	out, err := e.driver(t, vm, "Mount", map[string]string{"Name": name, "ID": id})
	if err != nil {
		return "", err
	}
	var r struct{ Mountpoint string }
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return "", fmt.Errorf("Mount answer %q: %w", out, err)
	}
	return r.Mountpoint, nil
}

func (e *env) status(t *testing.T, vm, name string) map[string]any {
	t.Helper()
	out, err := e.driver(t, vm, "Get", map[string]string{"Name": name})
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Volume struct{ Status map[string]any }
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("Get answer %q: %v", out, err)
	}
	return r.Volume.Status
}

// keys are the reservation keys registered on the LUN, read from vm.
func (e *env) keys(t *testing.T, vm string) []uint64 {
	t.Helper()
	out := e.lab.MustRun(t, vm, "sg_persist --in --read-keys "+e.lab.LUN(t, vm)+" || sg_persist --in --read-keys "+e.lab.LUN(t, vm))
	keys, err := scsi3.ParseKeys([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// killAndTakeOver cuts hostA's power and retries hostB's Mount of vol
// until it takes the volume over; it logs how long that took and, from
// hostB's log, where the time went.
func (e *env) killAndTakeOver(t *testing.T, vol, id string) string {
	t.Helper()
	killed := time.Now()
	if err := e.lab.Kill("hostA"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		mp, err := e.mount(t, "hostB", vol, id)
		if err == nil {
			t.Logf("takeover: B mounted %s %s after A's power loss (lease TTL %ds)", vol, time.Since(killed).Round(100*time.Millisecond), ttl)
			t.Logf("A killed at %s; B's takeover steps:", killed.UTC().Format("15:04:05.000"))
			e.lab.MustRun(t, "hostB", `grep -E 'is not alive|waiting the grace|preempting|fenced host|claimed volume|mounted volume' /var/log/relocvol.log | tail -n 8 | cut -c1-220`)
			return mp
		}
		if time.Now().After(deadline) {
			t.Fatalf("B never took %s over: %v", vol, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestFailoverOnSAN(t *testing.T) {
	testenv.RequireRoot(t)
	e := startEnv(t)
	keyA, keyB := scsi3.KeyFor("hostA"), scsi3.KeyFor("hostB")
	e.startPlugin(t, "hostA")
	e.startPlugin(t, "hostB")
	if k := e.keys(t, "hostA"); !slices.Contains(k, keyA) || !slices.Contains(k, keyB) {
		t.Fatalf("both hosts must be registered: keys %x", k)
	}
	// The VG carries the identity of the cluster that uses it.
	cl, err := e.st.Cluster(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if tags := e.lab.MustRun(t, "hostB", "vgs --noheadings -o vg_tags "+vg); strings.TrimSpace(tags) != "relocvol-cluster-"+cl.ID {
		t.Fatalf("VG tags %q, want relocvol-cluster-%s", tags, cl.ID)
	}

	// (a) A creates, mounts and writes a known pattern, fsync'd.
	if _, err := e.driver(t, "hostA", "Create", map[string]any{"Name": "v1", "Opts": map[string]string{"size": "64M"}}); err != nil {
		t.Fatal(err)
	}
	mp, err := e.mount(t, "hostA", "v1", "a1")
	if err != nil {
		t.Fatal(err)
	}
	sum := e.lab.MustRun(t, "hostA", fmt.Sprintf("dd if=/dev/urandom of=%s/pattern bs=1M count=8 conv=fsync status=none && sha256sum < %s/pattern", mp, mp))

	// (b) B is refused while A is alive.
	if _, err := e.mount(t, "hostB", "v1", "b1"); err == nil || !strings.Contains(err.Error(), `volume "v1" is in use on host hostA (alive`) {
		t.Fatalf("B's mount while A is alive: %v", err)
	}

	// (c) A loses power. B's mount fences A, takes the claim with a higher
	// epoch and reads A's data intact.
	mpB := e.killAndTakeOver(t, "v1", "b1")
	if k := e.keys(t, "hostB"); slices.Contains(k, keyA) || !slices.Contains(k, keyB) {
		t.Fatalf("after the takeover the keys are %x: A's %x must be gone, B's %x there", k, keyA, keyB)
	}
	st := e.status(t, "hostB", "v1")
	if st["owner"] != "hostB" || fmt.Sprint(st["epoch"]) != "2" || st["takenFrom"] != "hostA" {
		t.Fatalf("claim after the takeover: %v", st)
	}
	if got := e.lab.MustRun(t, "hostB", "sha256sum < "+mpB+"/pattern"); got != sum {
		t.Fatalf("B reads %s, A wrote %s", got, sum)
	}
	if f, rev, err := e.st.GetFence(context.Background(), "hostA"); err != nil || rev == 0 || f.By != "hostB" || f.Method != "scsi3" {
		t.Fatalf("fence mark: %+v %d %v", f, rev, err)
	}

	// (d) A comes back; before its plugin runs, a write through A's path
	// fails with a reservation conflict (EBADE).
	if err := e.lab.Boot("hostA"); err != nil {
		t.Fatal(err)
	}
	lunA := e.lab.LUN(t, "hostA")
	size := strings.TrimSpace(e.lab.MustRun(t, "hostA", "blockdev --getsize64 "+lunA))
	n, _ := strconv.ParseInt(size, 10, 64)
	// The LUN's last MiB holds no LV (they are small): harmless if it worked.
	out, err := e.lab.Run(t, "hostA", fmt.Sprintf("dd if=/dev/zero of=%s bs=4096 count=1 seek=%d oflag=direct conv=notrunc", lunA, n/4096-16))
	if err == nil || !strings.Contains(out, "Invalid exchange") {
		t.Fatalf("a write from fenced hostA: err %v, output %q; want a reservation conflict (Invalid exchange)", err, out)
	}

	// (e) A's plugin cleans up, re-registers and clears its mark before it
	// mounts anything; v1 stays with B.
	e.startPlugin(t, "hostA")
	if k := e.keys(t, "hostA"); !slices.Contains(k, keyA) {
		t.Fatalf("A did not re-register: keys %x", k)
	}
	if _, rev, _ := e.st.GetFence(context.Background(), "hostA"); rev != 0 {
		t.Fatal("A's fence mark not cleared")
	}
	logA := e.lab.MustRun(t, "hostA", "cat /var/log/relocvol.log")
	iFenced := strings.Index(logA, "making sure nothing is mounted or active before registering")
	if iFenced < 0 {
		iFenced = strings.Index(logA, "this host was fenced")
	}
	iJoin := strings.LastIndex(logA, "registered the reservation key")
	if iFenced < 0 || iJoin < iFenced {
		t.Fatalf("A must clean up before it registers again; its log:\n%s", logA)
	}
	if _, err := e.mount(t, "hostA", "v1", "a2"); err == nil || !strings.Contains(err.Error(), "in use on host hostB") {
		t.Fatalf("A's mount of v1 held by B: %v", err)
	}
	if _, err := e.driver(t, "hostA", "Create", map[string]any{"Name": "v2", "Opts": map[string]string{"size": "16M"}}); err != nil {
		t.Fatal(err)
	}
	mp2, err := e.mount(t, "hostA", "v2", "a3")
	if err != nil {
		t.Fatal(err)
	}
	e.lab.MustRun(t, "hostA", "echo back > "+mp2+"/f && sync")

	// (f) A and B create 20 volumes each at the same time on the shared VG.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, h := range []string{"hostA", "hostB"} {
		wg.Add(1)
		go func(h string) {
			defer wg.Done()
			script := fmt.Sprintf(`set -e; for i in $(seq 1 20); do relocvol driver --socket %s Create "{\"Name\":\"%s-$i\",\"Opts\":{\"size\":\"8M\"}}" >/dev/null; done`, socket, strings.ToLower(h))
			if out, err := e.lab.Run(t, h, script); err != nil {
				errs <- fmt.Errorf("%s: %v: %s", h, err, out)
			}
		}(h)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, h := range e.lab.Hosts {
		lvs := map[string]bool{}
		for _, f := range strings.Fields(e.lab.MustRun(t, h, "lvs --noheadings -o lv_name "+vg)) {
			lvs[f] = true
		}
		for _, p := range []string{"hosta", "hostb"} {
			for i := 1; i <= 20; i++ {
				if !lvs[fmt.Sprintf("rv-%s-%d", p, i)] {
					t.Errorf("%s does not see LV rv-%s-%d", h, p, i)
				}
			}
		}
		e.lab.MustRun(t, h, "vgck "+vg)
	}
	// The backend conformance suite on real LVM, in a host VM: it cannot
	// run on this machine's kernel (no device-mapper).
	root := testenv.RepoRoot(t)
	suite := filepath.Join(t.TempDir(), "lvm.test")
	build := exec.Command("go", "test", "-c", "-o", suite, "./backends/lvm")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go test -c ./backends/lvm: %v\n%s", err, out)
	}
	if err := e.lab.CopyTo("hostB", suite, "/root/lvm.test"); err != nil {
		t.Fatal(err)
	}
	out, err = e.lab.Run(t, "hostB", "cd /root && RELOCVOL_TEST_VG="+vg+" ./lvm.test -test.run TestConformance -test.v -test.count=1")
	if err != nil || !strings.Contains(out, "--- PASS: TestConformance") || strings.Contains(out, "--- SKIP") {
		t.Fatalf("LVM conformance suite in the VM: %v\n%s", err, out)
	}

	vols, err := e.st.ListVolumes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(vols) != 42 {
		t.Errorf("%d volume records, want 42 (v1, v2 and 40 created concurrently)", len(vols))
	}

	newLUNTakeover(t, e)
}

// newLUNTakeover: (g) a second LUN is added to the VG after both hosts
// joined (vgextend), and a volume lands on it. Its owner loses power; the
// takeover must leave it unable to write to the new LUN too: fencing covers
// every PV as LVM sees it now, and a LUN without registrations or a
// reservation is repaired before it counts as fenced.
func newLUNTakeover(t *testing.T, e *env) {
	devs := e.lab.AddLUN(t, 1, 512<<20)
	oldA, newA := e.lab.LUN(t, "hostA"), devs["hostA"]
	// New LVs go to the new PV only.
	e.lab.MustRun(t, "hostA", fmt.Sprintf("pvcreate -y %s && vgextend %s %s && pvchange -x n %s", newA, vg, newA, oldA))
	e.lab.MustRun(t, "hostB", "pvscan --cache >/dev/null; pvs")
	if _, err := e.driver(t, "hostA", "Create", map[string]any{"Name": "v3", "Opts": map[string]string{"size": "64M"}}); err != nil {
		t.Fatal(err)
	}
	if pv := strings.TrimSpace(e.lab.MustRun(t, "hostA", "lvs --noheadings -o devices "+vg+"/rv-v3")); !strings.HasPrefix(pv, newA) {
		t.Fatalf("rv-v3 is on %q, want the new LUN %s", pv, newA)
	}
	mp, err := e.mount(t, "hostA", "v3", "a4")
	if err != nil {
		t.Fatal(err)
	}
	sum := e.lab.MustRun(t, "hostA", fmt.Sprintf("dd if=/dev/urandom of=%s/pattern bs=1M count=4 conv=fsync status=none && sha256sum < %s/pattern", mp, mp))

	mpB := e.killAndTakeOver(t, "v3", "b3")
	if got := e.lab.MustRun(t, "hostB", "sha256sum < "+mpB+"/pattern"); got != sum {
		t.Fatalf("B reads %s on v3, A wrote %s", got, sum)
	}
	newB := devs["hostB"]
	keys, err := scsi3.ParseKeys([]byte(e.lab.MustRun(t, "hostB", "sg_persist --in --read-keys "+newB+" || sg_persist --in --read-keys "+newB)))
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(keys, scsi3.KeyFor("hostA")) || !slices.Contains(keys, scsi3.KeyFor("hostB")) {
		t.Fatalf("keys on the new LUN after the takeover: %x; want hostB's, not hostA's", keys)
	}
	res, err := scsi3.ParseReservation([]byte(e.lab.MustRun(t, "hostB", "sg_persist --in --read-reservation "+newB)))
	if err != nil || !res.Held || res.Type != "Write Exclusive, registrants only" {
		t.Fatalf("reservation on the new LUN after the takeover: %+v %v; want type 5 held", res, err)
	}

	// A comes back: its writes to the new LUN fail (it logs in to both).
	if err := e.lab.Boot("hostA"); err != nil {
		t.Fatal(err)
	}
	link := strings.TrimSpace(e.lab.MustRun(t, "hostA", `for i in $(seq 120); do l=$(ls /dev/disk/by-path/ | grep -- '-lun-1$') && { echo "$l"; exit 0; }; sleep 0.5; done; exit 1`))
	out, err := e.lab.Run(t, "hostA", fmt.Sprintf("dd if=/dev/zero of=/dev/disk/by-path/%s bs=4096 count=1 seek=%d oflag=direct conv=notrunc", link, (512<<20)/4096-16))
	if err == nil || !strings.Contains(out, "Invalid exchange") {
		t.Fatalf("a write from fenced hostA to the new LUN: err %v, output %q; want a reservation conflict (Invalid exchange)", err, out)
	}
}
