package plugin_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relocvol/relocvol/backends/loop"
	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/plugin"
)

// vgBackend is the cluster's loop backend with a shared VG's extend, as a
// host sees it: the PVs it sees (by UUID), what it was asked.
type vgBackend struct {
	*loop.Loop
	mu       sync.Mutex
	sees     map[string]string // PV UUID → device
	log      []string
	extended []string
}

func (b *vgBackend) VG() string { return "san" }
func (b *vgBackend) record(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.log = append(b.log, s)
}
func (b *vgBackend) Extend(ctx context.Context, devs []string, join func(context.Context, []string, []string) error) error {
	if err := join(ctx, []string{"u-z"}, []string{b.sees["u-z"]}); err != nil {
		return err
	}
	b.mu.Lock()
	b.extended = append(b.extended, devs...)
	b.mu.Unlock()
	return nil
}
func (b *vgBackend) Rescan(context.Context) error { b.record("pvscan --cache"); return nil }
func (b *vgBackend) DevicesOf(_ context.Context, uuids []string) ([]string, error) {
	var out []string
	for _, u := range uuids {
		d, ok := b.sees[u]
		if !ok {
			return nil, errors.New("this host does not see the PV(s) " + u + ": attach the LUN here too")
		}
		out = append(out, d)
	}
	return out, nil
}

// pvFencer is fencing none that records the PVs it registered on and the
// hosts whose keys it kept on them.
type pvFencer struct {
	fencing.None
	mu     sync.Mutex
	joined []string
	kept   []string
}

func (f *pvFencer) ClearKeys(_ context.Context, _ []string, keep []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kept = keep
	return nil
}

func (f *pvFencer) Join(context.Context) error { return nil }
func (f *pvFencer) JoinPVs(_ context.Context, pvs []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.joined = append(f.joined, pvs...)
	return nil
}

// relocvol vg extend through etcd: the asking host adds the device only
// once every live host refreshed its hints and registered on the new PV;
// a host that does not see it refuses, naming itself, and nothing is
// added.
func TestExtendVGWaitsForEveryLiveHost(t *testing.T) {
	c := newCluster(t)
	type member struct {
		h  *host
		be *vgBackend
		f  *pvFencer
	}
	start := func(name string, sees map[string]string) member {
		be, f := &vgBackend{Loop: c.be, sees: sees}, &pvFencer{}
		h := c.hostWith(name, "", "", hostOpts{backend: be, fencer: f})
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go h.drv.RunVGOps(ctx)
		return member{h, be, f}
	}
	a := start("a", map[string]string{"u-z": "/dev/mapper/mpathb"})
	b := start("b", map[string]string{"u-z": "/dev/mapper/mpathc"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.h.drv.ExtendVG(ctx, []string{"/dev/mapper/mpathb"}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []member{a, b} {
		m.f.mu.Lock()
		joined := strings.Join(m.f.joined, ",")
		m.f.mu.Unlock()
		if want := m.be.sees["u-z"]; joined != want || len(m.be.log) != 1 {
			t.Fatalf("host %s: registered on %q (want %s, as it sees the PV), hints refreshed %v", m.h.name, joined, want, m.be.log)
		}
	}
	if strings.Join(a.be.extended, ",") != "/dev/mapper/mpathb" {
		t.Fatalf("a extended %v", a.be.extended)
	}
	// Before the vgextend, the keys of every host but a and b were
	// cleared from the new PV.
	if got := strings.Join(a.f.kept, ","); got != "a,b" {
		t.Fatalf("the asker kept the keys of %q on the new PV; want a,b (the hosts alive that registered)", got)
	}

	// A third host that does not see the LUN: refused, nothing added.
	start("c", map[string]string{})
	err := b.h.drv.ExtendVG(ctx, []string{"/dev/mapper/mpathc"})
	if err == nil || !strings.Contains(err.Error(), "host c: this host does not see the PV(s) u-z") || !strings.Contains(err.Error(), "nothing was added") {
		t.Fatalf("extend with a host that does not see the PV: %v; want a refusal naming host c", err)
	}
	if len(b.be.extended) != 0 {
		t.Fatalf("b extended %v although host c refused", b.be.extended)
	}
}

// A host that is not alive when an extend is asked (rejoining) takes part
// once it is, and the extend goes on (review of vg extend, F4).
func TestExtendVGWaitsForAHostBecomingAlive(t *testing.T) {
	c := newCluster(t)
	sees := map[string]string{"u-z": "/dev/sdz"}
	a := c.hostWith("a", "", "", hostOpts{backend: &vgBackend{Loop: c.be, sees: sees}, fencer: &pvFencer{}})
	fb := &pvFencer{}
	b := c.hostWith("b", "", "", hostOpts{backend: &vgBackend{Loop: c.be, sees: sees}, fencer: fb})
	live := &switchable{hb: b.hb}
	live.off.Store(true)
	bdrv := plugin.New(b.st, &vgBackend{Loop: c.be, sees: sees}, c.fs, fb, live, plugin.Options{Host: "b", MountRoot: t.TempDir()})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go a.drv.RunVGOps(ctx)
	go bdrv.RunVGOps(ctx)
	time.AfterFunc(2*time.Second, func() { live.off.Store(false) })
	actx, acancel := context.WithTimeout(context.Background(), time.Minute)
	defer acancel()
	if err := a.drv.ExtendVG(actx, []string{"/dev/sdz"}); err != nil {
		t.Fatalf("extend with b alive again after 2 s: %v", err)
	}
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if strings.Join(fb.joined, ",") != "/dev/sdz" {
		t.Fatalf("b registered on %v; want /dev/sdz once it was alive", fb.joined)
	}
}
