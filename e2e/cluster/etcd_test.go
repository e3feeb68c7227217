package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

// etcdMember is one process of the test's three-member etcd on the host:
// the etcd server this module is built with, as its own binary.
type etcdMember struct {
	name, dir    string
	client, peer int
	args         []string
	cmd          *exec.Cmd
}

// etcdCluster starts three etcd processes on the host, their clients on
// every address over TLS with client certificates (the certificates in
// tls, for 127.0.0.1 and HostAlias), their peers on loopback.
func etcdCluster(t *testing.T, tls string) []*etcdMember {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "etcd")
	if out, err := exec.Command("go", "build", "-o", bin, "go.etcd.io/etcd/server/v3").CombinedOutput(); err != nil {
		t.Fatalf("build etcd: %v\n%s", err, out)
	}
	var ms []*etcdMember
	var initial []string
	for i := 1; i <= 3; i++ {
		m := &etcdMember{name: fmt.Sprintf("e%d", i), dir: filepath.Join(t.TempDir(), "data"), client: testenv.FreePorts(t, 1), peer: testenv.FreePorts(t, 1)}
		ms = append(ms, m)
		initial = append(initial, fmt.Sprintf("%s=http://127.0.0.1:%d", m.name, m.peer))
	}
	for _, m := range ms {
		m.args = []string{bin, "--name", m.name, "--data-dir", m.dir, "--log-level", "error",
			"--listen-client-urls", fmt.Sprintf("https://0.0.0.0:%d", m.client),
			"--advertise-client-urls", fmt.Sprintf("https://127.0.0.1:%d", m.client),
			"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", m.peer),
			"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", m.peer),
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--cert-file", filepath.Join(tls, "etcd.pem"), "--key-file", filepath.Join(tls, "etcd-key.pem"),
			"--trusted-ca-file", filepath.Join(tls, "ca.pem"), "--client-cert-auth",
			"--unsafe-no-fsync"}
		m.start(t)
		t.Cleanup(func() { m.kill() })
	}
	return ms
}

func (m *etcdMember) start(t *testing.T) {
	t.Helper()
	m.cmd = exec.Command(m.args[0], m.args[1:]...)
	w := testenv.LogWriter{T: t, Prefix: "etcd " + m.name + ": "}
	m.cmd.Stdout, m.cmd.Stderr = w, w
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start etcd %s: %v", m.name, err)
	}
}

// kill is the member's power loss (SIGKILL).
func (m *etcdMember) kill() {
	if m.cmd != nil && m.cmd.Process != nil {
		_ = m.cmd.Process.Kill()
		_ = m.cmd.Wait()
	}
	m.cmd = nil
}

// TestEtcdCluster runs the hosts on a three-member etcd of real processes,
// over TLS with client certificates, and takes it apart under a writer:
// one member lost changes nothing; the etcd leader killed together with
// the writer's host, the failover still completes; the majority lost, no
// host can renew its lease, so each assumes it is being failed over:
// Mounts are refused and the writer is stopped (self-fencing); the
// majority back, everything resumes without an operator, no line lost.
func TestEtcdCluster(t *testing.T) {
	requireDocker(t)
	root := testenv.RepoRoot(t)
	pluginDir := buildPlugin(t, root)
	tls := t.TempDir()
	ca, caKey := testenv.NewCert(t, tls, "ca", nil, nil)
	testenv.NewCert(t, tls, "etcd", ca, caKey, HostAlias)
	testenv.NewCert(t, tls, "client", ca, caKey)
	ms := etcdCluster(t, tls)
	var hostEPs, nodeEPs []string
	for _, m := range ms {
		hostEPs = append(hostEPs, fmt.Sprintf("https://127.0.0.1:%d", m.client))
		nodeEPs = append(nodeEPs, fmt.Sprintf("https://%s:%d", HostAlias, m.client))
	}
	files := map[string][]byte{}
	for _, f := range []string{"ca.pem", "client.pem", "client-key.pem"} {
		b, err := os.ReadFile(filepath.Join(tls, f))
		if err != nil {
			t.Fatal(err)
		}
		files["tls/"+f] = b
	}
	var cli *clientv3.Client
	testenv.Eventually(t, time.Minute, "the three etcd members form a cluster", func() error {
		var err error
		cli, err = store.Dial(context.Background(), hostEPs, store.TLSFiles{CA: filepath.Join(tls, "ca.pem"), Cert: filepath.Join(tls, "client.pem"), Key: filepath.Join(tls, "client-key.pem")})
		return err
	})
	defer cli.Close()
	in := "/var/lib/relocvol/san/tls/"
	c := Start(t, Options{
		Nodes: []string{"n1", "n2"}, PluginDir: pluginDir, Images: []string{"debian:bookworm-slim"}, SANFiles: files,
		PluginEnv: []string{
			"RELOCVOL_LEASE_TTL=" + leaseTTL.String(), "RELOCVOL_API_ADDR=0.0.0.0:7480", "RELOCVOL_API_TOKEN=" + apiToken,
			"RELOCVOL_ETCD_ENDPOINTS=" + strings.Join(nodeEPs, ","),
			"RELOCVOL_ETCD_CA=" + in + "ca.pem", "RELOCVOL_ETCD_CERT=" + in + "client.pem", "RELOCVOL_ETCD_KEY=" + in + "client-key.pem",
		},
	})
	ctx := context.Background()
	n1, n2 := c.Node("n1"), c.Node("n2")
	local := func(n *Node) (api.Local, error) {
		return api.NewClient("http://"+n.IP()+":7480", apiToken).Local(ctx)
	}
	onN2 := api.NewClient("http://"+n2.IP()+":7480", apiToken)
	anyAPI := func(f func(*api.Client) error) error { return f(onN2) }
	leader := func() *etcdMember {
		t.Helper()
		for _, m := range ms {
			if m.cmd == nil {
				continue
			}
			st, err := cli.Status(ctx, fmt.Sprintf("https://127.0.0.1:%d", m.client))
			if err == nil && st.Leader == st.Header.MemberId {
				return m
			}
		}
		t.Fatal("no etcd leader")
		return nil
	}
	n1.MustDocker(t, "volume", "create", "-d", "relocvol", "-o", "size=64M", "data")
	n1.MustDocker(t, "volume", "create", "-d", "relocvol", "-o", "size=16M", "probe")
	n1.MustDocker(t, "run", "-d", "--name", appName, "--label", "relocvol.relocate=true",
		"-v", "data:/data", "-v", "/etc/hostname:/node:ro", "debian:bookworm-slim", "sh", "-c", writerScript)
	waitApp(t, anyAPI, "recorded on n1", func(a api.App) bool { return a.DesiredHost == "n1" && a.ActualHost == "n1" })
	waitLines(t, n1, "n1", 20)

	// ---- one member lost: nothing visible ----
	var follower *etcdMember
	if l := leader(); l == ms[0] {
		follower = ms[1]
	} else {
		follower = ms[0]
	}
	follower.kill()
	for end := time.Now().Add(2 * leaseTTL); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		for _, n := range []*Node{n1, n2} {
			if l, err := local(n); err != nil || !l.Alive || l.SelfFencing != nil {
				t.Fatalf("etcd member %s lost: %s %+v %v", follower.name, n.Name, l, err)
			}
		}
	}
	n2.MustDocker(t, "run", "--rm", "-v", "probe:/p", "debian:bookworm-slim", "true")
	waitLines(t, n1, "n1", countLines(t, n1)+20)
	t.Logf("etcd member %s lost for %s: every host alive, a Mount on n2 served, the writer wrote on", follower.name, 2*leaseTTL)
	follower.start(t)

	// ---- the etcd leader killed with the writer's host ----
	failover := testenv.NewTally(t, "power loss of the writer's host while the etcd leader is killed (3-member etcd, TLS)")
	failover.Start()
	lines := countLines(t, n1)
	el := leader()
	n1.Kill(t)
	el.kill()
	killed := time.Now()
	waitApp(t, anyAPI, "failed over to n2", func(a api.App) bool { return a.ActualHost == "n2" && a.Relocation == nil })
	waitLines(t, n2, "n2", lines+20)
	failover.Log(readLog(t, n2))
	checkLog(t, n2, []string{"n1", "n2"})
	failover.Pass(time.Since(killed))
	t.Logf("BENCHMARK n1 and the etcd leader %s killed at once: the writer runs on n2 %s later", el.name, time.Since(killed).Round(100*time.Millisecond))
	el.start(t)
	booted := time.Now()
	n1.Boot(t)
	rejoin(t, anyAPI, n1, "n1", booted)

	// ---- the majority lost: every host assumes it is failed over ----
	majority := testenv.NewTally(t, "etcd majority lost, then back (3-member etcd, TLS)")
	majority.Start()
	before := countLines(t, n2)
	gone := ms[:2]
	for _, m := range gone {
		m.kill()
	}
	lost := time.Now()
	testenv.Eventually(t, 30*time.Second, "n2's writer stopped by its self-fencing", func() error {
		if running, _ := n2.Docker("inspect", "-f", "{{.State.Running}}", appName); running != "false" {
			return fmt.Errorf("running %q", running)
		}
		return nil
	})
	stopped := time.Since(lost)
	// moby forgets a volume whose Get fails with anything but a network
	// error, and `docker run` then creates a local one of that name: the
	// run must be refused, and probe stay relocvol's (docs/safety.md 25).
	if out, err := n1.Docker("run", "--rm", "-v", "probe:/p", "debian:bookworm-slim", "true"); err == nil {
		t.Fatalf("a container on n1 ran with volume probe without an etcd majority: %s", out)
	} else {
		t.Logf("without an etcd majority a Mount on n1 is refused: %v", err)
	}
	if drv, err := n1.Docker("volume", "inspect", "-f", "{{.Driver}} {{index .Status \"state\"}}", "probe"); err != nil || drv != Plugin+":latest unknown" {
		t.Fatalf("volume probe on n1 without an etcd majority: %q %v; want relocvol's, state unknown (not a local volume)", drv, err)
	}
	t.Logf("etcd majority lost: n2 stopped its writer %s later (lease TTL %s)", stopped.Round(100*time.Millisecond), leaseTTL)

	// ---- the majority back: it resumes by itself ----
	for _, m := range gone {
		m.start(t)
	}
	back := time.Now()
	testenv.Eventually(t, 2*time.Minute, "n2's writer running again", func() error {
		if running, _ := n2.Docker("inspect", "-f", "{{.State.Running}}", appName); running != "true" {
			return fmt.Errorf("running %q", running)
		}
		return nil
	})
	resumed := time.Since(back)
	waitLines(t, n2, "n2", before+20)
	majority.Log(readLog(t, n2))
	checkLog(t, n2, []string{"n1", "n2"})
	majority.Pass(resumed)
	testenv.Eventually(t, time.Minute, "a Mount on n1 served again", func() error {
		out, err := n1.Docker("run", "--rm", "-v", "probe:/p", "debian:bookworm-slim", "true")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	t.Logf("BENCHMARK etcd majority back: n2's writer running again %s later, no line lost; Mounts served again", resumed.Round(100*time.Millisecond))
}
