package controller

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the controller's Prometheus metrics, in a registry of their
// own (served at /metrics) so that tests can make as many as they like.
type Metrics struct {
	reg               *prometheus.Registry
	alive             prometheus.Gauge
	leader            prometheus.Gauge
	appsRunning       prometheus.Gauge
	relocations       *prometheus.CounterVec
	relocationSeconds *prometheus.HistogramVec
	phaseSeconds      *prometheus.HistogramVec
	mountSeconds      *prometheus.HistogramVec
	fencings          *prometheus.CounterVec
	selfFencings      prometheus.Counter
	selfFencing       prometheus.Gauge
	selfFencingLeft   prometheus.Gauge
	orphans           prometheus.Counter
}

// NewMetrics registers every metric; mounted reports this host's mounted
// relocvol volumes at scrape time.
func NewMetrics(mounted func() int) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		alive: prometheus.NewGauge(prometheus.GaugeOpts{Name: "relocvol_host_alive",
			Help: "1 while this host's etcd lease is provably current."}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "relocvol_leader",
			Help: "1 while this host is the cluster's leader."}),
		appsRunning: prometheus.NewGauge(prometheus.GaugeOpts{Name: "relocvol_apps_running",
			Help: "Relocatable containers running on this host."}),
		relocations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relocvol_relocations_total",
			Help: "Relocations finished on this host (as their target), by kind (failover, move) and result (ok, failed)."}, []string{"kind", "result"}),
		relocationSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "relocvol_relocation_seconds",
			Help:    "Time from a relocation's start (lease loss or move request) until the app runs on its new host.",
			Buckets: []float64{1, 2, 4, 6, 8, 10, 15, 20, 30, 60, 120}}, []string{"kind"}),
		phaseSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "relocvol_phase_seconds",
			Help:    "Duration of each relocation phase that ran on this host.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 10)}, []string{"phase"}),
		mountSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "relocvol_mount_phase_seconds",
			Help:    "Duration of each step of every Mount on this host, relocation or not (fenced, claimed, activated, mounted).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}, []string{"phase"}),
		fencings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relocvol_fencings_total",
			Help: "Dead hosts this host fenced as the leader, by result."}, []string{"result"}),
		selfFencings: prometheus.NewCounter(prometheus.CounterOpts{Name: "relocvol_self_fencings_total",
			Help: "Times this host stopped its relocatable containers because it lost its lease."}),
		selfFencing: prometheus.NewGauge(prometheus.GaugeOpts{Name: "relocvol_self_fencing",
			Help: "1 while this host self-fences: it cannot prove its lease current, stops its relocvol containers and unmounts its volumes."}),
		selfFencingLeft: prometheus.NewGauge(prometheus.GaugeOpts{Name: "relocvol_self_fencing_volumes_left",
			Help: "relocvol volumes still mounted on this host after the last self-fencing pass (anything but 0 for long needs an operator)."}),
		orphans: prometheus.NewCounter(prometheus.CounterOpts{Name: "relocvol_orphan_mounts_dropped_total",
			Help: "Volumes whose mount IDs this host dropped because no container of its engine used them."}),
	}
	m.reg.MustRegister(m.alive, m.leader, m.appsRunning, m.relocations, m.relocationSeconds, m.phaseSeconds,
		m.mountSeconds, m.fencings, m.selfFencings, m.selfFencing, m.selfFencingLeft, m.orphans,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if mounted != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "relocvol_volumes_mounted",
			Help: "relocvol volumes mounted on this host."}, func() float64 { return float64(mounted()) }))
	}
	return m
}

// watchSlack exports how close the host came to its cut-off.
func (m *Metrics) watchSlack(hb Liveness) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "relocvol_lease_slack_min_seconds",
		Help: "The smallest slack this host kept since it started: its Mount cut-off minus the longest time between a lease renewal and the answer to the next (at or below 0 it self-fenced)."},
		func() float64 { return (hb.Timings().Cutoff() - hb.MaxRenewalGap()).Seconds() }))
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func boolGauge(g prometheus.Gauge, v bool) {
	if v {
		g.Set(1)
	} else {
		g.Set(0)
	}
}
