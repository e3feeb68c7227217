package sanlab

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/e2e/vmlab"
	"github.com/relocvol/relocvol/fencing/scsi3"
	"github.com/relocvol/relocvol/internal/testenv"
)

// partitionSteps: the writer's host, B, is cut off etcd (its SAN paths
// stay up, but one: a path of the victim down during the fence) while a
// process on B's host, not a container, holds the volume's filesystem
// open and appends and fsyncs to a file on it, so that self-fencing cannot
// unmount it. A takes the writer over and fences B: nothing B writes
// reaches the LUN (A's view of the file, page cache dropped, does not
// change over 30 s), B's fsyncs fail and its kernel logs the reservation
// conflict; B's path that comes back is not registered again (multipathd
// re-registers a path only where its key stands). Healed, B does not
// rejoin while the process holds the volume; once it is gone, B cleans up
// and rejoins by itself. The writer's log on A is intact.
func partitionSteps(t *testing.T, d *dockerLab, step func(string, func(*testing.T))) {
	a, b := "hostA", "hostB"
	keyB := scsi3.KeyFor(b)
	step("B cut off etcd with a writer it cannot stop: fenced, nothing it writes lands", func(t *testing.T) {
		// The plugin's mount of v1, as the host sees it (its
		// propagatedMount), not a container's; containers get its data
		// folder, where the process writes.
		mp := strings.TrimSpace(d.lab.MustRun(t, b, `findmnt -rn -o SOURCE,TARGET | awk '$1 ~ /rv--v1$/ && $2 ~ /propagated-mount/ { print $2; exit }'`))
		if mp == "" {
			t.Fatal("B shows no mount of v1 under the plugin's propagated mount")
		}
		// Only the process in the background, its output to files: a
		// backgrounded list would keep ssh's output open and the command
		// would never return.
		d.lab.MustRun(t, b, fmt.Sprintf(`cd %[1]s/data && { setsid sh -c 'i=0; while :; do i=$((i+1)); if echo "rogue $i" | dd of=rogue.log oflag=append conv=notrunc,fsync status=none 2>>/root/rogue.err; then echo "ok $i"; else echo "fail $i"; fi; sleep 0.2; done' >/root/rogue.status 2>&1 </dev/null & echo $! >/root/rogue.pid; }`, mp))
		t.Cleanup(func() { _, _ = d.lab.Run(t, b, "kill $(cat /root/rogue.pid) 2>/dev/null; true") })
		testenv.Eventually(t, time.Minute, "the process on B writing to the volume", func() error {
			if n, _ := strconv.Atoi(strings.TrimSpace(d.lab.MustRun(t, b, "grep -c '^ok' /root/rogue.status || true"))); n < 3 {
				return fmt.Errorf("%d fsync'd appends", n)
			}
			return nil
		})
		// (c) one of B's paths down: its session waits to recover, the
		// map goes on through the other.
		ifc := strings.TrimSpace(d.lab.MustRun(t, b, `ip route get $(sed -n 2p /run/relocvol/san-addrs) | sed -n 's/.* dev \([^ ]*\).*/\1/p'`))
		d.lab.MustRun(t, b, "ip link set "+ifc+" down")
		_, seen, err := d.lastLine(t, b)
		if err != nil {
			t.Fatal(err)
		}
		tally := testenv.NewTally(t, "partition of the writer's host, a process on it writing to the volume, a path of it down (VM lab: Docker, lvm + scsi3, multipath)")
		tally.Start()
		cut := time.Now()
		d.lab.MustRun(t, b, "iptables -I OUTPUT -p tcp -d "+vmlab.HostGateway+" --dport "+d.etcdPort+" -j DROP")
		d.waitApp(t, a, appName, a, 3*time.Minute)
		running := time.Since(cut)
		if f, rev, err := d.st.GetFence(context.Background(), b); err != nil || rev == 0 || f.By != a {
			t.Fatalf("B's fence record: %+v rev %d %v; want fenced by %s", f, rev, err, a)
		}
		// What A sees of the file B's process appends to, read from the
		// LUN (page cache dropped), does not change.
		read := func() string {
			d.lab.MustRun(t, a, "sync; echo 3 >/proc/sys/vm/drop_caches")
			return strings.TrimSpace(d.mustDocker(t, a, "exec "+appName+" sh -c 'wc -l </data/rogue.log; sha256sum </data/rogue.log'"))
		}
		before := read()
		time.Sleep(30 * time.Second)
		if after := read(); after != before {
			t.Fatalf("A's view of the file B's process writes changed over 30 s after the fence: %q, then %q", before, after)
		}
		if st := d.lab.MustRun(t, b, "tail -n 3 /root/rogue.status"); strings.Contains(st, "ok") || !strings.Contains(st, "fail") {
			t.Fatalf("B's process still fsyncs after the fence:\n%s", st)
		}
		d.lab.MustRun(t, b, "dmesg | grep -m3 'reservation conflict'")
		// (c) B's path back: multipathd reinstates it, not registered.
		d.lab.MustRun(t, b, "ip link set "+ifc+" up && relocvol-lun 0 && sleep 5")
		for _, p := range d.lab.Paths(t, a) {
			if k := keysOnDev(t, d.lab, a, p); count(k, keyB) != 0 {
				t.Fatalf("B's key is registered again after its path came back (read through A's %s): %x", p, k)
			}
		}
		if st := d.lab.MustRun(t, b, "sleep 1; tail -n 3 /root/rogue.status"); strings.Contains(st, "ok") {
			t.Fatalf("B's process fsyncs again once its path is back:\n%s", st)
		}
		tally.Log(d.readLog(t, a))
		sizes := d.checkLog(t, a, a, b, a, b, a)
		if got := sizes[0] + sizes[1] + sizes[2] + sizes[3]; got < seen {
			t.Fatalf("the log has %d lines before A's last run, but B had written %d when it was cut off", got, seen)
		}
		tally.Pass(running)
		t.Logf("BENCHMARK partition with an unstoppable writer: the writer ran on A %s after B was cut off etcd (lease TTL %ds)", running.Round(100*time.Millisecond), ttl)

		// Healed: B cannot clean up while its process holds the volume.
		d.lab.MustRun(t, b, "iptables -D OUTPUT -p tcp -d "+vmlab.HostGateway+" --dport "+d.etcdPort+" -j DROP")
		time.Sleep(10 * time.Second)
		if _, rev, err := d.st.GetFence(context.Background(), b); err != nil || rev == 0 {
			t.Fatalf("B rejoined (its fence record cleared) while a process holds its volume open (%v)", err)
		}
		d.lab.MustRun(t, b, "kill $(cat /root/rogue.pid)")
		testenv.Eventually(t, 3*time.Minute, "B rejoined: registered through every path, fence cleared, its writer container gone", func() error {
			if _, rev, err := d.st.GetFence(context.Background(), b); err != nil || rev != 0 {
				return fmt.Errorf("B's fence record still there (%v)", err)
			}
			if k := keysOn(t, d.lab, a); count(k, keyB) != paths {
				return fmt.Errorf("keys %x: B's not once per path", k)
			}
			for _, app := range []string{appName, sideApp} {
				if ps, err := d.docker(t, b, "ps -aq --filter name=^"+app+"$"); err != nil || ps != "" {
					return fmt.Errorf("B still has a container %s %q (%v)", app, ps, err)
				}
			}
			return nil
		})
		d.fencedOnPurpose[b] = time.Now()
		// The volume B's process wrote to (v3's LUN was checked after
		// the power loss).
		d.fsckClean(t, a, appName, "v1")
	})
}
