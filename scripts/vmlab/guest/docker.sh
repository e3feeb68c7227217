#!/bin/bash
# Starts Docker on a host VM (installed as /usr/local/sbin/relocvol-docker),
# as docker.service does on a Debian host: dockerd (which starts its own
# containerd and then enables its managed plugins), logging to
# /var/log/dockerd.log. /etc/docker/daemon.json (written by build.sh) turns
# iptables off and lets the physical machine's registry (10.0.2.2) in over
# plain HTTP.
#
#   relocvol-docker start    start dockerd and wait until it answers
set -euo pipefail
log() { echo "relocvol-docker[$(cut -d' ' -f1 /proc/uptime)]: $*"; }

[[ ${1:-} == start ]] || {
	echo "usage: $0 start" >&2
	exit 2
}
if docker info >/dev/null 2>&1; then
	exit 0
fi
modprobe -a overlay bridge veth br_netfilter
# A power loss leaves the pid files of the last boot behind.
rm -f /run/docker.pid /run/docker/containerd/containerd.pid
echo "---- boot $(date -u +%FT%TZ) ----" >>/var/log/dockerd.log
setsid dockerd >>/var/log/dockerd.log 2>&1 </dev/null &
log "dockerd started (pid $!)"
# TCG is slow: dockerd enables its plugins (each waits for its socket)
# before it answers.
deadline=$((SECONDS + 240))
until docker info >/dev/null 2>&1; do
	if ! kill -0 $! 2>/dev/null || ((SECONDS >= deadline)); then
		log "dockerd does not answer; the end of /var/log/dockerd.log:"
		tail -n 30 /var/log/dockerd.log
		exit 1
	fi
	sleep 0.5
done
log "dockerd answers"
