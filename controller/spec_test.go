package controller

import (
	"reflect"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/go-connections/nat"

	"github.com/relocvol/relocvol/internal/store"
)

func inspected() container.InspectResponse {
	stop := 20
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			HostConfig: &container.HostConfig{
				RestartPolicy: container.RestartPolicy{Name: "on-failure", MaximumRetryCount: 3},
				NetworkMode:   "appnet",
				PortBindings: nat.PortMap{
					"5432/tcp": {{HostIP: "0.0.0.0", HostPort: "5432"}},
					"80/tcp":   {{HostPort: "8080"}, {HostPort: "8081"}},
				},
			},
		},
		Config: &container.Config{
			Hostname: "0123456789ab", Image: "postgres:16", Cmd: []string{"postgres"}, Entrypoint: []string{"docker-entrypoint.sh"},
			Env: []string{"PGDATA=/data"}, WorkingDir: "/", User: "999",
			Labels:     map[string]string{"relocvol.relocate": "true", "relocvol.hosts": "b, a"},
			StopSignal: "SIGINT", StopTimeout: &stop,
		},
		Mounts: []container.MountPoint{
			{Type: mount.TypeVolume, Name: "db", Driver: "relocvol:latest", Destination: "/data", RW: true},
			{Type: mount.TypeVolume, Name: "cfg", Driver: "relocvol:latest", Destination: "/cfg"},
			{Type: mount.TypeVolume, Name: "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210", Driver: "local", Destination: "/anon", RW: true},
			{Type: mount.TypeVolume, Name: "cache", Driver: "local", Destination: "/cache", RW: true},
			{Type: mount.TypeBind, Source: "/etc/localtime", Destination: "/etc/localtime"},
			{Type: mount.TypeTmpfs, Destination: "/tmp", RW: true},
		},
	}
}

func TestSpecFromContainer(t *testing.T) {
	ours := func(v string) bool { return v == "db" || v == "cfg" }
	s, vols := specFromContainer(inspected(), ours)
	if !reflect.DeepEqual(vols, []string{"cfg", "db"}) {
		t.Errorf("volumes %v, want [cfg db]", vols)
	}
	stop := 20
	want := store.AppSpec{
		Image: "postgres:16", Entrypoint: []string{"docker-entrypoint.sh"}, Cmd: []string{"postgres"},
		Env: []string{"PGDATA=/data"}, WorkingDir: "/", User: "999",
		Labels:     map[string]string{"relocvol.relocate": "true", "relocvol.hosts": "b, a"},
		StopSignal: "SIGINT", StopTimeout: &stop,
		Mounts: []store.AppMount{
			{Type: "volume", Source: "cache", Target: "/cache", Driver: "local"},
			{Type: "volume", Source: "cfg", Target: "/cfg", ReadOnly: true, Driver: "relocvol:latest"},
			{Type: "volume", Source: "db", Target: "/data", Driver: "relocvol:latest"},
			{Type: "bind", Source: "/etc/localtime", Target: "/etc/localtime", ReadOnly: true},
			{Type: "tmpfs", Target: "/tmp"},
		},
		Ports: []store.AppPort{
			{Port: "5432/tcp", HostIP: "0.0.0.0", HostPort: "5432"},
			{Port: "80/tcp", HostPort: "8080"}, {Port: "80/tcp", HostPort: "8081"},
		},
		RestartPolicy: "on-failure", MaxRetries: 3, Network: "appnet",
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("spec\n got %+v\nwant %+v", s, want)
	}
	if got := allowedHosts(s.Labels); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("allowed hosts %v", got)
	}
}

func TestSpecDropsHostBoundFields(t *testing.T) {
	c := inspected()
	c.HostConfig.NetworkMode = "container:abc"
	c.HostConfig.RestartPolicy = container.RestartPolicy{Name: "no"}
	c.Config.Hostname = "db-host" // set by the user: kept
	s, _ := specFromContainer(c, func(string) bool { return false })
	if s.Network != "" || s.RestartPolicy != "" || s.Hostname != "db-host" {
		t.Errorf("network %q restart %q hostname %q", s.Network, s.RestartPolicy, s.Hostname)
	}
	c.HostConfig.NetworkMode = "bridge"
	c.Config.Hostname = "0123456789ab" // generated from the ID: dropped
	s, vols := specFromContainer(c, func(string) bool { return false })
	if s.Network != "" || s.Hostname != "" || len(vols) != 0 {
		t.Errorf("network %q hostname %q volumes %v", s.Network, s.Hostname, vols)
	}
}

// What is recorded recreates the same container.
func TestDockerConfigRoundTrip(t *testing.T) {
	s, _ := specFromContainer(inspected(), func(v string) bool { return v == "db" })
	cfg, hc := dockerConfig(s)
	if cfg.Image != "postgres:16" || !reflect.DeepEqual([]string(cfg.Cmd), []string{"postgres"}) || cfg.Labels["relocvol.relocate"] != "true" {
		t.Errorf("config %+v", cfg)
	}
	if hc.RestartPolicy.Name != "on-failure" || hc.RestartPolicy.MaximumRetryCount != 3 || hc.NetworkMode != "appnet" {
		t.Errorf("host config %+v", hc)
	}
	if len(hc.PortBindings["80/tcp"]) != 2 || hc.PortBindings["5432/tcp"][0].HostIP != "0.0.0.0" || len(cfg.ExposedPorts) != 2 {
		t.Errorf("ports %+v %+v", hc.PortBindings, cfg.ExposedPorts)
	}
	var db, cache *mount.Mount
	for i := range hc.Mounts {
		switch hc.Mounts[i].Source {
		case "db":
			db = &hc.Mounts[i]
		case "cache":
			cache = &hc.Mounts[i]
		}
	}
	if db == nil || db.VolumeOptions == nil || db.VolumeOptions.DriverConfig.Name != "relocvol:latest" || db.Target != "/data" || db.ReadOnly {
		t.Errorf("relocvol volume mount %+v", db)
	}
	if cache == nil || cache.VolumeOptions != nil {
		t.Errorf("local volume mount %+v: no driver option", cache)
	}
}

func TestRelocatableLabel(t *testing.T) {
	for v, want := range map[string]bool{"true": true, "TRUE": true, "1": true, "yes": true, "false": false, "": false, "no": false} {
		if got := relocatable(map[string]string{LabelRelocate: v}); got != want {
			t.Errorf("%s=%q: %v, want %v", LabelRelocate, v, got, want)
		}
	}
}
