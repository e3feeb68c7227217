package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relocvol/relocvol/internal/testenv"
)

const benchRef = "relocvol-bench:latest"

// BenchmarkDockerRun is what a container's start and stop cost with a
// relocvol volume against Docker's own local driver on the same kind of
// storage: `docker run --rm -v VOL:/data IMAGE true` on a relocvol volume
// (the managed plugin as built by scripts/build-plugin.sh: loop backend,
// embedded etcd) and on a local volume on an ext4 loop device of the same
// size on the same disk (-o type=ext4 -o device=/dev/loopN), one run of
// each per iteration, alternating. It reports each one's median, their
// ratio (issue 14: ≤ 1.1×) and the means of the plugin's own Mount steps
// (relocvol_mount_phase_seconds: claim, attach, mount).
//
//	go test -run XXX -bench DockerRun -benchtime 20x ./e2e   (as root)
func BenchmarkDockerRun(b *testing.B) {
	testenv.RequireCommands(b, "losetup", "mkfs.ext4", "truncate")
	bp := installBenchPlugin(b)
	dirs := bp.dirs
	mustDocker(b, "volume", "create", "-d", benchRef, "-o", "size=64M", "bench-relocvol")
	b.Cleanup(func() { _, _ = docker(b, "volume", "rm", "-f", "bench-relocvol", "bench-local") })

	img := filepath.Join(dirs.dir, "local.img")
	for _, argv := range [][]string{{"truncate", "-s", "64M", img}, {"mkfs.ext4", "-q", "-F", img}} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		b.Fatalf("losetup %s: %v\n%s", img, err, out)
	}
	dev := strings.TrimSpace(string(out))
	b.Cleanup(func() { _ = exec.Command("losetup", "--detach", dev).Run() })
	mustDocker(b, "volume", "create", "-d", "local", "-o", "type=ext4", "-o", "device="+dev, "bench-local")

	run := func(vol string) time.Duration {
		start := time.Now()
		mustDocker(b, "run", "--rm", "-v", vol+":/data", image, "true")
		return time.Since(start)
	}
	run("bench-relocvol") // warm: the image's layers, the plugin's first claim
	run("bench-local")
	var rv, lv []time.Duration
	b.ResetTimer()
	for b.Loop() {
		rv = append(rv, run("bench-relocvol"))
		lv = append(lv, run("bench-local"))
	}
	b.StopTimer()
	mr, ml := testenv.Median(rv), testenv.Median(lv)
	b.ReportMetric(msOf(mr), "relocvol-ms")
	b.ReportMetric(msOf(ml), "local-ms")
	b.ReportMetric(float64(mr)/float64(ml), "ratio")
	for phase, mean := range mountPhases(b, bp.api+"/metrics", bp.dirs.token(b, "api-token-read")) {
		b.ReportMetric(msOf(mean), phase+"-ms")
	}
}

// benchPlugin is the managed plugin as a benchmark installed it.
type benchPlugin struct {
	dirs folders
	api  string // its REST API's base URL
}

// installBenchPlugin builds the plugin with scripts/build-plugin.sh and
// enables it as benchRef on host bench-host, its folders temporary, on the
// etcd at endpoints (its embedded etcd when none), its API on a free port;
// removed when b ends.
func installBenchPlugin(b *testing.B, endpoints ...string) benchPlugin {
	b.Helper()
	testenv.RequireDocker(b)
	root := testenv.RepoRoot(b)
	bp := benchPlugin{dirs: hostDirs(b)}
	apiPort := testenv.FreePorts(b, 1)
	bp.api = fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	b.Cleanup(func() {
		_, _ = docker(b, "plugin", "disable", "-f", benchRef)
		_, _ = docker(b, "plugin", "rm", "-f", benchRef)
	})
	buildPlugin(b, root, benchRef)
	etcd := fmt.Sprintf("RELOCVOL_EMBEDDED_ETCD=127.0.0.1:%d", testenv.FreePorts(b, 2))
	if len(endpoints) > 0 {
		etcd = "RELOCVOL_ETCD_ENDPOINTS=" + strings.Join(endpoints, ",")
	}
	mustDocker(b, append(append([]string{"plugin", "set", benchRef}, bp.dirs.sources()...),
		"RELOCVOL_HOST=bench-host", etcd, fmt.Sprintf("RELOCVOL_API_ADDR=127.0.0.1:%d", apiPort))...)
	mustDocker(b, "plugin", "enable", benchRef)
	return bp
}

// mountPhases are the mean durations of the plugin's Mount steps, from its
// relocvol_mount_phase_seconds histogram.
func mountPhases(b *testing.B, url, token string) map[string]time.Duration {
	b.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	sums, counts := map[string]float64{}, map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		for suffix, into := range map[string]map[string]float64{"_sum": sums, "_count": counts} {
			prefix := "relocvol_mount_phase_seconds" + suffix + `{phase="`
			if !strings.HasPrefix(line, prefix) {
				continue
			}
			phase, value, _ := strings.Cut(strings.TrimPrefix(line, prefix), `"} `)
			if v, err := strconv.ParseFloat(value, 64); err == nil {
				into[phase] = v
			}
		}
	}
	if len(counts) == 0 {
		b.Fatalf("GET %s: no relocvol_mount_phase_seconds", url)
	}
	out := map[string]time.Duration{}
	for phase, n := range counts {
		if n > 0 {
			out[phase] = time.Duration(sums[phase] / n * float64(time.Second))
		}
	}
	return out
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchVolumes is how many volumes BenchmarkVolumeLs makes of each driver:
// RELOCVOL_BENCH_VOLUMES, 1,000 by default (scripts/bench.sh --full:
// 10,000).
func benchVolumes(b *testing.B) int {
	b.Helper()
	v := os.Getenv("RELOCVOL_BENCH_VOLUMES")
	if v == "" {
		return 1000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("RELOCVOL_BENCH_VOLUMES=%q: give a number of volumes, e.g. 10000", v)
	}
	return n
}

// BenchmarkVolumeLs is `docker volume ls` with n relocvol volumes against
// n local volumes in the same engine, each driver's listing on its own
// (--filter driver=…), alternating, the median of each (issue 14: ratio ≤
// 1.5×); and on the way the rate of `docker volume create` of each (eight
// at once) and the plugin's memory (its resident set) with n volumes.
//
//	go test -run XXX -bench VolumeLs -benchtime 10x ./e2e   (as root)
func BenchmarkVolumeLs(b *testing.B) {
	n := benchVolumes(b)
	installBenchPlugin(b)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("bench-%06d", i)
	}
	rate := map[string]float64{}
	for _, drv := range []string{benchRef, "local"} {
		prefix := map[string]string{benchRef: "rv-", "local": "lv-"}[drv]
		start := time.Now()
		var opts []string // local volumes take no size
		if drv == benchRef {
			opts = []string{"-o", "size=8M"}
		}
		eachAtOnce(b, 8, names, func(name string) []string {
			return append([]string{"volume", "create", "-d", drv, prefix + name}, opts...)
		})
		rate[drv] = float64(n) / time.Since(start).Seconds()
		b.Cleanup(func() {
			eachAtOnce(b, 8, names, func(name string) []string { return []string{"volume", "rm", "-f", prefix + name} })
		})
	}
	rss := pluginRSS(b, benchRef)
	ls := func(drv string) time.Duration {
		start := time.Now()
		out := mustDocker(b, "volume", "ls", "-q", "--filter", "driver="+drv)
		took := time.Since(start)
		if got := strings.Count(out, "\n") + 1; got != n {
			b.Fatalf("docker volume ls --filter driver=%s listed %d volumes, want %d", drv, got, n)
		}
		return took
	}
	ls(benchRef)
	ls("local")
	var rv, lv []time.Duration
	for b.Loop() {
		rv = append(rv, ls(benchRef))
		lv = append(lv, ls("local"))
	}
	mr, ml := testenv.Median(rv), testenv.Median(lv)
	b.ReportMetric(float64(n), "volumes")
	b.ReportMetric(msOf(mr), "relocvol-ls-ms")
	b.ReportMetric(msOf(ml), "local-ls-ms")
	b.ReportMetric(float64(mr)/float64(ml), "ratio")
	b.ReportMetric(rate[benchRef], "relocvol-creates/s")
	b.ReportMetric(rate["local"], "local-creates/s")
	b.ReportMetric(rss, "plugin-RSS-MB")
}

// eachAtOnce runs `docker ARGS(name)` for every name, workers at once.
func eachAtOnce(b *testing.B, workers int, names []string, args func(string) []string) {
	b.Helper()
	next := make(chan string)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range next {
				a := args(name)
				if out, err := docker(b, a...); err != nil {
					errs <- fmt.Errorf("docker %s: %v: %s", strings.Join(a, " "), err, out)
					return
				}
			}
		}()
	}
	for _, name := range names {
		next <- name
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// pluginPID is the managed plugin ref's process, as runc reports it.
func pluginPID(b *testing.B, ref string) int {
	b.Helper()
	id := mustDocker(b, "plugin", "inspect", "-f", "{{.Id}}", ref)
	out, err := exec.Command("runc", "--root", "/run/docker/runtime-runc/plugins.moby", "state", id).Output()
	if err != nil {
		b.Fatalf("runc state of plugin %s: %v", ref, err)
	}
	var st struct{ Pid int }
	if err := json.Unmarshal(out, &st); err != nil || st.Pid == 0 {
		b.Fatalf("runc state of plugin %s: %q %v", ref, out, err)
	}
	return st.Pid
}

// pluginRSS is the resident memory of the managed plugin ref's process,
// in MB.
func pluginRSS(b *testing.B, ref string) float64 {
	b.Helper()
	pid := pluginPID(b, ref)
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if kb, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")), 64)
			return v / 1024
		}
	}
	b.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// BenchmarkAtRest is what a host costs in steady state: the plugin on an
// etcd of its own (run by the benchmark, so that its requests can be
// counted) with 100 volumes, each mounted by an idle container, measured
// over RELOCVOL_BENCH_REST (1m): etcd requests per second (every gRPC
// message etcd received: renewals, reads, watches) and the plugin's CPU
// (its process's user and system time, % of one core).
//
//	go test -run XXX -bench AtRest -benchtime 1x ./e2e   (as root)
func BenchmarkAtRest(b *testing.B) {
	const vols = 100
	window := time.Minute
	if v := os.Getenv("RELOCVOL_BENCH_REST"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("RELOCVOL_BENCH_REST=%q: give a duration, e.g. 5m", v)
		}
		window = d
	}
	installBenchPlugin(b, testenv.EtcdOn(b, "127.0.0.1")...)
	var names []string
	for i := range vols {
		names = append(names, fmt.Sprintf("rest-%03d", i))
	}
	b.Cleanup(func() {
		eachAtOnce(b, 8, names, func(n string) []string { return []string{"rm", "-f", n} })
		eachAtOnce(b, 8, names, func(n string) []string { return []string{"volume", "rm", "-f", n} })
	})
	eachAtOnce(b, 8, names, func(n string) []string {
		return []string{"run", "-d", "--name", n, "-v", n + ":/data", "--volume-driver", benchRef, image, "sleep", "infinity"}
	})
	pid := pluginPID(b, benchRef)
	for b.Loop() {
		msgs0, cpu0, start := etcdMessages(b), processCPU(b, pid), time.Now()
		time.Sleep(window)
		took := time.Since(start)
		b.ReportMetric((etcdMessages(b)-msgs0)/took.Seconds(), "etcd-requests/s")
		b.ReportMetric(100*(processCPU(b, pid)-cpu0).Seconds()/took.Seconds(), "plugin-CPU-%")
		b.ReportMetric(vols, "volumes")
	}
}

// etcdMessages is every gRPC message this process's etcd servers have
// received (grpc_server_msg_received_total, all methods).
func etcdMessages(b *testing.B) float64 {
	b.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var n float64
	found := false
	for _, f := range families {
		if f.GetName() == "grpc_server_msg_received_total" {
			found = true
			for _, m := range f.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	if !found {
		b.Fatal("no grpc_server_msg_received_total: the embedded etcd registers no gRPC metrics")
	}
	return n
}

// processCPU is the user and system time pid has used.
func processCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command's closing parenthesis: utime, stime are
	// the 12th and 13th of them, in clock ticks (100 a second on Linux).
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return time.Duration((ut + st) / 100 * float64(time.Second))
}
