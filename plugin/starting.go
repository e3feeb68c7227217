package plugin

import (
	"fmt"
	"sync"
	"time"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/relocvol/relocvol/internal/spec"
)

// StartWait is how long a request that comes while the plugin starts waits
// for it before it is refused: well within the 30 s Docker waits for a
// plugin's answer (docker plugin enable --timeout), so that Docker shows
// relocvol's reason rather than its own timeout.
const StartWait = 15 * time.Second

// Starting is the VolumeDriver a host serves from the moment its plugin
// process starts. Docker gives a managed plugin about 12 s to listen on its
// socket (moby's pluginPostStart: four dials 3 s apart, whatever `docker
// plugin enable --timeout` says) and disables it for good when it does
// not; relocvol's start-up (etcd, the storage's checks, the registration on
// every LUN) can take longer on a loaded host, and lasts for as long as
// etcd or the storage do not answer. So the socket answers at once: a
// request waits for the driver a while, then is refused with what the host
// is waiting for, and nothing changes.
type Starting struct {
	host  string
	wait  time.Duration
	known *Known // answers Get and List meanwhile (Known); nil: none
	since time.Time
	ready chan struct{}

	mu    sync.Mutex
	d     volume.Driver
	step  string        // what start-up is doing now
	err   error         // why the last attempt failed
	retry time.Duration // when the next attempt is due after a failure
}

var _ volume.Driver = (*Starting)(nil)

// NewStarting returns the driver host serves while it starts; requests wait
// up to wait for Ready. Until then, Get and List answer from known, when
// given: refused, Docker would forget the volumes (Known).
func NewStarting(host string, wait time.Duration, known *Known) *Starting {
	return &Starting{host: host, wait: wait, known: known, since: time.Now(), ready: make(chan struct{}), step: "starting"}
}

// Step records what start-up does now, for the refusals.
func (s *Starting) Step(what string) {
	s.mu.Lock()
	s.step = what
	s.mu.Unlock()
}

// Failed records why a start-up attempt failed; the next is due in retry.
func (s *Starting) Failed(err error, retry time.Duration) {
	s.mu.Lock()
	s.err, s.retry = err, retry
	s.mu.Unlock()
}

// Ready hands every request, from now on, to d. It is called once.
func (s *Starting) Ready(d volume.Driver) {
	s.mu.Lock()
	s.d = d
	s.mu.Unlock()
	close(s.ready)
}

// driver is the ready driver, or the refusal of op on the volume name: at
// once when a start-up attempt failed already (the next one is seconds
// away, and Docker would wait on every one of its calls), else after
// waiting up to s.wait for the start-up under way.
func (s *Starting) driver(op, name string) (volume.Driver, error) {
	s.mu.Lock()
	d, failed := s.d, s.err != nil
	s.mu.Unlock()
	switch {
	case d != nil:
		return d, nil
	case failed:
		return nil, s.refusal(op, name)
	}
	t := time.NewTimer(s.wait)
	defer t.Stop()
	select {
	case <-s.ready:
	case <-t.C:
		return nil, s.refusal(op, name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.d, nil
}

func (s *Starting) refusal(op, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	what := "relocvol: cannot " + op
	if name != "" {
		what += fmt.Sprintf(" volume %q", spec.Shorten(name))
	}
	starting := time.Since(s.since).Round(time.Second)
	if s.err != nil {
		return newErr(ErrStarting, "%s on host %s: the plugin has been starting for %s and its last attempt failed: %v; it tries again every %s by itself (the plugin's log in dockerd's has each attempt): fix that, then try again",
			what, s.host, starting, s.err, s.retry)
	}
	return newErr(ErrStarting, "%s on host %s: the plugin is still starting (%s, for %s): try again in a moment",
		what, s.host, s.step, starting)
}

// Create implements volume.Driver.
func (s *Starting) Create(r *volume.CreateRequest) error {
	d, err := s.driver("create", r.Name)
	if err != nil {
		return err
	}
	return d.Create(r)
}

// List implements volume.Driver.
func (s *Starting) List() (*volume.ListResponse, error) {
	d, err := s.driver("list volumes", "")
	if err != nil && s.known != nil {
		return knownList(s.known, func(string) string { return "" }), nil
	}
	if err != nil {
		return nil, err
	}
	return d.List()
}

// Get implements volume.Driver.
func (s *Starting) Get(r *volume.GetRequest) (*volume.GetResponse, error) {
	d, err := s.driver("inspect", r.Name)
	if err != nil && s.known != nil && s.known.Has(r.Name) {
		return &volume.GetResponse{Volume: unknownVolume(r.Name, "", err.Error())}, nil
	}
	if err != nil {
		return nil, err
	}
	return d.Get(r)
}

// Remove implements volume.Driver.
func (s *Starting) Remove(r *volume.RemoveRequest) error {
	d, err := s.driver("remove", r.Name)
	if err != nil {
		return err
	}
	return d.Remove(r)
}

// Path implements volume.Driver.
func (s *Starting) Path(r *volume.PathRequest) (*volume.PathResponse, error) {
	d, err := s.driver("find", r.Name)
	if err != nil {
		return nil, err
	}
	return d.Path(r)
}

// Mount implements volume.Driver.
func (s *Starting) Mount(r *volume.MountRequest) (*volume.MountResponse, error) {
	d, err := s.driver("mount", r.Name)
	if err != nil {
		return nil, err
	}
	return d.Mount(r)
}

// Unmount implements volume.Driver.
func (s *Starting) Unmount(r *volume.UnmountRequest) error {
	d, err := s.driver("unmount", r.Name)
	if err != nil {
		return err
	}
	return d.Unmount(r)
}

// Capabilities implements volume.Driver: they do not depend on start-up,
// and Docker asks for them when it first loads the driver.
func (s *Starting) Capabilities() *volume.CapabilitiesResponse { return capabilities() }
