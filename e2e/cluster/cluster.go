// Package cluster runs several relocvol hosts on one machine for end-to-end
// tests. Each node is a docker-in-docker container (image relocvol-node:dev,
// made by scripts/lib/images.sh ensure_node_image) that runs its own dockerd 20.10
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
// dockerd log and plugin output are logged first. The harness talks to the
// host's engine through the Docker Go SDK (engine.go); a test drives each
// node's own Docker with its docker CLI (Node.Docker), as an operator does.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

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

	// DefaultImage is the node image made by scripts/lib/images.sh
	// ensure_node_image; RELOCVOL_NODE_IMAGE overrides it, as there.
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
	// SANFiles are written into the SAN folder (relative path → content)
	// before the nodes start: files every plugin must find at start, e.g.
	// etcd TLS certificates at /var/lib/relocvol/san/tls/… in the plugin.
	SANFiles map[string][]byte
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
	for rel, b := range opt.SANFiles {
		f := filepath.Join(c.san, rel)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
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
		if err := saveImages(images, opt.Images); err != nil {
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
	labels := map[string]string{labelCluster: c.id, labelPID: strconv.Itoa(os.Getpid())}
	return engineDo("create network "+c.network, func(ctx context.Context, cli *client.Client) error {
		for attempt := 1; ; attempt++ {
			made, err := cli.NetworkCreate(ctx, c.network, network.CreateOptions{Driver: "bridge", Labels: labels})
			if err != nil {
				return err
			}
			info, ierr := cli.NetworkInspect(ctx, made.ID, network.InspectOptions{})
			if err := cli.NetworkRemove(ctx, made.ID); err != nil {
				return err
			}
			if ierr != nil {
				return ierr
			}
			c.subnet = netip.Prefix{}
			for _, cfg := range info.IPAM.Config {
				if p, err := netip.ParsePrefix(cfg.Subnet); err == nil && p.Addr().Is4() {
					c.subnet = p.Masked()
					break
				}
			}
			if !c.subnet.IsValid() {
				return fmt.Errorf("got no IPv4 subnet (%+v)", info.IPAM.Config)
			}
			c.gateway = c.subnet.Addr().Next()
			ipam := &network.IPAM{Config: []network.IPAMConfig{{Subnet: c.subnet.String(), Gateway: c.gateway.String()}}}
			_, err = cli.NetworkCreate(ctx, c.network, network.CreateOptions{Driver: "bridge", Labels: labels, IPAM: ipam})
			if err == nil || attempt == 5 || !strings.Contains(err.Error(), "overlap") {
				return err
			}
			// Another network took that subnet in between: again.
		}
	})
}

// Gateway is the network's gateway address: the host as the nodes see it.
func (c *Cluster) Gateway() string { return c.gateway.String() }

// SAN is the host path of the folder shared by every node at /san.
func (c *Cluster) SAN() string { return c.san }

// Network is the name of the cluster's bridge network in the host engine.
func (c *Cluster) Network() string { return c.network }

// Nodes are the nodes in the order of Options.Nodes.
func (c *Cluster) Nodes() []*Node { return c.nodes }

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
