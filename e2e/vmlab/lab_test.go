package vmlab_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relocvol/relocvol/e2e/vmlab"
)

var update = flag.Bool("update", false, "rewrite testdata/ with what sg_persist, sg_inq, dd and lvm print in the lab")

// The hosts' PR keys: full 8-byte keys, as the product makes them.
const (
	keyA = "0x72760000000000a1"
	keyB = "0x72760000000000b2"
)

// TestLab proves the lab: both host VMs see one LUN, real SCSI-3 persistent
// reservations fence a host over iSCSI, LVM works on the shared LUN, and a
// host comes back from a power loss with its key gone. The outputs of the
// commands are the fixtures under testdata/ (go test -run TestLab -update).
func TestLab(t *testing.T) {
	lab := vmlab.Start(t)
	rec := &recorder{lab: lab, seen: map[string]bool{}}
	defer rec.finish(t)
	a, b := lab.Hosts[0], lab.Hosts[1]
	devA, devB := lab.LUN(t, a), lab.LUN(t, b)
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	step("reach", func(t *testing.T) {
		// An etcd on the physical machine's loopback will be reached so.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_, _ = c.Write([]byte("hello from the physical machine\n"))
				_ = c.Close()
			}
		}()
		port := ln.Addr().(*net.TCPAddr).Port
		local := filepath.Join(t.TempDir(), "payload")
		payload := make([]byte, 1<<20)
		_, _ = rand.Read(payload)
		if err := os.WriteFile(local, payload, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, h := range lab.Hosts {
			out := lab.MustRun(t, h, fmt.Sprintf("timeout 20 bash -c 'exec 3<>/dev/tcp/%s/%d; head -n1 <&3'", vmlab.HostGateway, port))
			if !strings.Contains(out, "hello from the physical machine") {
				t.Errorf("%s did not reach 127.0.0.1:%d of the physical machine as %s:%d: %q", h, port, vmlab.HostGateway, port, out)
			}
			if err := lab.CopyTo(h, local, "/usr/local/bin/payload"); err != nil {
				t.Fatal(err)
			}
			got := lab.MustRun(t, h, "sha256sum </usr/local/bin/payload; stat -c %a /usr/local/bin/payload")
			if want := sha256hex(payload); !strings.Contains(got, want) || !strings.Contains(got, "755") {
				t.Errorf("copy to %s: got %q, want sha256 %s and mode 755", h, got, want)
			}
			lab.MustRun(t, h, "modprobe dm-mod && dmsetup version && lvm version | head -n1")
		}
	})

	step("same LUN", func(t *testing.T) {
		ids := map[string]string{}
		for _, h := range lab.Hosts {
			dev := lab.LUN(t, h)
			r := rec.run(t, h, "sg_inq-unit-serial", "sg_inq -p 0x80 "+dev, true)
			serial := firstMatch(`Unit serial number: (\S+)`, r.Stdout)
			rec.run(t, h, "sg_inq-device-id", "sg_inq -p 0x83 "+dev, true)
			wwn := strings.TrimSpace(lab.MustRun(t, h, fmt.Sprintf(
				`for l in /dev/disk/by-id/wwn-*; do [ "$(readlink -f "$l")" = %s ] && basename "$l"; done`, dev)))
			if serial == "" || wwn == "" {
				t.Fatalf("%s: no serial (%q) or by-id WWN (%q) for %s", h, serial, wwn, dev)
			}
			ids[h] = serial + " " + wwn
		}
		if ids[a] != ids[b] {
			t.Fatalf("the hosts see different LUNs: %s has %s, %s has %s", a, ids[a], b, ids[b])
		}
		t.Logf("both hosts see serial+WWN %s", ids[a])
	})

	step("register and reserve", func(t *testing.T) {
		r := rec.run(t, a, "read-keys-none", "sg_persist --in --read-keys "+devA, true)
		wantExit(t, r, 0, "there are NO registered reservation keys")
		r = rec.run(t, a, "read-reservation-none", "sg_persist --in --read-reservation "+devA, true)
		wantExit(t, r, 0, "there is NO reservation held")
		r = rec.run(t, a, "report-capabilities", "sg_persist --in --report-capabilities "+devA, true)
		wantExit(t, r, 0, "Write Exclusive, registrants only: 1")

		r = rec.run(t, a, "register", "sg_persist --out --register --param-sark="+keyA+" "+devA, true)
		wantExit(t, r, 0, "")
		r = rec.run(t, b, "register-b", "sg_persist --out --register --param-sark="+keyB+" "+devB, true)
		wantExit(t, r, 0, "")
		r = rec.run(t, a, "reserve", "sg_persist --out --reserve --param-rk="+keyA+" --prout-type=5 "+devA, true)
		wantExit(t, r, 0, "")

		for _, h := range lab.Hosts {
			dev := lab.LUN(t, h)
			r = rec.run(t, h, "read-keys-two", "sg_persist --in --read-keys "+dev, true)
			wantExit(t, r, 0, "2 registered reservation keys follow:", keyA, keyB)
			r = rec.run(t, h, "read-keys-two-n", "sg_persist -n --in --read-keys "+dev, true)
			wantExit(t, r, 0, keyA, keyB)
			r = rec.run(t, h, "read-reservation-held", "sg_persist --in --read-reservation "+dev, true)
			wantExit(t, r, 0, "Key="+keyA, "type: Write Exclusive, registrants only")
			r = rec.run(t, h, "read-reservation-held-n", "sg_persist -n --in --read-reservation "+dev, true)
			wantExit(t, r, 0, "Key="+keyA)
		}
		r = rec.run(t, b, "read-full-status", "sg_persist --in --read-full-status "+devB, true)
		wantExit(t, r, 0, "<< Reservation holder >>", "iqn.2024-01.io.relocvol:hosta", "iqn.2024-01.io.relocvol:hostb")
	})

	step("both write", func(t *testing.T) {
		for i, h := range lab.Hosts {
			dev := lab.LUN(t, h)
			// Each host writes its name into its own 4 KiB block; the other reads it.
			lab.MustRun(t, h, fmt.Sprintf("printf '%%-4096s' %s | dd of=%s bs=4096 seek=%d count=1 oflag=direct conv=notrunc", h, dev, 100+i))
		}
		for i, h := range lab.Hosts {
			other := lab.Hosts[1-i]
			got := lab.MustRun(t, other, fmt.Sprintf("dd if=%s bs=4096 skip=%d count=1 iflag=direct status=none | tr -d ' '", lab.LUN(t, other), 100+i))
			if strings.TrimSpace(got) != h {
				t.Errorf("%s read %q in the block %s wrote, want %q", other, got, h, h)
			}
		}
	})

	step("preempt", func(t *testing.T) {
		r := rec.run(t, b, "preempt", fmt.Sprintf("sg_persist --out --preempt --param-rk=%s --param-sark=%s --prout-type=5 %s", keyB, keyA, devB), true)
		wantExit(t, r, 0, "")
		r = rec.run(t, b, "read-keys-after-preempt", "sg_persist --in --read-keys "+devB, true)
		wantExit(t, r, 0, "1 registered reservation key follows:", keyB)
		wantNot(t, r, keyA)
		r = rec.run(t, b, "read-reservation-after-preempt", "sg_persist --in --read-reservation "+devB, true)
		wantExit(t, r, 0, "Key="+keyB, "type: Write Exclusive, registrants only")
	})

	step("fenced", func(t *testing.T) {
		// The first command of the preempted host gets the unit attention
		// "Registrations preempted" (sg_persist exit 6); the next one runs.
		r := rec.run(t, a, "read-keys-unit-attention", "sg_persist --in --read-keys "+devA, true)
		if r.ExitCode == 6 {
			wantExit(t, r, 6, "Registrations preempted", "Unit attention")
		} else {
			t.Logf("NOTE: no unit attention for %s's first command after the preemption (exit %d)", a, r.ExitCode)
		}
		r = rec.run(t, a, "read-keys-fenced", "sg_persist --in --read-keys "+devA, true)
		wantExit(t, r, 0, keyB)
		wantNot(t, r, keyA)

		wantFencedWrite(t, rec.run(t, a, "dd-fenced-write", blockWrite(a, devA), false), a+" after being preempted")
		lab.MustRun(t, a, "dmesg | grep -i 'reservation conflict' | tail -n 3")
		// Reads stay allowed with type 5 (Write Exclusive, Registrants Only).
		lab.MustRun(t, a, fmt.Sprintf("dd if=%s of=/dev/null bs=4096 count=1 iflag=direct", devA))
		r = rec.run(t, a, "reserve-conflict", fmt.Sprintf("sg_persist --out --reserve --param-rk=%s --prout-type=5 %s", keyA, devA), true)
		wantExit(t, r, 24, "Reservation conflict")
		// Re-registering needs the current key (0 when unregistered): the old one conflicts.
		r = rec.run(t, a, "register-stale-key", fmt.Sprintf("sg_persist --out --register --param-rk=%s --param-sark=%s %s", keyA, keyA, devA), true)
		wantExit(t, r, 24, "Reservation conflict")

		lab.MustRun(t, b, fmt.Sprintf("printf '%%-4096s' %s | dd of=%s bs=4096 seek=101 count=1 oflag=direct conv=notrunc", b, devB))
	})

	step("lvm", func(t *testing.T) {
		// The VG is made with autoactivation off: no host activates it by itself.
		lab.MustRun(t, b, "pvcreate -y "+devB)
		lab.MustRun(t, b, "vgcreate --setautoactivation n vmlab "+devB)
		lab.MustRun(t, b, "lvcreate -y -L 64M -n lv0 vmlab")
		lab.MustRun(t, b, "mkfs.ext4 -q /dev/vmlab/lv0 && mkdir -p /mnt/lv0 && mount /dev/vmlab/lv0 /mnt/lv0 && echo data-of-hostB >/mnt/lv0/file && sync && umount /mnt/lv0")
		rec.run(t, b, "vgs-json", "vgs --reportformat json --units b --nosuffix -o vg_name,vg_uuid,vg_size,vg_free,vg_attr,pv_count,lv_count vmlab", false)
		r := rec.run(t, b, "lvs-json-active", "lvs --reportformat json --units b --nosuffix -o lv_name,vg_name,lv_uuid,lv_size,lv_attr,lv_active,lv_path,lv_dm_path vmlab", false)
		wantExit(t, r, 0, `"lv_name":"lv0"`, `"lv_active":"active"`)
		lab.MustRun(t, b, "lvchange -an vmlab/lv0")

		// hostA (fenced: it may read) sees the VG and the LV, not active.
		lab.MustRun(t, a, "pvscan --cache")
		lab.MustRun(t, a, "vgscan")
		r = rec.run(t, a, "lvs-json-inactive", "lvs --reportformat json --units b --nosuffix -o lv_name,vg_name,lv_uuid,lv_size,lv_attr,lv_active,lv_path,lv_dm_path vmlab", false)
		wantExit(t, r, 0, `"lv_name":"lv0"`, `"vg_name":"vmlab"`, `"lv_active":""`)
		lab.MustRun(t, a, "pvs "+devA)
	})

	step("power loss", func(t *testing.T) {
		lab.MustRun(t, a, "echo survives > /root/marker && sync")
		if err := lab.Kill(a); err != nil {
			t.Fatal(err)
		}
		lab.MustRun(t, b, fmt.Sprintf("printf '%%-4096s' %s | dd of=%s bs=4096 seek=101 count=1 oflag=direct conv=notrunc", b, devB))
		t0 := time.Now()
		if err := lab.Boot(a); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s back in %s", a, time.Since(t0).Round(time.Second))
		if got := lab.MustRun(t, a, "cat /root/marker"); strings.TrimSpace(got) != "survives" {
			t.Errorf("%s lost its disk's state: /root/marker is %q", a, got)
		}
		devA = lab.LUN(t, a)
		serial := firstMatch(`Unit serial number: (\S+)`, lab.MustRun(t, a, "sg_inq -p 0x80 "+devA))
		if !strings.Contains(serial, "5a0010000001") {
			t.Errorf("after the reboot %s sees serial %q at %s", a, serial, devA)
		}
		r := rec.run(t, a, "read-keys-after-reboot", "sg_persist --in --read-keys "+devA, true)
		if r.ExitCode == 6 {
			r = rec.run(t, a, "read-keys-after-reboot", "sg_persist --in --read-keys "+devA, true)
		}
		wantExit(t, r, 0, keyB)
		wantNot(t, r, keyA)
		wantFencedWrite(t, rec.run(t, a, "dd-fenced-write-after-reboot", blockWrite(a, devA), false), a+" after its reboot without registering")

		// Registering again (with key 0: it has none) lets it write again:
		// why a fenced host must clean up before it re-registers.
		r = rec.run(t, a, "register-again", "sg_persist --out --register --param-sark="+keyA+" "+devA, true)
		wantExit(t, r, 0, "")
		r = rec.run(t, a, "read-keys-reregistered", "sg_persist --in --read-keys "+devA, true)
		wantExit(t, r, 0, keyA, keyB)
		lab.MustRun(t, a, blockWrite(a, devA))
	})

	step("preempt and abort", func(t *testing.T) {
		// hostA writes in a loop while hostB preempts it with PREEMPT AND
		// ABORT (it hung the kernel with tcm_loop; over iSCSI it must not).
		lab.MustRun(t, a, fmt.Sprintf(`rm -f /tmp/w.*; setsid nohup timeout 300 sh -c '
i=0
while dd if=/dev/zero of=%s bs=64k count=16 seek=160 oflag=direct conv=notrunc 2>/tmp/w.err; do
	i=$((i + 1)); echo $i >/tmp/w.count
done
echo "failed after $i writes" >/tmp/w.done' </dev/null >/dev/null 2>&1 &`, devA))
		eventually(t, time.Minute, func() (bool, string) {
			out, _ := lab.Run(t, a, "cat /tmp/w.count /tmp/w.done 2>/dev/null")
			if strings.Contains(out, "failed") {
				t.Fatalf("hostA's writer failed before the preemption: %s", out)
			}
			n, _ := strconv.Atoi(strings.TrimSpace(out))
			return n >= 3, "hostA's writer to get going: " + out
		})
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := fmt.Sprintf("sg_persist --out --preempt-abort --param-rk=%s --param-sark=%s --prout-type=5 %s", keyB, keyA, devB)
		t0 := time.Now()
		r, err := lab.Exec(ctx, b, cmd)
		if err != nil {
			t.Errorf("PREEMPT AND ABORT over iSCSI did not return within 90s (%v): killing %s", err, b)
			_ = lab.Kill(b)
			t.FailNow()
		}
		t.Logf("PREEMPT AND ABORT returned in %s", time.Since(t0).Round(time.Millisecond))
		rec.add(t, b, "preempt-abort", cmd, r, true)
		wantExit(t, r, 0, "")
		eventually(t, time.Minute, func() (bool, string) {
			out, _ := lab.Run(t, a, "cat /tmp/w.done /tmp/w.err 2>/dev/null")
			return strings.Contains(out, "failed after"), "hostA's writer to fail: " + out
		})
		out := lab.MustRun(t, a, "cat /tmp/w.err")
		if !strings.Contains(out, "Invalid exchange") {
			t.Errorf("hostA's writer failed with %q, want Invalid exchange (EBADE)", out)
		}
		r = rec.run(t, b, "read-keys-after-preempt-abort", "sg_persist --in --read-keys "+devB, true)
		wantExit(t, r, 0, keyB)
		wantNot(t, r, keyA)
		lab.MustRun(t, b, fmt.Sprintf("printf '%%-4096s' %s | dd of=%s bs=4096 seek=101 count=1 oflag=direct conv=notrunc", b, devB))
		lab.MustRun(t, vmlab.San, "dmesg | tail -n 20")
	})
}

func sha256hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func firstMatch(re, s string) string {
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return m[1]
}

// wantExit checks r's exit code and that its output holds each of subs.
func wantExit(t *testing.T, r vmlab.Result, code int, subs ...string) {
	t.Helper()
	if r.ExitCode != code {
		t.Errorf("exit %d, want %d; output:\n%s", r.ExitCode, code, r.Combined())
	}
	for _, s := range subs {
		if s != "" && !strings.Contains(r.Combined(), s) {
			t.Errorf("output lacks %q:\n%s", s, r.Combined())
		}
	}
}

func wantNot(t *testing.T, r vmlab.Result, sub string) {
	t.Helper()
	if strings.Contains(r.Combined(), sub) {
		t.Errorf("output holds %q:\n%s", sub, r.Combined())
	}
}

// eventually polls cond every second until it holds or d has passed.
func eventually(t *testing.T, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, what := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", d, what)
		}
		time.Sleep(time.Second)
	}
}

// recorder keeps what the lab's commands printed, to write testdata/ with
// -update, or else to compare with it.
type recorder struct {
	lab  *vmlab.Lab
	mu   sync.Mutex
	caps []capture
	seen map[string]bool
}

// capture is one command's output, as testdata/captures.json lists it.
type capture struct {
	Name     string `json:"name"`
	VM       string `json:"vm"`
	Cmd      string `json:"cmd"`
	ExitCode int    `json:"exit_code"`
	// Stable: the output is the same on every run (no timings, no UUIDs).
	Stable     bool   `json:"stable"`
	StdoutFile string `json:"stdout_file,omitempty"`
	StderrFile string `json:"stderr_file,omitempty"`
	stdout     string
	stderr     string
}

func (rc *recorder) run(t *testing.T, vm, name, cmd string, stable bool) vmlab.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), vmlab.RunTimeout)
	defer cancel()
	r, err := rc.lab.Exec(ctx, vm, cmd)
	if err != nil {
		t.Fatal(err)
	}
	rc.add(t, vm, name, cmd, r, stable)
	return r
}

// add records r; the first capture of a name wins.
func (rc *recorder) add(t *testing.T, vm, name, cmd string, r vmlab.Result, stable bool) {
	t.Helper()
	t.Logf("%s# %s\n%s[exit %d]", vm, cmd, r.Combined(), r.ExitCode)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.seen[name] {
		return
	}
	rc.seen[name] = true
	c := capture{Name: name, VM: vm, Cmd: cmd, ExitCode: r.ExitCode, Stable: stable, stdout: r.Stdout, stderr: r.Stderr}
	if r.Stdout != "" {
		c.StdoutFile = name + ".stdout"
	}
	if r.Stderr != "" {
		c.StderrFile = name + ".stderr"
	}
	rc.caps = append(rc.caps, c)
}

func (rc *recorder) finish(t *testing.T) {
	if *update {
		if t.Failed() {
			t.Log("not updating testdata/: the test failed")
			return
		}
		if err := rc.write("testdata"); err != nil {
			t.Error(err)
		}
		return
	}
	// Not a failure: the lab proved what it proves; a difference means the
	// product's parser fixtures may be out of date.
	for _, c := range rc.caps {
		if !c.Stable {
			continue
		}
		for file, got := range map[string]string{c.StdoutFile: c.stdout, c.StderrFile: c.stderr} {
			if file == "" {
				continue
			}
			want, err := os.ReadFile(filepath.Join("testdata", file))
			if err != nil || string(want) != got {
				t.Logf("NOTE: testdata/%s differs from this run (go test -run TestLab -update rewrites it):\n%s", file, got)
			}
		}
	}
}

func (rc *recorder) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, c := range rc.caps {
		for file, data := range map[string]string{c.StdoutFile: c.stdout, c.StderrFile: c.stderr} {
			if file == "" {
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, file), []byte(data), 0o644); err != nil {
				return err
			}
		}
	}
	b, err := json.MarshalIndent(rc.caps, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "captures.json"), append(b, '\n'), 0o644)
}

// blockWrite is the shell command by which vm writes one 4 KiB block with
// its name to block 100 of dev, bypassing the page cache.
func blockWrite(vm, dev string) string {
	return fmt.Sprintf("printf '%%-4096s' %s | dd of=%s bs=4096 seek=100 count=1 oflag=direct conv=notrunc", vm, dev)
}

// wantFencedWrite asserts that a write by a fenced host failed with a
// reservation conflict, which Linux reports as EBADE ("Invalid exchange").
func wantFencedWrite(t *testing.T, r vmlab.Result, who string) {
	t.Helper()
	if r.ExitCode == 0 {
		t.Fatalf("%s: the write went through", who)
	}
	if !strings.Contains(r.Stderr, "Invalid exchange") {
		t.Errorf("%s: fenced write: want EBADE (Invalid exchange), got %q", who, r.Stderr)
	}
}
