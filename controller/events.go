package controller

import (
	"context"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relocvol/relocvol/internal/store"
)

// Recorder writes timeline events to etcd in the background, so that a
// mount or a container start never waits for the timeline, and an etcd
// hiccup only delays it.
type Recorder struct {
	st   EventStore
	host string
	log  logrus.FieldLogger
	m    *Metrics
	ch   chan store.Event
}

// NewRecorder returns a recorder for events that happen on host.
func NewRecorder(st EventStore, host string, m *Metrics, log logrus.FieldLogger) *Recorder {
	return &Recorder{st: st, host: host, m: m, log: log, ch: make(chan store.Event, 256)}
}

// Step queues a step of app's relocation (app.Relocation is set): its
// phase, how long it took, a detail for humans and the error if it failed.
func (r *Recorder) Step(app store.App, phase string, took time.Duration, detail string, err error) {
	rel := app.Relocation
	e := store.Event{Relocation: rel.ID, Kind: rel.Kind, App: app.Name, Phase: phase, From: rel.From, To: rel.To,
		TookMS: took.Milliseconds(), Detail: detail}
	if err != nil {
		e.Error = err.Error()
	}
	r.add(e, rel.Started)
}

// Refused queues the refusal to start app (err says why): a step of its
// relocation if it has one, else an event of its own (kind "refused").
func (r *Recorder) Refused(app store.App, err error) {
	if app.Relocation != nil {
		r.Step(app, "refused", 0, "", err)
		return
	}
	r.add(store.Event{Kind: "refused", App: app.Name, Phase: "refused", Error: err.Error()}, time.Time{})
}

// add queues e; Host and At default to this host and now. SinceStartMS is
// computed from start when it is set.
func (r *Recorder) add(e store.Event, start time.Time) {
	if e.Host == "" {
		e.Host = r.host
	}
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	if !start.IsZero() {
		e.SinceStartMS = e.At.Sub(start).Milliseconds()
	}
	if r.m != nil && e.Error == "" {
		r.m.phaseSeconds.WithLabelValues(e.Phase).Observe(float64(e.TookMS) / 1000)
	}
	fields := logrus.Fields{"app": e.App, "relocation": e.Relocation, "phase": e.Phase, "took_ms": e.TookMS, "since_start_ms": e.SinceStartMS}
	if e.Error != "" {
		r.log.WithFields(fields).WithField("error", e.Error).Warn("relocation step failed")
	} else {
		r.log.WithFields(fields).Info("relocation step")
	}
	select {
	case r.ch <- e:
	default:
		r.log.WithFields(fields).Warn("timeline queue full: event not recorded in etcd")
	}
}

// Run writes queued events until ctx ends, retrying each for a while.
func (r *Recorder) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-r.ch:
			deadline := time.Now().Add(30 * time.Second)
			for {
				err := r.st.AddEvent(ctx, e)
				if err == nil || ctx.Err() != nil {
					break
				}
				if time.Now().After(deadline) {
					r.log.WithError(err).WithField("phase", e.Phase).Warn("cannot record a timeline event; dropping it")
					break
				}
				select {
				case <-ctx.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
		}
	}
}

// newRelocation begins a relocation of app from one host to another ("":
// not placed yet). Its ID is the app and the moment it began (ms, base
// 36): every step of a failover carries the same ID, and so does a new
// leader's for the same death, since both date it by the host's death.
func newRelocation(kind, app, from, to string, at time.Time) *store.Relocation {
	return &store.Relocation{
		ID:   app + "-" + strconv.FormatInt(at.UnixMilli(), 36),
		Kind: kind, From: from, To: to, Started: at.UTC(),
	}
}
