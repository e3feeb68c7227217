package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/execx"
	"github.com/relocvol/relocvol/internal/store"
)

// eventsKept is how many timeline events the leader keeps in etcd.
const eventsKept = 2000

// Leader campaigns for the cluster's leadership on every host; the elected
// one watches the hosts and, when one has been dead for the grace period,
// fences it, releases its claims and places its apps on live hosts. Every
// write is guarded by the leadership, so a deposed leader changes nothing.
type Leader struct {
	st     LeaderStore
	host   string
	hb     Liveness
	fencer fencing.Method
	grace  time.Duration
	rec    *Recorder
	m      *Metrics
	log    logrus.FieldLogger

	mu      sync.Mutex
	leading bool
	// down is when this leader first saw each host without a lease, in
	// which of its incarnations.
	down map[string]downSighting
	// proven is, for each host this leader fenced, the down time it was
	// fenced in and the mark it proved: it is fenced again only after it
	// was seen alive, or when that mark is gone.
	proven map[string]provenFence
	// announced are the relocations whose detection is in the timeline,
	// and the hosts (host@down-since) whose apps' detections are.
	announced map[string]bool
	stuck     map[string]string
}

// downSighting is when this leader first saw a host without a lease, in
// which of its incarnations (store.HostState.Incarnation).
type downSighting struct {
	at          time.Time
	incarnation int64
}

// provenFence is a fence this leader proved: the down time of the host it
// fenced and the revision of the mark it wrote first, which every release
// of that host's claims requires (store.FencedBy).
type provenFence struct {
	down    time.Time
	markRev int64
}

// NewLeader returns a leader candidate for host. grace is how long a host's
// lease must have been gone before it is fenced: the lease TTL already ran
// out since its last renewal, so grace is the margin on top of it.
func NewLeader(st LeaderStore, hb Liveness, fencer fencing.Method, grace time.Duration, rec *Recorder, m *Metrics, host string, log logrus.FieldLogger) *Leader {
	return &Leader{st: st, host: host, hb: hb, fencer: fencer, grace: grace, rec: rec, m: m, log: log.WithField("host", host)}
}

// Leading reports whether this host is the leader now.
func (l *Leader) Leading() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leading
}

func (l *Leader) setLeading(v bool) {
	l.mu.Lock()
	l.leading = v
	l.mu.Unlock()
	if l.m != nil {
		boolGauge(l.m.leader, v)
	}
}

// Run campaigns and leads until ctx ends. A host campaigns only while its
// own lease is current.
func (l *Leader) Run(ctx context.Context) {
	ttl := int(l.hb.TTL() / time.Second)
	for ctx.Err() == nil {
		if !l.hb.Alive() {
			sleep(ctx, 500*time.Millisecond)
			continue
		}
		lead, err := l.st.Campaign(ctx, l.host, ttl)
		if err != nil {
			if ctx.Err() == nil {
				l.log.WithError(err).Warn("campaign failed; retrying")
				sleep(ctx, time.Second)
			}
			continue
		}
		l.log.Info("elected leader")
		l.setLeading(true)
		l.lead(ctx, lead)
		l.setLeading(false)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_ = lead.Resign(rctx)
		cancel()
		l.log.Warn("no longer the leader")
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// reset forgets what an earlier term learned: a new term sees every host
// afresh (down from now, fenced by nobody).
func (l *Leader) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down, l.proven, l.announced, l.stuck = map[string]downSighting{}, map[string]provenFence{}, map[string]bool{}, map[string]string{}
}

// lead runs the failover loop until the leadership ends.
func (l *Leader) lead(ctx context.Context, lead *store.Leadership) {
	l.reset()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	// A host's lease gone wakes the pass at once, and the end of its grace
	// too, rather than the next tick: with the tick alone, a failover began
	// up to a second late.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	gone := l.watchGone(wctx)
	due := time.NewTimer(time.Hour)
	defer due.Stop()
	lastPrune := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-lead.Done():
			return
		case <-tick.C:
		case <-gone:
		case <-due.C:
		}
		if !l.hb.Alive() {
			l.log.Warn("own lease not current: giving up the leadership")
			return
		}
		err := l.step(ctx, lead, time.Now())
		if errors.Is(err, store.ErrNotLeader) {
			return
		}
		if err != nil {
			l.log.WithError(err).Warn("failover step failed; retrying")
		}
		if d, ok := l.nextDue(time.Now()); ok {
			due.Reset(d)
		}
		if time.Since(lastPrune) > time.Minute {
			lastPrune = time.Now()
			if n, err := l.st.PruneEvents(ctx, eventsKept); err == nil && n > 0 {
				l.log.WithField("deleted", n).Debug("pruned old timeline events")
			}
		}
	}
}

// watchGone signals (without blocking) each deletion of a host key until
// ctx ends; a broken watch is opened again a second later.
func (l *Leader) watchGone(ctx context.Context) <-chan struct{} {
	gone := make(chan struct{}, 1)
	go func() {
		for ctx.Err() == nil {
			for resp := range l.st.WatchHosts(ctx) {
				for _, ev := range resp.Events {
					if ev.Type == clientv3.EventTypeDelete {
						select {
						case gone <- struct{}{}:
						default:
						}
					}
				}
			}
			sleep(ctx, time.Second)
		}
	}()
	return gone
}

// nextDue is how long until the grace of the next host seen down ends,
// if one is still in its grace.
func (l *Leader) nextDue(now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var next time.Duration
	found := false
	for _, down := range l.down {
		if d := down.at.Add(l.grace).Sub(now); d > 0 && (!found || d < next) {
			next, found = d, true
		}
	}
	return next, found
}

// snapshot reads the cluster (at one revision) and tracks since when each
// host is down.
func (l *Leader) snapshot(ctx context.Context, now time.Time) (Snapshot, map[string]store.Versioned[store.App], error) {
	snap, err := l.st.Snapshot(ctx)
	if err != nil {
		return Snapshot{}, nil, err
	}
	hosts, fences, apps, claims, maint := snap.Hosts, snap.Fences, snap.Apps, snap.Claims, snap.Maintenance
	s := Snapshot{Hosts: map[string]HostView{}, Apps: map[string]AppView{}, Claims: map[string]string{}}
	known := map[string]bool{}
	for name, a := range apps {
		s.Apps[name] = AppView{Volumes: a.Value.Volumes, Host: a.Value.Host, Allowed: a.Value.Allowed}
		known[a.Value.Host] = true
	}
	for vol, c := range claims {
		if c.Value.Held() {
			s.Claims[vol] = c.Value.Host
			known[c.Value.Host] = true
		}
	}
	for h := range hosts {
		known[h] = true
	}
	for h := range fences {
		known[h] = true
	}
	delete(known, "")
	l.mu.Lock()
	defer l.mu.Unlock()
	for h := range known {
		_, fenced := fences[h]
		_, inMaint := maint[h]
		if rec, alive := hosts[h]; alive {
			delete(l.down, h)
			delete(l.proven, h)
			s.Hosts[h] = HostView{Alive: true, Agent: rec.Value.Agent, Fenced: fenced, Maintenance: inMaint}
			continue
		}
		// A host this leader never saw alive counts as down from now: its
		// lease may have expired just before this leader was elected. So
		// does one that registered again since it was seen down (seen
		// alive or not between two looks): its last death is new.
		inc := snap.Registered[h].Rev
		if d, ok := l.down[h]; !ok || d.incarnation != inc {
			l.down[h] = downSighting{at: now, incarnation: inc}
			l.log.WithField("dead_host", h).Warn("host has no lease")
		}
		down := l.down[h].at
		p, ok := l.proven[h]
		s.Hosts[h] = HostView{DownSince: down, Fenced: fenced, Proven: ok && p.down.Equal(down), Maintenance: inMaint}
	}
	return s, apps, nil
}

// step plans on a fresh snapshot and performs the plan kind by kind, in
// its order (fence, release, place); it stops after the first kind with a
// failure and the next step plans again.
func (l *Leader) step(ctx context.Context, lead *store.Leadership, now time.Time) error {
	s, apps, err := l.snapshot(ctx, now)
	if err != nil {
		return err
	}
	plan := Plan(s, now, l.grace)
	for len(plan) > 0 {
		n := 1
		for n < len(plan) && plan[n].Kind == plan[0].Kind {
			n++
		}
		if err := l.performAll(ctx, lead, plan[:n], s, apps); err != nil {
			return err
		}
		plan = plan[n:]
	}
	return nil
}

// performWorkers is how many of a plan's releases or placements run at
// once.
const performWorkers = 16

// performAll performs actions of one kind. Fences run one by one (each
// proves one host cut off, and a release must follow its host's fence).
// Releases and placements are independent writes, each guarded by its own
// transaction, so they run performWorkers at once: a dead host with a
// thousand volumes does not wait a thousand round trips for its apps. The
// error is the first failure.
func (l *Leader) performAll(ctx context.Context, lead *store.Leadership, acts []Action, s Snapshot, apps map[string]store.Versioned[store.App]) error {
	workers := performWorkers
	if acts[0].Kind == ActFence {
		workers = 1
	}
	next := make(chan Action)
	errs := make(chan error, len(acts))
	var wg sync.WaitGroup
	for range min(workers, len(acts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for act := range next {
				if err := l.perform(ctx, lead, act, s, apps); err != nil {
					errs <- fmt.Errorf("%s: %w", act, err)
				}
			}
		}()
	}
	for _, act := range acts {
		next <- act
	}
	close(next)
	wg.Wait()
	close(errs)
	return <-errs
}

// appsOn lists the apps placed on host.
func appsOn(apps map[string]store.Versioned[store.App], host string) []store.App {
	var out []store.App
	for _, a := range apps {
		if a.Value.Host == host {
			out = append(out, a.Value)
		}
	}
	return out
}

// announce puts the detection of host's death into the timeline of each of
// its apps, once.
func (l *Leader) announce(host string, s Snapshot, apps map[string]store.Versioned[store.App]) {
	down := s.Hosts[host].DownSince
	// Once per host and death: a host's every release calls this.
	key := host + "@" + down.String()
	l.mu.Lock()
	done := l.announced[key]
	l.announced[key] = true
	l.mu.Unlock()
	if done {
		return
	}
	for _, a := range appsOn(apps, host) {
		a.Relocation = newRelocation(store.KindFailover, a.Name, host, "", down)
		l.mu.Lock()
		seen := l.announced[a.Relocation.ID]
		l.announced[a.Relocation.ID] = true
		l.mu.Unlock()
		if seen {
			continue
		}
		l.rec.Step(a, "detected", 0, fmt.Sprintf("lease of host %s gone since %s; waited %s grace", host, down.Format("15:04:05.000"), l.grace), nil)
	}
}

// provenSince returns the fence this leader proved of host since it went
// down at down, if it did.
func (l *Leader) provenSince(host string, down time.Time) (provenFence, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.proven[host]
	return p, ok && p.down.Equal(down)
}

func (l *Leader) perform(ctx context.Context, lead *store.Leadership, act Action, s Snapshot, apps map[string]store.Versioned[store.App]) error {
	log := l.log.WithFields(logrus.Fields{"action": act.Kind, "dead_host": act.Host})
	down := s.Hosts[act.Host].DownSince
	switch act.Kind {
	case ActFence:
		l.announce(act.Host, s, apps)
		log.WithField("method", l.fencer.Name()).Warn("fencing dead host")
		start := time.Now()
		markRev, err := fencing.Host(execx.WithTrace(ctx, "leader fence "+act.Host), l.st, l.fencer, act.Host, l.host, "", lead)
		if errors.Is(err, store.ErrHostAlive) {
			// Nothing of it is released this step (releases need the
			// mark this leader proved): the next plan sees it alive, or
			// dead again and fences it first.
			log.Info("host has a lease again: not fencing it, releasing nothing of it")
			return nil
		}
		if err == nil {
			l.mu.Lock()
			l.proven[act.Host] = provenFence{down: down, markRev: markRev}
			l.mu.Unlock()
		}
		result := "ok"
		if err != nil {
			result = "failed"
		}
		if l.m != nil {
			l.m.fencings.WithLabelValues(result).Inc()
		}
		for _, a := range appsOn(apps, act.Host) {
			a.Relocation = newRelocation(store.KindFailover, a.Name, act.Host, "", down)
			l.rec.Step(a, "fenced", time.Since(start), "method "+l.fencer.Name(), err)
		}
		if err != nil {
			return fmt.Errorf("fence host %s: %w", act.Host, err)
		}
		log.Warn("fenced dead host")
	case ActRelease:
		l.announce(act.Host, s, apps)
		c, rev, err := l.st.GetClaim(ctx, act.Volume)
		if err != nil {
			return err
		}
		if c.Host != act.Host {
			return nil // taken over or released since the snapshot
		}
		p, ok := l.provenSince(act.Host, down)
		if !ok {
			// Its fence this step did not prove it cut off (it had a
			// lease again): never release on an absent host key alone.
			log.WithField("volume", act.Volume).Info("host not fenced by this leader since it went down: releasing nothing of it")
			return nil
		}
		err = l.st.ReleaseClaim(ctx, c, rev, p.markRev, lead)
		if errors.Is(err, store.ErrMarkChanged) {
			// It rejoined since (clearing the mark) or was marked again:
			// the fence proves nothing now; the next step fences again.
			l.mu.Lock()
			delete(l.proven, act.Host)
			l.mu.Unlock()
		}
		if err != nil {
			return fmt.Errorf("release volume %s: %w", act.Volume, err)
		}
		log.WithFields(logrus.Fields{"volume": act.Volume, "epoch": c.Epoch}).Warn("released the dead host's claim")
	case ActPlace:
		if _, ok := l.provenSince(act.Host, down); !ok {
			// Placed elsewhere, its app would be removed from a host
			// that is alive after all.
			log.WithField("app", act.App).Info("host not fenced by this leader since it went down: moving none of its apps")
			return nil
		}
		a, rev, err := l.st.GetApp(ctx, act.App)
		if err != nil {
			return err
		}
		if a.Host != act.Host {
			return nil
		}
		a.Host = act.To
		a.Relocation = newRelocation(store.KindFailover, a.Name, act.Host, act.To, down)
		start := time.Now()
		if _, err := l.st.PutApp(ctx, a, rev, lead); err != nil {
			return fmt.Errorf("place app %s on %s: %w", act.App, act.To, err)
		}
		l.rec.Step(a, "placed", time.Since(start), "on host "+act.To, nil)
		log.WithFields(logrus.Fields{"app": act.App, "to": act.To}).Warn("placed app on a live host")
	case ActStuck:
		l.announce(act.Host, s, apps)
		l.mu.Lock()
		seen := l.stuck[act.App] == act.Reason
		l.stuck[act.App] = act.Reason
		l.mu.Unlock()
		if !seen {
			a := apps[act.App].Value
			a.Relocation = newRelocation(store.KindFailover, a.Name, act.Host, "", down)
			l.rec.Step(a, "stuck", 0, "", errors.New(act.Reason))
			log.WithField("app", act.App).Error("app cannot be relocated: " + act.Reason)
		}
	}
	return nil
}
