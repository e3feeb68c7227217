package controller

import (
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/go-connections/nat"

	"github.com/relocvol/relocvol/internal/store"
)

// Labels that opt a container in and constrain where it may go.
const (
	LabelRelocate = "relocvol.relocate"
	LabelHosts    = "relocvol.hosts"
)

// anonymous matches the names Docker gives anonymous volumes.
var anonymous = regexp.MustCompile(`^[0-9a-f]{64}$`)

// relocatable reports whether a container opted in to relocation.
func relocatable(labels map[string]string) bool {
	v := strings.ToLower(labels[LabelRelocate])
	return v == "true" || v == "1" || v == "yes"
}

// allowedHosts parses relocvol.hosts=a,b.
func allowedHosts(labels map[string]string) []string {
	var out []string
	for _, h := range strings.Split(labels[LabelHosts], ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, h)
		}
	}
	sort.Strings(out)
	return out
}

// specFromContainer turns an inspected container into what another host
// needs to recreate it, dropping what is bound to this host: its ID and
// generated hostname, addresses, devices, a network namespace shared with
// another container, anonymous volumes. ours tells which named volumes are
// relocvol's; the app's Volumes are those, sorted.
func specFromContainer(c container.InspectResponse, ours func(name string) bool) (store.AppSpec, []string) {
	var s store.AppSpec
	var vols []string
	if cfg := c.Config; cfg != nil {
		s.Image = cfg.Image
		s.Entrypoint = slices.Clone([]string(cfg.Entrypoint))
		s.Cmd = slices.Clone([]string(cfg.Cmd))
		s.Env = slices.Clone(cfg.Env)
		s.WorkingDir, s.User = cfg.WorkingDir, cfg.User
		if cfg.Hostname != "" && !strings.HasPrefix(c.ID, cfg.Hostname) {
			s.Hostname = cfg.Hostname // set by the user, not generated
		}
		if len(cfg.Labels) > 0 {
			s.Labels = make(map[string]string, len(cfg.Labels))
			for k, v := range cfg.Labels {
				s.Labels[k] = v
			}
		}
		s.Tty, s.OpenStdin = cfg.Tty, cfg.OpenStdin
		s.StopSignal, s.StopTimeout = cfg.StopSignal, cfg.StopTimeout
	}
	for _, m := range c.Mounts {
		switch m.Type {
		case mount.TypeVolume:
			if m.Driver == "local" && anonymous.MatchString(m.Name) {
				continue
			}
			if ours(m.Name) {
				vols = append(vols, m.Name)
			}
			s.Mounts = append(s.Mounts, store.AppMount{Type: "volume", Source: m.Name, Target: m.Destination, ReadOnly: !m.RW, Driver: m.Driver})
		case mount.TypeBind:
			s.Mounts = append(s.Mounts, store.AppMount{Type: "bind", Source: m.Source, Target: m.Destination, ReadOnly: !m.RW})
		case mount.TypeTmpfs:
			s.Mounts = append(s.Mounts, store.AppMount{Type: "tmpfs", Target: m.Destination})
		}
	}
	sort.Slice(s.Mounts, func(i, j int) bool { return s.Mounts[i].Target < s.Mounts[j].Target })
	sort.Strings(vols)
	if hc := c.HostConfig; hc != nil {
		s.RestartPolicy = string(hc.RestartPolicy.Name)
		if s.RestartPolicy == "no" {
			s.RestartPolicy = ""
		}
		s.MaxRetries = hc.RestartPolicy.MaximumRetryCount
		switch nm := string(hc.NetworkMode); {
		case nm == "" || nm == "default" || nm == "bridge" || strings.HasPrefix(nm, "container:"):
		default:
			s.Network = nm
		}
		for port, binds := range hc.PortBindings {
			for _, b := range binds {
				s.Ports = append(s.Ports, store.AppPort{Port: string(port), HostIP: b.HostIP, HostPort: b.HostPort})
			}
		}
		sort.Slice(s.Ports, func(i, j int) bool {
			if s.Ports[i].Port != s.Ports[j].Port {
				return s.Ports[i].Port < s.Ports[j].Port
			}
			return s.Ports[i].HostPort < s.Ports[j].HostPort
		})
	}
	return s, vols
}

// dockerConfig is the create request that recreates an app from its spec.
func dockerConfig(s store.AppSpec) (*container.Config, *container.HostConfig) {
	cfg := &container.Config{
		Image: s.Image, Entrypoint: s.Entrypoint, Cmd: s.Cmd, Env: s.Env,
		WorkingDir: s.WorkingDir, User: s.User, Hostname: s.Hostname, Labels: s.Labels,
		Tty: s.Tty, OpenStdin: s.OpenStdin, StopSignal: s.StopSignal, StopTimeout: s.StopTimeout,
	}
	hc := &container.HostConfig{
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyMode(s.RestartPolicy), MaximumRetryCount: s.MaxRetries},
		NetworkMode:   container.NetworkMode(s.Network),
	}
	for _, m := range s.Mounts {
		mm := mount.Mount{Type: mount.Type(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
		if m.Type == "volume" && m.Driver != "" && m.Driver != "local" {
			mm.VolumeOptions = &mount.VolumeOptions{DriverConfig: &mount.Driver{Name: m.Driver}}
		}
		hc.Mounts = append(hc.Mounts, mm)
	}
	for _, p := range s.Ports {
		port := nat.Port(p.Port)
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = nat.PortSet{}
			hc.PortBindings = nat.PortMap{}
		}
		cfg.ExposedPorts[port] = struct{}{}
		hc.PortBindings[port] = append(hc.PortBindings[port], nat.PortBinding{HostIP: p.HostIP, HostPort: p.HostPort})
	}
	return cfg, hc
}
