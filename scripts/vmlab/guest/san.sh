#!/bin/bash
# Role script of the san VM (installed as /usr/local/sbin/relocvol-san):
# exports its second disk (/dev/vdb) as one LUN with LIO over iSCSI, through
# configfs (no targetcli), to the initiators of relocvol.hosts.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/relocvol-vmlab.conf
# shellcheck source=/dev/null
. /run/relocvol/env
log() { echo "relocvol-san[$(cut -d' ' -f1 /proc/uptime)]: $*"; }

dev=/dev/vdb
for _ in $(seq 300); do
	[[ -b $dev ]] && break
	sleep 0.1
done
[[ -b $dev ]] || {
	log "no $dev: no LUN to export"
	exit 1
}
# LIO's db_root (/etc/target on 6.1; /var/target on older kernels) must exist
# when target_core_mod loads ("db_root: cannot open: /etc/target"), and its
# pr/ folder too: every PR OUT rewrites (or clears) $db_root/pr/aptpl_<serial>,
# and without the folder PR OUT commands take effect but fail with
# NOT READY (sg_persist: "Device not ready", exit 2).
mkdir -p /etc/target/pr /etc/target/alua /var/target/pr /var/target/alua
modprobe -a configfs target_core_mod target_core_file iscsi_target_mod
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config

T=/sys/kernel/config/target
so=$T/core/fileio_0/lun0
mkdir -p "$so"
echo "fd_dev_name=$dev,fd_dev_size=$(blockdev --getsize64 "$dev")" >"$so/control"
# The unit serial (VPD 0x80) also makes the NAA WWN (VPD 0x83): fixed, so the
# LUN keeps its identity across reboots of the san VM.
echo "$VMLAB_LUN_SERIAL" >"$so/wwn/vpd_unit_serial"
echo 1 >"$so/enable"

tpg=$T/iscsi/$VMLAB_TARGET_IQN/tpgt_1
mkdir -p "$tpg/lun/lun_0"
ln -s "$so" "$tpg/lun/lun_0/lun0"
mkdir -p "$tpg/np/0.0.0.0:3260"
echo 0 >"$tpg/attrib/authentication"
echo 0 >"$tpg/attrib/generate_node_acls"
echo 0 >"$tpg/attrib/demo_mode_write_protect"
IFS=, read -r -a hs <<<"$HOSTS"
for h in "${hs[@]}"; do
	# iSCSI names are case-insensitive and go over the wire in lower case.
	acl=$tpg/acls/$VMLAB_INITIATOR_PREFIX${h,,}
	mkdir -p "$acl/lun_0"
	ln -s "$tpg/lun/lun_0" "$acl/lun_0/lun0"
	log "initiator $VMLAB_INITIATOR_PREFIX${h,,} may log in"
done
echo 1 >"$tpg/enable"
log "exporting $dev ($(blockdev --getsize64 "$dev") bytes) as $VMLAB_TARGET_IQN on port 3260"
touch /run/relocvol/ready
