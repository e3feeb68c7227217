package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/internal/doctor"
	"github.com/relocvol/relocvol/internal/store"
)

// Diagnoser runs this host's checks (the plugin's wiring assembles them:
// etcd, lease, clock, storage, fencing, Docker, settings).
type Diagnoser func(ctx context.Context) doctor.Report

// doctorWait is how long a doctor run waits for every live host's report;
// a host that has not answered by then is reported as such.
const doctorWait = 30 * time.Second

// Doctor implements api.Service: this host's checks, and every live host's,
// asked through etcd (each host's controller answers, see answerDoctor),
// then the settings compared across them. Without etcd it is this host's
// checks alone, which say so.
func (c *Controller) Doctor(ctx context.Context) (api.Doctor, error) {
	if c.opt.Diagnose == nil {
		return api.Doctor{}, api.Errorf(api.ErrUnsupported, "host %s runs no checks: ask the API of a host that runs the plugin", c.opt.Host)
	}
	st := c.opt.Store
	id, err := doctorID()
	if err != nil {
		return api.Doctor{}, err
	}
	asked := st.RequestDoctor(ctx, store.DoctorRequest{ID: id, By: c.opt.Host, At: time.Now().UTC()})
	own := c.opt.Diagnose(ctx)
	reports := []doctor.Report{own}
	if asked == nil {
		others, err := c.doctorReports(ctx, id)
		if err != nil {
			asked = err
		}
		reports = append(reports, others...)
	}
	if asked != nil {
		reports[0].Checks = append(reports[0].Checks, doctor.Failed("cluster", "see the etcd check: with etcd back, every host answers",
			"cannot ask the other hosts for their checks: %v", asked))
	}
	sort.Slice(reports, func(i, j int) bool { return reports[i].Host < reports[j].Host })
	doctor.Consistency(reports)
	var all []doctor.Check
	for _, r := range reports {
		all = append(all, r.Checks...)
	}
	out := api.Doctor{Status: doctor.Worst(all), Hosts: reports}
	return out, nil
}

// doctorReports waits up to doctorWait for the report of every live host
// but this one, and returns them; a live host that did not answer gets a
// report saying so.
func (c *Controller) doctorReports(ctx context.Context, id string) ([]doctor.Report, error) {
	st := c.opt.Store
	var got map[string]json.RawMessage
	var live []string
	wctx, cancel := context.WithTimeout(ctx, c.doctorWait)
	defer cancel()
	err := st.Await(wctx, []store.Family{store.Doctor, store.Hosts}, 0, func(ctx context.Context) (bool, error) {
		hosts, err := st.ListHosts(ctx)
		if err != nil {
			return false, err
		}
		if got, err = st.DoctorReports(ctx, id); err != nil {
			return false, err
		}
		live = live[:0]
		for h := range hosts {
			if h != c.opt.Host {
				live = append(live, h)
			}
		}
		for _, h := range live {
			if _, ok := got[h]; !ok {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil && (wctx.Err() == nil || ctx.Err() != nil) {
		return nil, err
	}
	sort.Strings(live)
	var out []doctor.Report
	for _, h := range live {
		var r doctor.Report
		raw, ok := got[h]
		if !ok {
			out = append(out, doctor.Report{Host: h, Checks: []doctor.Check{doctor.Failed("answer", "look at that host's plugin: docker plugin inspect relocvol, and its log in dockerd's",
				"host %s is alive but sent no report within %s", h, c.doctorWait)}})
			continue
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			r = doctor.Report{Host: h, Checks: []doctor.Check{doctor.Failed("answer", "run the same relocvol version on every host", "its report cannot be read: %v", err)}}
		}
		out = append(out, r)
	}
	return out, nil
}

// answerDoctor runs this host's checks for every doctor run another host
// asks for, and records them in etcd, until ctx ends.
func (c *Controller) answerDoctor(ctx context.Context) {
	if c.opt.Diagnose == nil {
		return
	}
	for ctx.Err() == nil {
		err := c.opt.Store.FollowDoctorRequests(ctx, func(r store.DoctorRequest) {
			if r.By == c.opt.Host {
				return
			}
			go func() {
				rctx, cancel := context.WithTimeout(ctx, doctorWait-5*time.Second)
				defer cancel()
				rep := c.opt.Diagnose(rctx)
				if err := c.opt.Store.PutDoctorReport(ctx, r.ID, c.opt.Host, rep); err != nil {
					c.log.WithError(err).WithField("asked_by", r.By).Warn("cannot record this host's checks for relocvol doctor")
				}
			}()
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			c.log.WithError(err).Debug("doctor requests: watching again in a second")
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// doctorID names a doctor run.
func doctorID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make a doctor run's ID: %w", err)
	}
	return hex.EncodeToString(b), nil
}
