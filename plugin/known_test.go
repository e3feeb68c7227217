package plugin_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/etcdembed"
	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
	"github.com/relocvol/relocvol/plugin"
)

// While etcd does not answer, and while the plugin starts, Docker's Get
// must still find a volume this host knows. moby's lookupVolume takes any
// answer but a network error for "no such volume": it forgets the volume
// (at every dockerd start, too, for every relocvol volume), and the next
// `docker run -v db:/data` creates an empty *local* volume named db and
// runs the container on it. So Get answers "exists, state unknown" from the
// names this host keeps in its state folder, and Mount stays the gate.
func TestKnownVolumesFoundWhileEtcdIsDown(t *testing.T) {
	c := newCluster(t)
	srv, err := etcdembed.Start(t.TempDir(), "127.0.0.1:0", etcdembed.Options{NoFsync: true, LogLevel: "fatal"})
	if err != nil {
		t.Fatal(err)
	}
	// Each call to the etcd that is down gives up after a second, not 5 s.
	st := store.New(testenv.EtcdClient(t, srv.Endpoints()), "/relocvol").WithCallTimeout(time.Second)
	state, root := t.TempDir(), t.TempDir()
	newDriver := func() (*plugin.Driver, *plugin.Known) {
		t.Helper()
		known, err := plugin.OpenKnown(state)
		if err != nil {
			t.Fatal(err)
		}
		return plugin.New(st, c.be, c.fs, fencing.None{Log: logrus.New()}, alwaysAlive{}, plugin.Options{
			Host: "node-e", MountRoot: root, Defaults: spec.Defaults{Size: 64 << 20, FS: "ext4"}, Known: known,
		}), known
	}
	drv, _ := newDriver()
	for _, n := range []string{"db", "gone"} {
		if err := drv.Create(&volume.CreateRequest{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	if err := drv.Remove(&volume.RemoveRequest{Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	down := "etcd at " + srv.Endpoints()[0] + " did not answer"

	restarted, known := newDriver() // the plugin restarted during the outage
	for i, d := range []*plugin.Driver{drv, restarted} {
		t.Run(fmt.Sprintf("driver %d", i), func(t *testing.T) {
			got, err := d.Get(&volume.GetRequest{Name: "db"})
			if err != nil {
				t.Fatalf("Get db with etcd down: %v; Docker would forget db and create a local volume of that name", err)
			}
			if s := got.Volume.Status; got.Volume.Name != "db" || s["state"] != "unknown" || !strings.Contains(fmt.Sprint(s["reason"]), down) {
				t.Fatalf("Get db with etcd down = %+v, want state unknown and the reason %q", got.Volume, down)
			}
			if _, err := d.Get(&volume.GetRequest{Name: "gone"}); err == nil {
				t.Fatal("Get of a removed volume with etcd down found it")
			}
			list, err := d.List()
			if err != nil || len(list.Volumes) != 1 || list.Volumes[0].Name != "db" {
				t.Fatalf("List with etcd down = %+v, %v; want db alone", list, err)
			}
			_, err = d.Mount(&volume.MountRequest{Name: "db", ID: "m1"})
			wantErr(t, err, nil, `relocvol: cannot mount volume "db" on host node-e: `+down)
		})
	}

	// Before the host is ready, the gate answers from the same names.
	gate := plugin.NewStarting("node-e", 50*time.Millisecond, known)
	gate.Failed(errors.New(down), 10*time.Second)
	got, err := gate.Get(&volume.GetRequest{Name: "db"})
	if err != nil {
		t.Fatalf("Get db while the plugin starts: %v", err)
	}
	if s := got.Volume.Status; s["state"] != "unknown" || !strings.Contains(fmt.Sprint(s["reason"]), "the plugin has been starting") {
		t.Fatalf("Get db while the plugin starts = %+v, want state unknown and why", got.Volume)
	}
	if _, err := gate.Get(&volume.GetRequest{Name: "gone"}); !errors.Is(err, plugin.ErrStarting) {
		t.Fatalf("Get gone while the plugin starts: %v, want ErrStarting", err)
	}
	if list, err := gate.List(); err != nil || len(list.Volumes) != 1 {
		t.Fatalf("List while the plugin starts = %+v, %v; want db", list, err)
	}
	if _, err := gate.Mount(&volume.MountRequest{Name: "db", ID: "m1"}); !errors.Is(err, plugin.ErrStarting) {
		t.Fatalf("Mount db while the plugin starts: %v, want ErrStarting", err)
	}
}
