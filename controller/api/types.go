// Package api is relocvol's REST API: the JSON types, the chi server every
// host runs (read-only views of hosts, volumes, apps and the relocation
// timeline, planned moves, Prometheus metrics and a status page) and the
// client the relocvol CLI uses. The server asks a small Service for data,
// so it knows nothing of etcd or Docker.
package api

import (
	"context"
	"time"

	"github.com/relocvol/relocvol/internal/doctor"
)

// Status is the cluster at a glance, seen from the answering host.
type Status struct {
	Host       string `json:"host"`
	Version    string `json:"version"`
	Alive      bool   `json:"alive"`
	Leader     string `json:"leader"`
	Hosts      int    `json:"hosts"`
	HostsAlive int    `json:"hostsAlive"`
	Volumes    int    `json:"volumes"`
	Apps       int    `json:"apps"`
	Relocating int    `json:"relocating"`
}

// Local is the answering host as it sees itself, from its own memory: it
// answers even when etcd does not.
type Local struct {
	Host  string `json:"host"`
	Alive bool   `json:"alive"`
	// SinceRenewalSeconds is how long ago the last acknowledged renewal of
	// the host's lease was sent; CutoffSeconds is when, since then, the
	// host stops accepting Mounts and self-fences.
	SinceRenewalSeconds float64 `json:"sinceRenewalSeconds"`
	CutoffSeconds       float64 `json:"cutoffSeconds"`
	// MaxRenewalGapSeconds is the longest the host went between a renewal
	// and the answer to the next one since it started; SlackSeconds is
	// how far that stayed from the cut-off (negative: it self-fenced).
	MaxRenewalGapSeconds float64       `json:"maxRenewalGapSeconds"`
	SlackSeconds         float64       `json:"slackSeconds"`
	SelfFencing          *SelfFencing  `json:"selfFencing,omitempty"`
	Mounted              []LocalVolume `json:"mounted"`
}

// LocalVolume is a volume counted mounted on the answering host.
type LocalVolume struct {
	Name string `json:"name"`
	// LastMounted is when this plugin process last mounted it; absent
	// when its mount IDs were recovered from etcd at start.
	LastMounted *time.Time `json:"lastMounted,omitempty"`
}

// SelfFencing is the state of a host's current (or last) self-fencing:
// passes repeat until no relocvol volume is mounted on the host.
type SelfFencing struct {
	Active bool      `json:"active"`
	Since  time.Time `json:"since"`
	Passes int       `json:"passes"`
	// Stopped are the containers it stopped, Left the volumes still
	// mounted after the last pass, Error what failed in that pass.
	Stopped []string `json:"stopped,omitempty"`
	Left    []string `json:"left,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// Host is one host of the cluster.
type Host struct {
	Name  string `json:"name"`
	Alive bool   `json:"alive"`
	// LeaseAgeSeconds is how long ago the host last renewed its lease.
	LeaseAgeSeconds float64 `json:"leaseAgeSeconds"`
	Leader          bool    `json:"leader"`
	// Agent: the host runs an agent, so apps may be placed on it.
	Agent  bool `json:"agent"`
	Fenced bool `json:"fenced"`
	// Maintenance, when set: the host is not failed over before its end.
	Maintenance *Maintenance `json:"maintenance,omitempty"`
	FencedBy    string       `json:"fencedBy,omitempty"`
	FencedAt    *time.Time   `json:"fencedAt,omitempty"`
	Started     *time.Time   `json:"started,omitempty"`
	Version     string       `json:"version,omitempty"`
	Apps        int          `json:"apps"`
	Volumes     int          `json:"volumes"`
}

// Volume is one relocvol volume.
type Volume struct {
	Name       string    `json:"name"`
	Backend    string    `json:"backend"`
	Size       int64     `json:"size"`
	SizeHuman  string    `json:"sizeHuman"`
	FS         string    `json:"fs"`
	State      string    `json:"state"`
	Owner      string    `json:"owner"`
	OwnerAlive bool      `json:"ownerAlive"`
	Epoch      int64     `json:"epoch"`
	Mounts     int       `json:"mounts"`
	CreatedBy  string    `json:"createdBy"`
	CreatedAt  time.Time `json:"createdAt"`
	// Grow is the volume's last grow, if it was ever grown.
	Grow *Grow `json:"grow,omitempty"`
}

// The states of a grown volume's filesystem (Grow.Filesystem).
const (
	FSGrown     = "grown"      // it has the new size
	FSGrowing   = "growing"    // Host, which mounts the volume, is growing it
	FSNextMount = "next-mount" // it grows when the volume is next mounted: no host mounts it, or Host cannot grow it mounted (Detail)
	FSFailed    = "failed"     // Host could not grow it (Detail); asking again retries
)

// Grow is a volume's last grow: its storage grew from From to Size
// bytes (By, at At), and its filesystem followed or not.
type Grow struct {
	Volume     string    `json:"volume"`
	Size       int64     `json:"size"`
	SizeHuman  string    `json:"sizeHuman"`
	From       int64     `json:"from"`
	FromHuman  string    `json:"fromHuman"`
	By         string    `json:"by,omitempty"`
	At         time.Time `json:"at,omitzero"`
	Filesystem string    `json:"filesystem"`
	Host       string    `json:"host,omitempty"`
	Detail     string    `json:"detail,omitempty"`
}

// Doctor is the checks of every live host: Status is the worst of them
// (pass only when every check passed).
type Doctor struct {
	Status doctor.Status   `json:"status"`
	Hosts  []doctor.Report `json:"hosts"`
}

// VGExtendRequest is the body of POST /v1/vg/extend: the devices, as the
// host asked names them.
type VGExtendRequest struct {
	Devices []string `json:"devices"`
}

// VGExtend is the answer to POST /v1/vg/extend.
type VGExtend struct {
	VG      string   `json:"vg"`
	Devices []string `json:"devices"`
	Host    string   `json:"host"`
}

// GrowRequest is the body of POST /v1/volumes/{name}/grow.
type GrowRequest struct {
	Size string `json:"size"`
}

// App is one relocatable container.
type App struct {
	Name    string   `json:"name"`
	Image   string   `json:"image"`
	Volumes []string `json:"volumes"`
	// DesiredHost is where etcd places the app; ActualHost where it runs
	// now ("" when it runs nowhere).
	DesiredHost string      `json:"desiredHost"`
	ActualHost  string      `json:"actualHost"`
	Allowed     []string    `json:"allowed,omitempty"`
	Stopped     bool        `json:"stopped,omitempty"`
	Relocation  *Relocation `json:"relocation,omitempty"`
}

// Relocation is an app's move or failover, from its start until it is
// done.
type Relocation struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"` // move or failover
	From    string    `json:"from"`
	To      string    `json:"to"` // "" until the leader placed it
	Started time.Time `json:"started"`
}

// Event is one step of a relocation's timeline.
type Event struct {
	At         time.Time `json:"at"`
	Relocation string    `json:"relocation"`
	Kind       string    `json:"kind"`
	App        string    `json:"app"`
	Phase      string    `json:"phase"`
	Host       string    `json:"host"` // where the step ran
	From       string    `json:"from,omitempty"`
	To         string    `json:"to,omitempty"`
	// TookMS is how long the step itself took; SinceStartMS how long after
	// the relocation began it ended.
	TookMS       int64  `json:"tookMs"`
	SinceStartMS int64  `json:"sinceStartMs"`
	Detail       string `json:"detail,omitempty"`
	Error        string `json:"error,omitempty"`
}

// MoveRequest asks for a planned move.
type MoveRequest struct {
	To string `json:"to"`
}

// EventFilter narrows the timeline.
type EventFilter struct {
	App        string
	Relocation string
	Limit      int
}

// ErrorBody is every error's JSON.
type ErrorBody struct {
	Error string `json:"error"`
}

// Service is what the server needs from the controller.
type Service interface {
	Status(ctx context.Context) (Status, error)
	Hosts(ctx context.Context) ([]Host, error)
	Volumes(ctx context.Context) ([]Volume, error)
	Apps(ctx context.Context) ([]App, error)
	Events(ctx context.Context, f EventFilter) ([]Event, error)
	// FollowEvents calls fn with what Events returns, then listed (the
	// past is all there: a follower may be told the stream is open), then
	// fn with each new event matching f as it is written, until ctx ends
	// (nil) or fn or listed fails.
	FollowEvents(ctx context.Context, f EventFilter, listed func() error, fn func(Event) error) error
	Move(ctx context.Context, app, to string) (Relocation, error)
	// Local is the answering host as it sees itself (no etcd needed).
	Local(ctx context.Context) (Local, error)
	// ForgetMounts drops the answering host's mount IDs of a volume that
	// Docker will never unmount, then unmounts and releases it.
	ForgetMounts(ctx context.Context, volume string) error
	// SetMaintenance announces maintenance of a host for d; EndMaintenance
	// ends it (the operator's way to allow a takeover before the deadline).
	SetMaintenance(ctx context.Context, host string, d time.Duration, reason string) (Maintenance, error)
	EndMaintenance(ctx context.Context, host string) error
	// Doctor runs the checks of every live host (relocvol doctor).
	Doctor(ctx context.Context) (Doctor, error)
	// GrowVolume grows a volume, in use or not, to size (never smaller):
	// its storage, then the filesystem on the host that mounts it; it
	// answers once that host grew it, or says what is left.
	GrowVolume(ctx context.Context, volume, size string) (Grow, error)
	// ExtendVG adds devices to the shared VG once every live host has
	// registered on them, under the VG's lock.
	ExtendVG(ctx context.Context, devices []string) (VGExtend, error)
}

// Maintenance is a host's announced maintenance: peers neither fence it
// nor take its volumes or apps before Until.
type Maintenance struct {
	Host   string    `json:"host"`
	Until  time.Time `json:"until"`
	By     string    `json:"by"`
	Reason string    `json:"reason,omitempty"`
}

// MaintenanceRequest is the body of PUT /v1/hosts/{name}/maintenance.
type MaintenanceRequest struct {
	For    string `json:"for"` // a Go duration, e.g. "10m"
	Reason string `json:"reason,omitempty"`
}
