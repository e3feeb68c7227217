package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/internal/store"
)

// AppKeySource reads the cluster's app key from the storage the host
// joined (plugin.ReadAppKey): the key that signs app records (appmac.go).
type AppKeySource func(ctx context.Context) ([]byte, error)

// appKey is the cluster's app key, read once from the storage: it is made
// once, by the first host that joins, and never changes.
func (a *Agent) appKey(ctx context.Context) ([]byte, error) {
	a.mu.Lock()
	key := a.key
	a.mu.Unlock()
	if key != nil {
		return key, nil
	}
	if a.keySrc == nil {
		return nil, errNoKey
	}
	key, err := a.keySrc(ctx)
	if err != nil {
		return nil, err
	}
	if len(key) == 0 {
		return nil, errNoKey
	}
	a.mu.Lock()
	a.key = key
	a.mu.Unlock()
	return key, nil
}

// sign sets app's MAC, as the agent that recorded it.
func (a *Agent) sign(ctx context.Context, app *store.App) error {
	key, err := a.appKey(ctx)
	if err != nil {
		return err
	}
	return signApp(key, app)
}

// unsigned checks the record of every app placed on this host: those an
// agent of this cluster did not sign as they are, with why.
func (a *Agent) unsigned(ctx context.Context, apps map[string]store.Versioned[store.App]) (map[string]error, error) {
	key, err := a.appKey(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]error{}
	for name, app := range apps {
		if app.Value.Host != a.host {
			continue
		}
		if err := verifyApp(key, app.Value); err != nil {
			out[name] = err
		} else if app.Value.Name != name {
			// A signed record copied under another app's key.
			out[name] = fmt.Errorf("%w: the record under apps/%s is app %s's", errBadMAC, name, app.Value.Name)
		}
	}
	return out, nil
}

// allowedHere refuses an app placed on host although its label
// relocvol.hosts (the signed Allowed) leaves host out: its placement is not
// signed, so only the signed list says where it may run.
func allowedHere(app store.App, host string) error {
	if len(app.Allowed) == 0 || slices.Contains(app.Allowed, host) {
		return nil
	}
	return fmt.Errorf("%w: app %s is placed on host %s, which its label relocvol.hosts (%s) leaves out", errNotAllowed, app.Name, host, strings.Join(app.Allowed, ","))
}

// errNotAllowed: an app placed on a host its signed label leaves out.
var errNotAllowed = errors.New("placed on a host it may not run on")

// record records again, and signs, the app placed here whose container c
// runs here but whose record (read at rev) no agent signed as it is: what
// runs here is what an agent records. A record an older relocvol wrote
// (no MAC) gets its MAC this way; one changed since it was recorded gets
// the running container's spec back.
func (a *Agent) record(ctx context.Context, c container.Summary, placed store.App, rev int64) {
	log := a.log.WithField("app", placed.Name)
	app, ok := a.recorded(ctx, c.ID, placed.Name, log)
	if !ok {
		return
	}
	app.Host, app.Relocation = placed.Host, placed.Relocation
	if err := a.sign(ctx, &app); err != nil {
		log.WithError(err).Error("cannot sign the app's record")
		return
	}
	if _, err := a.st.PutApp(ctx, app, rev); err != nil {
		log.WithError(err).Debug("cannot record the app again; the next reconcile will")
		return
	}
	if placed.MAC == "" {
		log.Info("signed the app's record, written without a MAC (by a relocvol before app keys), from its running container")
		return
	}
	log.WithFields(logrus.Fields{"image": app.Spec.Image, "was": placed.Spec.Image}).Warn(
		"the app's record did not match its MAC (changed in etcd since an agent recorded it, or signed with another key): recorded it again from its running container")
}

// refuse reports, once until it changes, that app is not started here:
// why says what is wrong with its record. In the log (error) and the
// timeline (relocvol events), with what to do.
func (a *Agent) refuse(app store.App, why error) {
	a.report(app.Name, "refused: "+why.Error(), func() {
		hint := "someone who can write etcd wrote or changed it: check who can (relocvol doctor, its etcd access check)"
		switch {
		case errors.Is(why, errUnsigned):
			hint = "a relocvol before app keys wrote it, or someone wrote it straight into etcd"
		case errors.Is(why, errNotAllowed):
			hint = "its placement is not signed, its label is: someone who can write etcd placed it here; move it to an allowed host (relocvol move)"
		}
		err := fmt.Errorf("%w: not creating or starting its container on host %s (%s); if the app is yours, start its container "+
			"on host %s with the label %s=true (docker start %s if it exists there, else docker run it again) so that the agent there records and signs it",
			why, a.host, hint, a.host, LabelRelocate, app.Name)
		a.log.WithError(err).WithField("app", app.Name).Error("refused to start an app from a record this host may not start from")
		a.rec.Refused(app, err)
	})
}
