package plugin

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/relocvol/relocvol/internal/store"
)

// VGExtender is an optional ability of a backend: adding PVs to its shared
// VG with every host's part in it (lvm.LVM).
type VGExtender interface {
	VG() string
	// Extend adds devs to the VG once join, given their PV UUIDs and
	// their real device nodes here, has returned nil (lvm.(*LVM).Extend).
	Extend(ctx context.Context, devs []string, join func(ctx context.Context, uuids, real []string) error) error
	// Rescan refreshes this host's LVM device hints; DevicesOf finds the
	// PVs of uuids as this host sees them.
	Rescan(ctx context.Context) error
	DevicesOf(ctx context.Context, uuids []string) ([]string, error)
}

// PVJoiner is an optional ability of a Fencer: registering this host on
// devices about to join the VG, and clearing from them the keys of hosts
// that are not alive (scsi3.(*Fencer).JoinPVs, ClearKeys).
type PVJoiner interface {
	JoinPVs(ctx context.Context, pvs []string) error
	ClearKeys(ctx context.Context, pvs []string, keep []string) error
}

// VGOpStore is what a VG change needs of etcd (store.Store).
type VGOpStore interface {
	StartVGOp(ctx context.Context, op store.VGOp, ttl time.Duration) (store.VGOp, error)
	EndVGOp(ctx context.Context, op store.VGOp)
	VGOps(ctx context.Context) ([]store.VGOp, error)
	AckVGOp(ctx context.Context, op store.VGOp, host, errMsg string) error
	VGOpAcks(ctx context.Context, id string) (map[string]store.VGAck, error)
	WatchVGOps(ctx context.Context) <-chan struct{}
	ListHosts(ctx context.Context) (map[string]store.Versioned[store.Host], error)
}

// How long an extend waits for every live host to register on the new
// PVs, how long one host's part may take, and the whole extend (the
// client waits api.ExtendVGTimeout).
const (
	vgOpWait   = 90 * time.Second
	vgOpStep   = 60 * time.Second
	vgOpBudget = 4 * time.Minute
)

// ExtendVG adds devs (as this host names them) to the shared VG, as
// `relocvol vg extend` asks: every live host finds the new PVs, refreshes
// its LVM hints and registers its key on them (RunVGOps) before the
// vgextend, which runs under the VG lock every lvcreate takes.
func (d *Driver) ExtendVG(ctx context.Context, devs []string) error {
	ve, ok := d.backend.(VGExtender)
	if !ok {
		return newErr(ErrInvalid, "host %s runs the %s backend, which has no volume group: vg extend is for the lvm backend", d.opt.Host, d.backend.Name())
	}
	ops, ok := d.store.(VGOpStore)
	if !ok {
		return newErr(ErrInvalid, "host %s cannot coordinate a VG change", d.opt.Host)
	}
	pj, ok := d.fencer.(PVJoiner)
	if !ok {
		return newErr(ErrInvalid, "host %s's fencing cannot register on new PVs: vg extend needs scsi3 fencing", d.opt.Host)
	}
	if !d.live.Alive() {
		return newErr(ErrNotAlive, "host %s is not alive (its lease in etcd is not current): it changes the volume group only once it has joined; relocvol local shows why", d.opt.Host)
	}
	// Detached from the request: a client that gives up must not stop it
	// half way.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), vgOpBudget)
	defer cancel()
	err := ve.Extend(ctx, devs, func(ctx context.Context, uuids, real []string) error {
		alive, err := d.awaitJoined(ctx, ops, ve.VG(), uuids)
		if err != nil {
			return err
		}
		// No key on the new PVs but those of hosts alive now that
		// registered there: no fence of a host that died meanwhile
		// covered them.
		if err := pj.ClearKeys(ctx, real, alive); err != nil {
			return err
		}
		if !d.live.Alive() {
			return fmt.Errorf("host %s is past its cut-off (its lease is not provably current): it adds nothing to the VG now; run vg extend again once it has rejoined", d.opt.Host)
		}
		return nil
	})
	if err == nil {
		return nil
	}
	var de interface{ DeviceRefused() bool }
	if errors.As(err, &de) {
		return newErr(ErrInvalid, "%s", err)
	}
	var pe *Error
	if errors.As(err, &pe) {
		return err
	}
	return wrapErr(errors.New("vg extend failed"), err, "cannot add %s to volume group %s", strings.Join(devs, ", "), ve.VG())
}

// awaitJoined records the VG change for every host and waits until every
// live host registered on the new PVs (extendVerdict); it returns the hosts
// alive at the end, every one of which did.
func (d *Driver) awaitJoined(ctx context.Context, ops VGOpStore, vg string, uuids []string) ([]string, error) {
	op, err := ops.StartVGOp(ctx, store.VGOp{ID: uuid.NewString(), VG: vg, Op: store.VGOpExtend, PVs: uuids, By: d.opt.Host}, vgOpWait+vgOpStep)
	if err != nil {
		return nil, err
	}
	defer ops.EndVGOp(ctx, op)
	d.log.WithFields(map[string]any{"vg": vg, "pvs": strings.Join(uuids, ",")}).Info("asking every live host to register on the PVs being added")
	deadline := time.Now().Add(vgOpWait)
	for {
		hosts, err := ops.ListHosts(ctx)
		if err != nil {
			return nil, err
		}
		acks, err := ops.VGOpAcks(ctx, op.ID)
		if err != nil {
			return nil, err
		}
		names := make([]string, 0, len(hosts))
		for h := range hosts {
			names = append(names, h)
		}
		waiting, err := extendVerdict(names, acks)
		if err != nil {
			return nil, err
		}
		if len(waiting) == 0 {
			sort.Strings(names)
			return names, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("host(s) %s did not register on the new PVs within %s (is their plugin running and joined? their plugin log says why): nothing was added to the VG", strings.Join(waiting, ", "), vgOpWait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// extendVerdict tells, from the hosts alive now and their answers, which
// hosts an extend still waits for; an error when one could not take part
// (it does not see the LUN, or cannot register there), naming it.
func extendVerdict(alive []string, acks map[string]store.VGAck) (waiting []string, err error) {
	var failed []string
	for h, a := range acks {
		if a.Error != "" {
			failed = append(failed, fmt.Sprintf("host %s: %s", h, a.Error))
		}
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		return nil, fmt.Errorf("not every host can use the new PVs, so nothing was added to the VG (%s)", strings.Join(failed, "; "))
	}
	for _, h := range alive {
		if _, ok := acks[h]; !ok {
			waiting = append(waiting, h)
		}
	}
	sort.Strings(waiting)
	return waiting, nil
}

// RunVGOps takes this host's part, until ctx ends, in each VG change
// another host (or this one) asks for: it refreshes its LVM device hints,
// finds the new PVs and registers its key on them, then answers. A host
// that is not alive answers nothing: the asking host does not wait for it,
// and its join registers on every PV of the VG anyway.
func (d *Driver) RunVGOps(ctx context.Context) {
	ve, ok := d.backend.(VGExtender)
	ops, ok2 := d.store.(VGOpStore)
	if !ok || !ok2 {
		return
	}
	answered := map[string]bool{}
	// On each change, and every few seconds too: a host that was not
	// alive when the change was recorded, or whose answer did not reach
	// etcd, takes part once it can.
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for ctx.Err() == nil {
		changed := ops.WatchVGOps(ctx)
		d.answerVGOps(ctx, ops, ve, answered)
	watch:
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-changed:
				if !ok {
					break watch // etcd lost its leader: watch again
				}
			case <-tick.C:
			}
			d.answerVGOps(ctx, ops, ve, answered)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (d *Driver) answerVGOps(ctx context.Context, ops VGOpStore, ve VGExtender, answered map[string]bool) {
	list, err := ops.VGOps(ctx)
	if err != nil {
		d.log.WithError(err).Warn("cannot read the VG changes under way")
		return
	}
	current := map[string]bool{}
	for _, op := range list {
		current[op.ID] = true
		if answered[op.ID] || op.VG != ve.VG() || op.Op != store.VGOpExtend || !d.live.Alive() {
			continue
		}
		log := d.log.WithFields(map[string]any{"vg": op.VG, "by": op.By, "pvs": strings.Join(op.PVs, ",")})
		msg := ""
		if err := d.joinNewPVs(ctx, ve, op.PVs); err != nil {
			msg = err.Error()
			log.WithError(err).Error("cannot take part in adding PVs to the VG: the extend is refused")
		} else {
			log.Info("registered on the PVs being added to the VG")
		}
		if err := ops.AckVGOp(ctx, op, d.opt.Host, msg); err != nil {
			log.WithError(err).Warn("cannot answer the VG change: trying again")
			continue
		}
		answered[op.ID] = true
	}
	for id := range answered {
		if !current[id] {
			delete(answered, id)
		}
	}
}

// joinNewPVs is this host's part of an extend.
func (d *Driver) joinNewPVs(ctx context.Context, ve VGExtender, uuids []string) error {
	ctx, cancel := context.WithTimeout(ctx, vgOpStep)
	defer cancel()
	if err := ve.Rescan(ctx); err != nil {
		return err
	}
	devs, err := ve.DevicesOf(ctx, uuids)
	if err != nil {
		return err
	}
	pj, ok := d.fencer.(PVJoiner)
	if !ok {
		return fmt.Errorf("this host's fencing (%s) cannot register on new PVs: vg extend needs scsi3 fencing on every host", d.fencer.Name())
	}
	return pj.JoinPVs(ctx, devs)
}

// VGName is the shared VG's name ("" on a backend without one).
func (d *Driver) VGName() string {
	if ve, ok := d.backend.(VGExtender); ok {
		return ve.VG()
	}
	return ""
}
