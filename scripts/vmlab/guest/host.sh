#!/bin/bash
# Role script of a host VM (installed as /usr/local/sbin/relocvol-host): logs
# into the san VM's iSCSI target with open-iscsi, at every boot, and writes
# the LUN's device path to /run/relocvol/lun once the disk shows up; then,
# with relocvol.docker=on, starts Docker (after the SAN, as a host's
# docker.service is ordered after iSCSI), which enables its plugins.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/relocvol-vmlab.conf
# shellcheck source=/dev/null
. /run/relocvol/env
log() { echo "relocvol-host[$(cut -d' ' -f1 /proc/uptime)]: $*"; }

modprobe -a iscsi_tcp sd_mod sg dm_mod
echo "InitiatorName=$VMLAB_INITIATOR_PREFIX${NAME,,}" >/etc/iscsi/initiatorname.iscsi
/usr/sbin/iscsid

san=$(head -n1 /run/relocvol/san-addrs 2>/dev/null || true)
[[ -n $san ]] || {
	log "no SAN link"
	exit 1
}
portal=$san:3260
if ! iscsiadm -m node -T "$VMLAB_TARGET_IQN" -p "$portal" >/dev/null 2>&1; then
	iscsiadm -m node -T "$VMLAB_TARGET_IQN" -p "$portal" -o new >/dev/null
fi
# The san VM may still be booting: retry for up to 5 minutes.
deadline=$((SECONDS + 300))
until iscsiadm -m node -T "$VMLAB_TARGET_IQN" -p "$portal" --login; do
	if ((SECONDS >= deadline)); then
		log "cannot log into $VMLAB_TARGET_IQN at $portal"
		exit 1
	fi
	sleep 2
done
log "logged into $VMLAB_TARGET_IQN at $portal"

# by-path names the LUN by portal, target and LUN number: exactly ours.
link=/dev/disk/by-path/ip-$portal-iscsi-$VMLAB_TARGET_IQN-lun-0
deadline=$((SECONDS + 60))
until [[ -b $link ]]; do
	if ((SECONDS >= deadline)); then
		log "logged in, but no $link"
		exit 1
	fi
	udevadm settle --timeout=5 || true
	sleep 0.5
done
dev=$(readlink -f "$link")
echo "$dev" >/run/relocvol/lun
log "LUN is $dev"
case ${DOCKER:-off} in
on) relocvol-docker start ;;
hold) log "Docker held: start it with relocvol-docker start" ;;
esac
touch /run/relocvol/ready
