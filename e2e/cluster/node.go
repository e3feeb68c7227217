package cluster

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

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
	cfg := &container.Config{
		Image: c.image, Hostname: n.Name,
		Labels: map[string]string{labelCluster: c.id, labelPID: strconv.Itoa(os.Getpid())},
		// Swarm tasks use the images loaded into the node, with no pull
		// (no registry here), as moby's own Swarm tests do.
		Env: []string{"DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1"},
	}
	hc := &container.HostConfig{
		ExtraHosts: []string{HostAlias + ":" + c.gateway.String()},
		// Everything but privileged (refused here: no CAP_SYS_RESOURCE).
		CapAdd: []string{"ALL"}, CapDrop: []string{"SYS_RESOURCE"},
		SecurityOpt: []string{"seccomp=unconfined", "apparmor=unconfined"},
		Resources:   container.Resources{DeviceCgroupRules: []string{"a *:* rwm"}},
		Binds: []string{
			filepath.Join(n.dir, "docker") + ":/var/lib/docker",
			filepath.Join(n.dir, "log") + ":/var/log",
			"/dev:/dev",
			c.san + ":" + SANDir,
		},
	}
	if c.opt.PluginDir != "" {
		hc.Binds = append(hc.Binds, c.opt.PluginDir+":/plugin:ro")
	}
	nc := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{c.network: n.endpoint()}}
	err := engineDo("run node "+n.container, func(ctx context.Context, cli *client.Client) error {
		if _, err := cli.ContainerCreate(ctx, cfg, hc, nc, nil, n.container); err != nil {
			return err
		}
		return cli.ContainerStart(ctx, n.container, container.StartOptions{})
	})
	if err != nil {
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
		_, err = execIn(n.container, f, "docker", "load", "-q")
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

// Exec runs a command in the node (as `docker exec NODE ARGS...`) and
// returns its combined output, trimmed.
func (n *Node) Exec(args ...string) (string, error) {
	return execIn(n.container, nil, args...)
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
	err := engineDo("kill "+n.container, func(ctx context.Context, cli *client.Client) error {
		return cli.ContainerKill(ctx, n.container, "KILL")
	})
	if err != nil {
		t.Fatalf("node %s: %v", n.Name, err)
	}
	err = poll(30*time.Second, func() error {
		if up, err := running(n.container); err != nil || up {
			return fmt.Errorf("still running (%v)", err)
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
	err := engineDo("start "+n.container, func(ctx context.Context, cli *client.Client) error {
		return cli.ContainerStart(ctx, n.container, container.StartOptions{})
	})
	if err != nil {
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

// Restart is a clean restart of the node's dockerd (systemctl restart
// docker on a host): dockerd gets SIGTERM (tini, the node's init, passes it
// on), stops its containers and its plugins as it does on a host and exits,
// which ends the node; then the node boots again (Boot).
func (n *Node) Restart(t testing.TB) {
	t.Helper()
	start := time.Now()
	timeout := 60
	err := engineDo("stop "+n.container, func(ctx context.Context, cli *client.Client) error {
		return cli.ContainerStop(ctx, n.container, container.StopOptions{Signal: "TERM", Timeout: &timeout})
	})
	if err != nil {
		t.Fatalf("node %s: %v", n.Name, err)
	}
	t.Logf("node %s: dockerd stopped cleanly in %s", n.Name, time.Since(start).Round(100*time.Millisecond))
	n.Boot(t)
}

// Disconnect cuts the node off the cluster's network (a partition): it
// reaches neither the other nodes nor the host's services on Gateway.
func (n *Node) Disconnect(t testing.TB) {
	t.Helper()
	err := engineDo("disconnect "+n.container, func(ctx context.Context, cli *client.Client) error {
		return cli.NetworkDisconnect(ctx, n.c.network, n.container, false)
	})
	if err != nil {
		t.Fatalf("node %s: %v", n.Name, err)
	}
	t.Logf("node %s: disconnected from %s", n.Name, n.c.network)
}

// Connect puts a disconnected node back on the network, with its name and
// address.
func (n *Node) Connect(t testing.TB) {
	t.Helper()
	err := engineDo("connect "+n.container, func(ctx context.Context, cli *client.Client) error {
		return cli.NetworkConnect(ctx, n.c.network, n.container, n.endpoint())
	})
	if err != nil {
		t.Fatalf("node %s: %v", n.Name, err)
	}
	t.Logf("node %s: connected to %s again", n.Name, n.c.network)
}

// endpoint is the node's place on the cluster's network: its fixed
// address and its name as an alias.
func (n *Node) endpoint() *network.EndpointSettings {
	return &network.EndpointSettings{
		IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: n.ip.String()},
		Aliases:    []string{n.Name},
	}
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
		if up, err := running(n.container); err != nil || !up {
			return stopErr{fmt.Errorf("the node's container is not running (%v)", err)}
		}
		_, err := n.Docker("info", "--format", "{{.ServerVersion}}")
		return err
	})
	if err != nil {
		logs := containerLogs(n.container, 20)
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
