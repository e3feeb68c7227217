package doctor

import (
	"fmt"
	"time"
)

// Etcd judges etcd from this host: latency is the slowest of a few reads
// (err: a read failed), renew the host's renewal period. A renewal that
// takes longer than its period is lost and retried: past half of it, the
// lease's slack shrinks in every renewal.
func Etcd(endpoints string, latency time.Duration, err error, renew time.Duration) Check {
	const name = "etcd"
	fix := fmt.Sprintf("keep etcd within a few milliseconds of every host: a disk with fast fsyncs for its data, no network congestion; or raise RELOCVOL_LEASE_TTL (renewals every %s now)", renew.Round(time.Millisecond))
	switch {
	case err != nil:
		return Failed(name, "check that etcd runs and answers from this host (etcdctl --endpoints "+endpoints+" endpoint health)",
			"%s does not answer: %v", endpoints, err)
	case latency > renew:
		return Failed(name, fix, "%s answers in %s, longer than a lease renewal may take (%s): renewals fail", endpoints, latency.Round(time.Millisecond), renew.Round(time.Millisecond))
	case latency > renew/2:
		return Warned(name, fix, "%s answers in %s, over half a lease renewal's %s", endpoints, latency.Round(time.Millisecond), renew.Round(time.Millisecond))
	}
	return Passed(name, "%s answers in %s (a renewal may take %s)", endpoints, latency.Round(100*time.Microsecond), renew.Round(time.Millisecond))
}

// LeaseSlack judges how close this host came to its cut-off since its
// plugin started: the cut-off minus the longest gap between renewals. A
// slack under one renewal period means two renewals in a row nearly
// failed; none left means the host self-fenced.
func LeaseSlack(alive bool, maxGap, cutoff, renew time.Duration) Check {
	const name = "lease"
	slack := cutoff - maxGap
	fix := "find what delays the renewals (etcd's disk and network: see the etcd check; a host starved of CPU), or raise RELOCVOL_LEASE_TTL"
	switch {
	case !alive:
		return Failed(name, "check that etcd answers from this host; the host rejoins by itself (relocvol local shows its self-fencing)",
			"this host has no current lease: it refuses Mounts and stops its relocvol containers")
	case slack <= 0:
		return Failed(name, fix, "the longest gap between renewals, %s, passed the %s cut-off: this host self-fenced since its plugin started", maxGap.Round(time.Millisecond), cutoff.Round(time.Millisecond))
	case slack < renew:
		return Warned(name, fix, "%s of slack left to the %s cut-off (longest gap between renewals %s): less than one renewal period (%s)",
			slack.Round(time.Millisecond), cutoff.Round(time.Millisecond), maxGap.Round(time.Millisecond), renew.Round(time.Millisecond))
	}
	return Passed(name, "%s of slack left to the %s cut-off (longest gap between renewals %s since the plugin started)",
		slack.Round(time.Millisecond), cutoff.Round(time.Millisecond), maxGap.Round(time.Millisecond))
}

// Clock thresholds: timelines across hosts read wrong past clockWarn;
// maintenance deadlines (wall-clock times every host compares) end early
// or late by the offset.
const (
	clockWarn = 500 * time.Millisecond
	clockFail = 5 * time.Second
)

// Clock judges this host's clock against etcd's: offset is this host's
// time minus etcd's, known to within ± uncertainty.
func Clock(offset, uncertainty time.Duration, err error) Check {
	const name = "clock"
	fix := "run NTP (chrony or systemd-timesyncd) on every host and on the etcd members"
	if err != nil {
		return Warned(name, "check that etcd's client URL answers HTTP GET /version from this host", "cannot compare this host's clock with etcd's: %v", err)
	}
	abs := offset
	if abs < 0 {
		abs = -abs
	}
	least := abs - uncertainty // the offset is at least this
	detail := fmt.Sprintf("%+.3fs off etcd's (±%.3fs)", offset.Seconds(), uncertainty.Seconds())
	switch {
	case least > clockFail:
		return Failed(name, fix, "%s: maintenance deadlines end that much early or late, and timelines across hosts mislead", detail)
	case least > clockWarn:
		return Warned(name, fix, "%s: timelines across hosts mislead by that much", detail)
	}
	return Passed(name, "%s", detail)
}

// Docker judges the local engine the agent starts relocated containers
// with: none configured is a host that serves volumes only.
func Docker(addr, version string, err error) Check {
	const name = "docker"
	switch {
	case addr == "":
		return Passed(name, "no engine configured (RELOCVOL_DOCKER_HOST empty): this host serves volumes but runs no relocated apps")
	case err != nil:
		return Failed(name, "check the docker mount of the plugin (the host's Docker socket) and RELOCVOL_DOCKER_HOST",
			"the engine at %s does not answer: %v: relocated apps cannot start here and self-fencing cannot stop containers", addr, err)
	}
	return Passed(name, "engine %s answers at %s", version, addr)
}
