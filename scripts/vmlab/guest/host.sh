#!/bin/bash
# Role script of a host VM (installed as /usr/local/sbin/relocvol-host): logs
# into the san VM's iSCSI target with open-iscsi through each of its SAN
# links, at every boot, and writes the LUN's device path to
# /run/relocvol/lun once the disk shows up: with one link the disk, with
# more the dm-multipath map over its paths (multipathd configured as
# docs/production.md tells operators); then, with relocvol.docker=on, starts
# Docker (after the SAN, as a host's docker.service is ordered after iSCSI
# and multipathd), which enables its plugins.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/relocvol-vmlab.conf
# shellcheck source=/dev/null
. /run/relocvol/env
log() { echo "relocvol-host[$(cut -d' ' -f1 /proc/uptime)]: $*"; }

modprobe -a iscsi_tcp sd_mod sg dm_mod
echo "InitiatorName=$VMLAB_INITIATOR_PREFIX${NAME,,}" >/etc/iscsi/initiatorname.iscsi
/usr/sbin/iscsid

mapfile -t sans </run/relocvol/san-addrs
((${#sans[@]} > 0)) || {
	log "no SAN link"
	exit 1
}
multipath=0
((${#sans[@]} > 1)) && multipath=1
if ((multipath)); then
	# Before any path shows up, so that udev hands the paths to multipath.
	# The configuration docs/production.md asks for: the key from
	# relocvol's registration, kept in /etc/multipath/prkeys, so that
	# multipathd registers a path that comes back or is added later.
	modprobe -a dm_multipath dm_round_robin dm_service_time
	mkdir -p /etc/multipath
	cat >/etc/multipath.conf <<'CONF'
defaults {
	user_friendly_names yes
	find_multipaths no
	reservation_key file
}
blacklist {
	devnode "^vd[a-z]"
}
CONF
	/sbin/multipathd
fi

for san in "${sans[@]}"; do
	portal=$san:3260
	if ! iscsiadm -m node -T "$VMLAB_TARGET_IQN" -p "$portal" >/dev/null 2>&1; then
		iscsiadm -m node -T "$VMLAB_TARGET_IQN" -p "$portal" -o new >/dev/null
	fi
	if ((multipath)); then
		# As with dm-multipath on a real SAN: a path that stops
		# answering fails within seconds (noop-outs) and its I/O goes to
		# the other path, instead of the session queueing for 2 minutes.
		for kv in node.session.timeo.replacement_timeout=5 node.conn[0].timeo.noop_out_interval=2 node.conn[0].timeo.noop_out_timeout=2; do
			iscsiadm -m node -T "$VMLAB_TARGET_IQN" -p "$portal" -o update -n "${kv%%=*}" -v "${kv#*=}"
		done
	fi
done
# The san VM may still be booting: retry for up to 5 minutes.
for san in "${sans[@]}"; do
	portal=$san:3260
	deadline=$((SECONDS + 300))
	until iscsiadm -m node -T "$VMLAB_TARGET_IQN" -p "$portal" --login; do
		if ((SECONDS >= deadline)); then
			log "cannot log into $VMLAB_TARGET_IQN at $portal"
			exit 1
		fi
		sleep 2
	done
	log "logged into $VMLAB_TARGET_IQN at $portal"
done

dev=$(relocvol-lun 0) || exit 1
echo "$dev" >/run/relocvol/lun
relocvol-lun --paths 0 >/run/relocvol/paths
log "LUN is $dev (paths: $(tr '\n' ' ' </run/relocvol/paths))"
case ${DOCKER:-off} in
on) relocvol-docker start ;;
hold) log "Docker held: start it with relocvol-docker start" ;;
esac
touch /run/relocvol/ready
