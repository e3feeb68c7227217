#!/bin/bash
# Prints the device of LUN N of the san VM's target on this host VM
# (installed as /usr/local/sbin/relocvol-lun), once it is there (up to 60 s):
# the disk with one SAN link, the dm-multipath map over every link's disk
# with more (all of them active in it).
#
#   relocvol-lun N           the device (/dev/sdX or /dev/mapper/mpathX)
#   relocvol-lun --paths N   its path disks, one per line (/dev/sdX)
set -euo pipefail
# shellcheck source=/dev/null
. /etc/relocvol-vmlab.conf
paths=0
if [[ ${1:-} == --paths ]]; then
	paths=1
	shift
fi
n=${1:?usage: relocvol-lun [--paths] N}
mapfile -t sans </run/relocvol/san-addrs

# disks: the disk of LUN n behind each portal (by-path names the portal,
# the target and the LUN).
disks() {
	local san link
	for san in "${sans[@]}"; do
		link=/dev/disk/by-path/ip-$san:3260-iscsi-$VMLAB_TARGET_IQN-lun-$n
		[[ -b $link ]] || return 1
		readlink -f "$link"
	done
}

deadline=$((SECONDS + 60))
until out=$(disks) && mapfile -t ds <<<"$out" && ((${#ds[@]} == ${#sans[@]})); do
	if ((SECONDS >= deadline)); then
		echo "relocvol-lun: LUN $n is not seen through every portal (${sans[*]})" >&2
		exit 1
	fi
	udevadm settle --timeout=5 >/dev/null 2>&1 || true
	sleep 0.5
done
if ((paths)); then
	printf '%s\n' "${ds[@]}"
	exit 0
fi
if ((${#ds[@]} == 1)); then
	echo "${ds[0]}"
	exit 0
fi
# The map that holds these disks, once every one is an active path of it.
want=$(printf '%s\n' "${ds[@]##*/}" | sort | tr '\n' ' ')
until {
	map=$(multipathd show paths raw format '%d %m %t' | awk -v d="${ds[0]##*/}" '$1 == d { print $2 }')
	[[ -n $map && $map != '[orphan]' ]] &&
		[[ $(multipathd show paths raw format '%d %m %t' | awk -v m="$map" '$2 == m && $3 == "active" { print $1 }' | sort | tr '\n' ' ') == "$want" ]] &&
		[[ -b /dev/mapper/$map ]]
}; do
	if ((SECONDS >= deadline)); then
		echo "relocvol-lun: no multipath map holds ${want}with every path active:" >&2
		multipathd show topology >&2 || true
		exit 1
	fi
	multipathd add path "${ds[0]##*/}" >/dev/null 2>&1 || true
	udevadm settle --timeout=5 >/dev/null 2>&1 || true
	sleep 0.5
done
echo "/dev/mapper/$map"
