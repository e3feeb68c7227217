// Package cluster runs several relocvol hosts on one machine for end-to-end
// tests. Each node is a docker-in-docker container (image relocvol-node:dev,
// made by scripts/lib.sh ensure_node_image) that runs its own dockerd 20.10
// with the relocvol managed plugin created from a plugin folder (the one
// scripts/build-plugin.sh leaves in PLUGIN_DIR). The nodes share:
//
//   - one host folder as the loop backend's "SAN", at /san in every node;
//   - the host's kernel, so its loop devices (`losetup --list` on one node
//     shows the devices attached on the others);
//   - a bridge network of their own, whose gateway is the host as the nodes
//     see it (also named HostAlias in their /etc/hosts), e.g. for an etcd the
//     test runs on the host; each node keeps its address (Node.IP) across
//     Kill and Boot, Disconnect and Connect.
//
// `docker kill` of a node is a power loss (Node.Kill, then Node.Boot), and
// `docker network disconnect` a partition (Node.Disconnect, Node.Connect).
// Everything is removed when the test ends; when it failed, each node's
// dockerd log and plugin output are logged first.
package cluster

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/relocvol/relocvol/internal/testenv"
)

const (
	// Plugin is the managed plugin's name in every node: the volume driver
	// of `docker volume create -d relocvol`.
	Plugin = "relocvol"
	// HostAlias names the host (the network's gateway) in every node's
	// /etc/hosts, so that PluginEnv can point at a service on the host
	// before the network, hence the gateway's address, exists:
	// RELOCVOL_ETCD_ENDPOINTS=http://relocvol-host:PORT.
	HostAlias = "relocvol-host"
	// SANDir is where the shared SAN folder appears in every node; the
	// plugin's san mount points there.
	SANDir = "/san"
	// StateDir is the plugin's state mount source in every node (a folder of
	// the node's own filesystem: it survives Kill and Boot).
	StateDir = "/var/lib/relocvol"

	// DefaultImage is the node image made by scripts/lib.sh
	// ensure_node_image; RELOCVOL_NODE_IMAGE overrides it, as in lib.sh.
	DefaultImage = "relocvol-node:dev"

	labelCluster = "io.relocvol.cluster"     // the cluster's id
	labelPID     = "io.relocvol.cluster.pid" // the test process that made it
	bootTimeout  = 2 * time.Minute           // a node's dockerd and plugin, 2 cores shared by every node
	cmdTimeout   = 3 * time.Minute           // any one command
)

// Options describe a cluster.
type Options struct {
	// Nodes are the nodes' names (e.g. n1 n2 n3): each node's hostname,
	// network alias and RELOCVOL_HOST.
	Nodes []string
	// PluginDir is a folder with config.json and rootfs/ (scripts/build-plugin.sh
	// with PLUGIN_DIR=...), mounted read-only at /plugin in every node.
	// Empty: no plugin is installed.
	PluginDir string
	// PluginEnv are KEY=VALUE settings for `docker plugin set`, after
	// RELOCVOL_HOST=<node> san.source=/san state.source=/var/lib/relocvol
	// (so they may override those). The LVM mounts keep their defaults,
	// which the node's init makes (scripts/node/entrypoint.sh).
	PluginEnv []string
	// EtcdPort, when set, points every node's plugin at an etcd on the host:
	// RELOCVOL_ETCD_ENDPOINTS=http://<gateway>:<EtcdPort> (PluginEnv may
	// override it). The etcd must listen on the gateway's address, e.g.
	// testenv.EtcdOn(t, "0.0.0.0").
	EtcdPort string
	// Images are host images copied into every node (docker save | docker
	// load), e.g. debian:bookworm-slim.
	Images []string
	// Repo is the repository root (for scripts/lib.sh); default
	// $RELOCVOL_REPO, else the checkout this package was built from.
	Repo string
}

// Cluster is a running set of nodes; Start makes one.
type Cluster struct {
	t       testing.TB
	id      string
	network string
	subnet  netip.Prefix
	gateway netip.Addr
	dir     string // host temp folder: san/, <node>/docker, <node>/log, images.tar
	san     string
	image   string
	opt     Options
	nodes   []*Node
}

// Node is one docker-in-docker host of a Cluster.
type Node struct {
	// Name is the node's hostname, network alias and RELOCVOL_HOST.
	Name      string
	c         *Cluster
	container string     // the container's name in the host engine
	dir       string     // host folder of its /var/lib/docker and /var/log
	ip        netip.Addr // its fixed address on the cluster's network

	mu       sync.Mutex
	pluginID string // the plugin's full id in this node's engine
}

// Start creates a cluster for t: a bridge network, the SAN folder and one
// node per name, each with its dockerd up, opt.Images loaded and (with
// opt.PluginDir) the plugin created, set and enabled. Nodes start in
// parallel. It skips t (fails it when CI=true) without root or a Docker
// engine, and removes everything when t ends.
func Start(t testing.TB, opt Options) *Cluster {
	t.Helper()
	requireDocker(t)
	if len(opt.Nodes) == 0 {
		t.Fatal("cluster.Start: no nodes")
	}
	begin := time.Now()
	c := &Cluster{t: t, opt: opt, id: "rvc-" + randomHex(3), dir: t.TempDir(), image: nodeImage()}
	c.san = filepath.Join(c.dir, "san")
	if err := os.MkdirAll(c.san, 0o755); err != nil {
		t.Fatal(err)
	}
	ensureImage(t, opt.Repo, c.image)
	reapStale(t)

	// From here on, everything made is removed at the end, also when Start
	// fails half-way.
	t.Cleanup(c.cleanup)
	c.network = c.id
	if err := c.createNetwork(); err != nil {
		t.Fatalf("cluster: %v", err)
	}

	seen := map[string]bool{}
	ip := c.gateway
	for _, name := range opt.Nodes {
		if seen[name] {
			t.Fatalf("cluster: node %s named twice", name)
		}
		seen[name] = true
		if ip = ip.Next(); !c.subnet.Contains(ip) {
			t.Fatalf("cluster: no address left in %s for node %s", c.subnet, name)
		}
		n := &Node{Name: name, c: c, container: c.id + "-" + name, dir: filepath.Join(c.dir, name), ip: ip}
		for _, d := range []string{"docker", "log"} {
			if err := os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		c.nodes = append(c.nodes, n)
	}

	var images string
	if len(opt.Images) > 0 {
		images = filepath.Join(c.dir, "images.tar")
		if _, err := host(append([]string{"save", "-o", images}, opt.Images...)...); err != nil {
			t.Fatalf("cluster: %v", err)
		}
	}

	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.create(images)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("cluster: %v", err)
	}
	t.Logf("cluster %s: %d nodes up in %s (network %s %s, gateway %s, SAN %s)",
		c.id, len(c.nodes), time.Since(begin).Round(100*time.Millisecond), c.network, c.subnet, c.gateway, c.san)
	return c
}

// createNetwork makes the cluster's bridge network with a subnet of its
// own: Docker picks a free one, then the network is made again with that
// subnet given, because only then does Docker take fixed node addresses
// (--ip), which keep each node's address across restarts and reconnects.
func (c *Cluster) createNetwork() error {
	labels := []string{"--label", labelCluster + "=" + c.id, "--label", labelPID + "=" + strconv.Itoa(os.Getpid())}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if _, err = host(append(append([]string{"network", "create", "--driver", "bridge"}, labels...), c.network)...); err != nil {
			return err
		}
		out, ierr := host("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", c.network)
		if _, err := host("network", "rm", c.network); err != nil {
			return err
		}
		if ierr != nil {
			return ierr
		}
		c.subnet = netip.Prefix{}
		for _, f := range strings.Fields(out) {
			if p, err := netip.ParsePrefix(f); err == nil && p.Addr().Is4() {
				c.subnet = p.Masked()
				break
			}
		}
		if !c.subnet.IsValid() {
			return fmt.Errorf("network %s got no IPv4 subnet (%q)", c.network, out)
		}
		c.gateway = c.subnet.Addr().Next()
		_, err = host(append(append([]string{"network", "create", "--driver", "bridge",
			"--subnet", c.subnet.String(), "--gateway", c.gateway.String()}, labels...), c.network)...)
		if err == nil || !strings.Contains(err.Error(), "overlap") {
			return err
		}
		// Another network took that subnet in between: again.
	}
	return err
}

// Gateway is the network's gateway address: the host as the nodes see it.
func (c *Cluster) Gateway() string { return c.gateway.String() }

// SAN is the host path of the folder shared by every node at /san.
func (c *Cluster) SAN() string { return c.san }

// Network is the name of the cluster's bridge network in the host engine.
func (c *Cluster) Network() string { return c.network }

// Nodes are the nodes in the order of Options.Nodes.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// Node is the node of that name; it fails the test if there is none.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.nodes {
		if n.Name == name {
			return n
		}
	}
	c.t.Helper()
	c.t.Fatalf("cluster: no node %q", name)
	return nil
}

// create runs the node's container, waits for its dockerd, loads the images
// and installs the plugin.
func (n *Node) create(images string) error {
	c := n.c
	start := time.Now()
	args := []string{"run", "-d", "--name", n.container, "--hostname", n.Name,
		"--label", labelCluster + "=" + c.id, "--label", labelPID + "=" + strconv.Itoa(os.Getpid()),
		"--network", c.network, "--ip", n.ip.String(), "--network-alias", n.Name,
		"--add-host", HostAlias + ":" + c.gateway.String(),
		// Swarm tasks use the images loaded into the node, with no pull
		// (no registry here), as moby's own Swarm tests do.
		"-e", "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1",
		// Everything but --privileged (refused here: no CAP_SYS_RESOURCE).
		"--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
		"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
		"--device-cgroup-rule", "a *:* rwm",
		"-v", filepath.Join(n.dir, "docker") + ":/var/lib/docker",
		"-v", filepath.Join(n.dir, "log") + ":/var/log",
		"-v", "/dev:/dev",
		"-v", c.san + ":" + SANDir,
	}
	if c.opt.PluginDir != "" {
		args = append(args, "-v", c.opt.PluginDir+":/plugin:ro")
	}
	if _, err := host(append(args, c.image)...); err != nil {
		return err
	}
	if err := n.waitDockerd(); err != nil {
		return err
	}
	up := time.Since(start)
	if images != "" {
		f, err := os.Open(images)
		if err != nil {
			return err
		}
		_, err = run(f, "docker", "exec", "-i", n.container, "docker", "load", "-q")
		f.Close()
		if err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	loaded := time.Since(start)
	if c.opt.PluginDir != "" {
		if err := n.installPlugin(); err != nil {
			return err
		}
	}
	c.t.Logf("node %s (%s): dockerd up in %s, images loaded at %s, plugin enabled at %s",
		n.Name, n.container, up.Round(100*time.Millisecond), loaded.Round(100*time.Millisecond),
		time.Since(start).Round(100*time.Millisecond))
	return nil
}

func (n *Node) installPlugin() error {
	set := []string{"plugin", "set", Plugin, "RELOCVOL_HOST=" + n.Name, "san.source=" + SANDir, "state.source=" + StateDir}
	if n.c.opt.EtcdPort != "" {
		set = append(set, "RELOCVOL_ETCD_ENDPOINTS=http://"+net.JoinHostPort(n.c.Gateway(), n.c.opt.EtcdPort))
	}
	set = append(set, n.c.opt.PluginEnv...)
	for _, args := range [][]string{{"plugin", "create", Plugin, "/plugin"}, set, {"plugin", "enable", Plugin}} {
		if _, err := n.Docker(args...); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	id, err := n.Docker("plugin", "inspect", "-f", "{{.Id}}", Plugin)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	n.mu.Lock()
	n.pluginID = id
	n.mu.Unlock()
	return nil
}

// Container is the node's container name in the host engine.
func (n *Node) Container() string { return n.container }

// IP is the node's address on the cluster's network (reachable from the
// host too); it stays the same across Kill and Boot, Disconnect and Connect.
func (n *Node) IP() string { return n.ip.String() }

// Docker runs the node's docker CLI (`docker exec NODE docker ARGS...`) and
// returns its combined output, trimmed.
func (n *Node) Docker(args ...string) (string, error) {
	return n.Exec(append([]string{"docker"}, args...)...)
}

// MustDocker is Docker that fails the test on error.
func (n *Node) MustDocker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Docker(args...)
	if err != nil {
		t.Fatalf("node %s: %v", n.Name, err)
	}
	return out
}

// Exec runs a command in the node and returns its combined output, trimmed.
func (n *Node) Exec(args ...string) (string, error) {
	return run(nil, "docker", append([]string{"exec", n.container}, args...)...)
}

// MustExec is Exec that fails the test on error.
func (n *Node) MustExec(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Exec(args...)
	if err != nil {
		t.Fatalf("node %s: %v", n.Name, err)
	}
	return out
}

// Kill is a power loss: `docker kill` of the node, every process in it
// (its dockerd, the plugin, its containers) killed at once. Its disks (the
// node's /var/lib/docker and /var/lib/relocvol, the SAN) stay, and so do
// the loop devices it had attached: they belong to the shared kernel.
func (n *Node) Kill(t testing.TB) {
	t.Helper()
	if _, err := host("kill", n.container); err != nil {
		t.Fatalf("node %s: %v", n.Name, err)
	}
	err := poll(30*time.Second, func() error {
		if running, _ := host("inspect", "-f", "{{.State.Running}}", n.container); running != "false" {
			return fmt.Errorf("still running")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("node %s: docker kill: %v", n.Name, err)
	}
	t.Logf("node %s: killed (power loss)", n.Name)
}

// Boot starts a stopped (killed) node again and waits for its dockerd and,
// with a plugin, for Docker to have enabled the plugin again.
func (n *Node) Boot(t testing.TB) {
	t.Helper()
	start := time.Now()
	if _, err := host("start", n.container); err != nil {
		t.Fatalf("node %s: %v", n.Name, err)
	}
	if err := n.waitDockerd(); err != nil {
		t.Fatal(err)
	}
	up := time.Since(start)
	if n.c.opt.PluginDir != "" {
		if err := n.waitPluginEnabled(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("node %s: booted, dockerd up in %s, plugin enabled at %s",
		n.Name, up.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
}

// Disconnect cuts the node off the cluster's network (a partition): it
// reaches neither the other nodes nor the host's services on Gateway.
func (n *Node) Disconnect(t testing.TB) {
	t.Helper()
	if _, err := host("network", "disconnect", n.c.network, n.container); err != nil {
		t.Fatalf("node %s: %v", n.Name, err)
	}
	t.Logf("node %s: disconnected from %s", n.Name, n.c.network)
}

// Connect puts a disconnected node back on the network, with its name and
// address.
func (n *Node) Connect(t testing.TB) {
	t.Helper()
	if _, err := host("network", "connect", "--ip", n.IP(), "--alias", n.Name, n.c.network, n.container); err != nil {
		t.Fatalf("node %s: %v", n.Name, err)
	}
	t.Logf("node %s: connected to %s again", n.Name, n.c.network)
}

// DockerdLog is the node's /var/log/dockerd.log (kept on the host, so it is
// readable while the node is down too); every boot starts with a
// "---- boot" line.
func (n *Node) DockerdLog() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "log", "dockerd.log"))
	return string(b)
}

// PluginLogs is what the plugin wrote, in order, across every boot of the
// node: dockerd logs a managed plugin's output as its own lines with a
// plugin=ID field; PluginLogs picks them out and unwraps their msg.
func (n *Node) PluginLogs() string {
	n.mu.Lock()
	id := n.pluginID
	n.mu.Unlock()
	if id == "" {
		return ""
	}
	var b strings.Builder
	for _, line := range strings.Split(n.DockerdLog(), "\n") {
		if !strings.Contains(line, " plugin="+id) {
			continue
		}
		b.WriteString(pluginMsg(line))
		b.WriteByte('\n')
	}
	return b.String()
}

// pluginMsg is the msg="..." value of a dockerd log line, else the line.
func pluginMsg(line string) string {
	i := strings.Index(line, ` msg="`)
	if i < 0 {
		return line
	}
	q, err := strconv.QuotedPrefix(line[i+len(" msg="):])
	if err != nil {
		return line
	}
	msg, err := strconv.Unquote(q)
	if err != nil {
		return line
	}
	return msg
}

// waitDockerd polls the node's dockerd until it answers, failing early if
// the node stops.
func (n *Node) waitDockerd() error {
	err := poll(bootTimeout, func() error {
		if running, err := host("inspect", "-f", "{{.State.Running}}", n.container); err != nil || running != "true" {
			return stopErr{fmt.Errorf("the node's container is not running (%s %v)", running, err)}
		}
		_, err := n.Docker("info", "--format", "{{.ServerVersion}}")
		return err
	})
	if err != nil {
		logs, _ := host("logs", "--tail", "20", n.container)
		return fmt.Errorf("node %s: dockerd: %w\nentrypoint output:\n%s\ndockerd.log:\n%s", n.Name, err, logs, tail(n.DockerdLog(), 30))
	}
	return nil
}

func (n *Node) waitPluginEnabled() error {
	err := poll(bootTimeout, func() error {
		out, err := n.Docker("plugin", "ls", "--format", "{{.Name}} {{.Enabled}}")
		if err != nil {
			return err
		}
		if !strings.Contains("\n"+out+"\n", "\n"+Plugin+":latest true\n") {
			return fmt.Errorf("docker plugin ls: %q", out)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("node %s: plugin %s not enabled: %w\nplugin output:\n%s", n.Name, Plugin, err, tail(n.PluginLogs(), 30))
	}
	return nil
}

// cleanup logs the nodes' daemons when the test failed, then removes the
// nodes, the network, mounts under the temp folder and loop devices of the
// SAN's files. t.TempDir removes the folder itself afterwards.
func (c *Cluster) cleanup() {
	t := c.t
	if t.Failed() {
		for _, n := range c.nodes {
			var daemon []string // without the plugin's lines and gRPC chatter
			for _, l := range strings.Split(n.DockerdLog(), "\n") {
				if !strings.Contains(l, " plugin=") && !strings.Contains(l, " module=grpc") {
					daemon = append(daemon, l)
				}
			}
			t.Logf("---- node %s: dockerd log (tail) ----\n%s", n.Name, tail(strings.Join(daemon, "\n"), 40))
			t.Logf("---- node %s: plugin output (tail) ----\n%s", n.Name, tail(n.PluginLogs(), 80))
		}
	}
	var names []string
	for _, n := range c.nodes {
		names = append(names, n.container)
	}
	if len(names) > 0 {
		if out, err := host(append([]string{"rm", "-f", "-v"}, names...)...); err != nil && !strings.Contains(out, "No such container") {
			t.Errorf("cluster cleanup: %v", err)
		}
	}
	if c.network != "" {
		if out, err := host("network", "rm", c.network); err != nil && !strings.Contains(out, "not found") {
			t.Errorf("cluster cleanup: %v", err)
		}
	}
	unmountUnder(t, c.dir)
	detachLoops(t, c.san)
}

// unmountUnder lazily unmounts whatever is mounted at or below dir in the
// test's mount namespace, deepest first.
func unmountUnder(t testing.TB, dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			mounts = append(mounts, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	for _, m := range mounts {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
			t.Errorf("cluster cleanup: umount %s: %v", m, err)
		} else {
			t.Logf("cluster cleanup: unmounted %s", m)
		}
	}
}

// detachLoops detaches the loop devices backed by files under san. Loop
// devices are the kernel's, not a node's: a killed node leaves its own
// attached, and only their backing file's device and inode tell them
// apart (the path recorded is the one the plugin saw, in a mount namespace
// gone with the node).
func detachLoops(t testing.TB, san string) {
	type key struct{ dev, ino uint64 }
	files := map[key]string{}
	_ = filepath.WalkDir(san, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil {
			files[key{st.Dev, st.Ino}] = p
		}
		return nil
	})
	if len(files) == 0 {
		return
	}
	out, err := run(nil, "losetup", "--list", "--json", "--output", "NAME,BACK-INO,BACK-MAJ:MIN")
	if err != nil {
		t.Errorf("cluster cleanup: %v", err)
		return
	}
	var list struct {
		Devices []struct {
			Name   string `json:"name"`
			Ino    uint64 `json:"back-ino"`
			MajMin string `json:"back-maj:min"` // space-padded
		} `json:"loopdevices"`
	}
	if out != "" { // no devices: no output at all
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Errorf("cluster cleanup: losetup --list --json: %v", err)
			return
		}
	}
	for _, d := range list.Devices {
		maj, min, ok := strings.Cut(strings.TrimSpace(d.MajMin), ":")
		ma, err1 := strconv.ParseUint(maj, 10, 32)
		mi, err2 := strconv.ParseUint(min, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			continue
		}
		file, ok := files[key{unix.Mkdev(uint32(ma), uint32(mi)), d.Ino}]
		if !ok {
			continue
		}
		if out, err := run(nil, "losetup", "--detach", d.Name); err != nil {
			t.Errorf("cluster cleanup: detach %s (%s): %v: %s", d.Name, file, err, out)
		} else {
			t.Logf("cluster cleanup: detached %s, left attached to %s", d.Name, file)
		}
	}
}

// reapStale removes the nodes and networks of clusters whose test process
// is gone (a test killed by its timeout runs no cleanup): networks are few.
func reapStale(t testing.TB) {
	format := `{{.ID}} {{.Label "` + labelPID + `"}}`
	for _, kind := range []struct{ ls, rm []string }{
		{[]string{"ps", "-a"}, []string{"rm", "-f", "-v"}}, // nodes first: a network in use stays
		{[]string{"network", "ls"}, []string{"network", "rm"}},
	} {
		out, err := host(append(kind.ls, "--filter", "label="+labelPID, "--format", format)...)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(out, "\n") {
			id, p, _ := strings.Cut(line, " ")
			pid, err := strconv.Atoi(p)
			if err != nil || pid <= 0 || alive(pid) {
				continue
			}
			if _, err := host(append(kind.rm, id)...); err == nil {
				t.Logf("cluster: removed %s (%s) left by test process %d, which is gone", id, kind.ls[0], pid)
			}
		}
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// requireDocker skips (fails under CI=true) without root, an engine or
// the commands the cluster's set-up and clean-up run.
func requireDocker(t testing.TB) {
	t.Helper()
	testenv.RequireDocker(t)
	testenv.RequireCommands(t, "losetup", "bash")
}

func nodeImage() string {
	if img := os.Getenv("RELOCVOL_NODE_IMAGE"); img != "" {
		return img
	}
	return DefaultImage
}

// ensureImage runs scripts/lib.sh ensure_node_image: nothing but a label
// check when the image is up to date, a debootstrap (about a minute) when
// it is missing or its recipe changed.
func ensureImage(t testing.TB, repo, image string) {
	t.Helper()
	if repo == "" {
		repo = testenv.RepoRoot(t)
	}
	lib := filepath.Join(repo, "scripts", "lib.sh")
	cmd := exec.Command("bash", "-c", `set -euo pipefail; . "$1"; ensure_node_image`, "bash", lib)
	cmd.Env = append(os.Environ(), "RELOCVOL_REPO="+repo, "RELOCVOL_NODE_IMAGE="+image)
	w := testenv.LogWriter{T: t, Prefix: "node image: "}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		t.Fatalf("cluster: %s ensure_node_image: %v", lib, err)
	}
}

// host runs the host's docker CLI.
func host(args ...string) (string, error) { return run(nil, "docker", args...) }

// run runs a command with a timeout and returns its combined output,
// trimmed; an error names the command.
func run(stdin io.Reader, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return s, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, tail(s, 20))
	}
	return s, nil
}

// stopErr makes poll give up at once.
type stopErr struct{ error }

// poll calls f every 200ms until it returns nil, returns a stopErr, or
// timeout passes; the error is f's last one.
func poll(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		var stop stopErr
		if errors.As(err, &stop) {
			return stop.error
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s: %w", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
