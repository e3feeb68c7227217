#!/bin/sh
# scripts/node/entrypoint.sh: boots a docker-in-docker "node" of the e2e
# cluster (e2e/cluster): the image relocvol-node:dev (scripts/lib.sh
# ensure_node_image) runs it under tini as /usr/local/sbin/relocvol-node-init.
#
# It runs at every boot: the first `docker run` and every `docker start` after
# a `docker kill` (a power loss), so it starts from whatever a crash left.
# dockerd logs to /var/log/dockerd.log; the node lives as long as dockerd.
set -eu

log() { echo "[relocvol-node $(hostname) $(date +%H:%M:%S)] $*"; }

# A fresh /run, as a real boot gives: a killed node keeps its filesystem, and
# stale pid files (/run/docker.pid, /run/docker/containerd/*.pid) make dockerd
# and its containerd refuse to start. Removed explicitly too, should /run
# already be a tmpfs (then it is fresh anyway).
if [ "$(stat -fc %T /run)" != tmpfs ]; then
	mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
fi
rm -f /run/docker.pid /run/docker/containerd/*.pid

# cgroup v2 for the nested engine: Docker gives a non-privileged container a
# read-only v1 view, which the nested runc cannot use.
if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then
	mount -t cgroup2 none /sys/fs/cgroup
fi

# Shared propagation: the managed plugin's propagatedMount (its volume mounts)
# must reach the containers that use its volumes.
mount --make-rshared /

# The plugin's mount sources (config.json) that the tests leave at their
# defaults: "state", the LVM folders and /run/udev. Docker refuses to start a plugin
# whose mount source is missing; those under /run are made at every boot,
# as lvm2's tmpfiles (or setup.sh's) do on a real host.
mkdir -p /var/lib/relocvol /var/log /etc/lvm /run/lvm /run/lock/lvm /run/udev

log "starting dockerd (log: /var/log/dockerd.log)"
echo "---- boot $(date -u +%Y-%m-%dT%H:%M:%SZ) ----" >>/var/log/dockerd.log
exec dockerd --iptables=false "$@" >>/var/log/dockerd.log 2>&1
