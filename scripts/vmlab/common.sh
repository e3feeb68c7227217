# shellcheck shell=bash
# scripts/vmlab/common.sh: settings shared by build.sh and lab.sh.
#
# The VM lab proves what this machine's kernel cannot: real LVM (device-mapper)
# and real SCSI-3 persistent reservations. A "san" VM exports one LUN with LIO
# over iSCSI; "host" VMs (hostA, hostB) log into it with open-iscsi. All VMs
# boot one Debian kernel under qemu TCG from one base image built offline from
# Debian packages (build.sh), each on its own qcow2 overlay (lab.sh).
#
# Knobs (environment):
#   RELOCVOL_VMLAB_CACHE   images, kernel, ssh key (/var/cache/relocvol-vmlab)
#   RELOCVOL_VMLAB_RUN     a lab's disks, pids, logs, ports (/run/relocvol-vmlab)
#   RELOCVOL_VMLAB_HOSTS   host VM names ("hostA hostB")
#   RELOCVOL_VMLAB_MEM     MiB of RAM per VM (640)
#   RELOCVOL_VMLAB_ACCEL   qemu -accel (tcg: KVM hangs on this project's machines)
#   RELOCVOL_VMLAB_PORT_BASE  first of the 127.0.0.1 ports (random free base)
#   RELOCVOL_VMLAB_LUN_SIZE   size of the shared LUN (2G)
#   RELOCVOL_VMLAB_EXTRA_PACKAGES  more Debian packages for the VM image (comma-separated)
#   RELOCVOL_VMLAB_BOOT_TIMEOUT    seconds a VM has to answer on ssh (and see the LUN) (240)
#   RELOCVOL_VMLAB_DOCKER  on: host VMs start dockerd at boot, after the LUN
#                          (off; the image has docker.io either way)
#   RELOCVOL_VMLAB_PATHS   SAN links (portals) per host VM (1); with 2 each host
#                          logs in through both and reaches the LUN through a
#                          dm-multipath map, as on a real SAN

# The settings below are for the scripts that source this file.
# shellcheck disable=SC2034
true
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

VMLAB_DIR=$RELOCVOL_REPO/scripts/vmlab
VMLAB_CACHE=${RELOCVOL_VMLAB_CACHE:-/var/cache/relocvol-vmlab}
VMLAB_RUN=${RELOCVOL_VMLAB_RUN:-/run/relocvol-vmlab}
VMLAB_HOSTS=${RELOCVOL_VMLAB_HOSTS:-hostA hostB}
VMLAB_MEM=${RELOCVOL_VMLAB_MEM:-640}
VMLAB_ACCEL=${RELOCVOL_VMLAB_ACCEL:-tcg}
VMLAB_LUN_SIZE=${RELOCVOL_VMLAB_LUN_SIZE:-2G}
VMLAB_BOOT_TIMEOUT=${RELOCVOL_VMLAB_BOOT_TIMEOUT:-240}
VMLAB_DOCKER=${RELOCVOL_VMLAB_DOCKER:-off}
VMLAB_PATHS=${RELOCVOL_VMLAB_PATHS:-1}

# What the VMs run. udev gives /dev/disk/by-id and LVM its usual setup;
# docker.io (Debian's Docker 20.10) runs the managed plugin on host VMs;
# multipath-tools (multipathd) holds the LUN's paths in a lab of 2 paths.
VMLAB_PACKAGES="open-iscsi,lvm2,sg3-utils,e2fsprogs,xfsprogs,openssh-server,kmod,iproute2,util-linux,procps,udev,iputils-ping,docker.io,multipath-tools"
if [[ -n ${RELOCVOL_VMLAB_EXTRA_PACKAGES:-} ]]; then
	VMLAB_PACKAGES+=",$RELOCVOL_VMLAB_EXTRA_PACKAGES"
fi

# What build.sh needs on this machine (test.sh installs them up front).
VMLAB_BUILD_PACKAGES=(qemu-system-x86 qemu-utils debootstrap busybox-static cpio openssh-client
	e2fsprogs kmod ca-certificates gzip)

# The iSCSI names: one target on the san VM, one initiator per host VM.
VMLAB_TARGET_IQN=iqn.2024-01.io.relocvol:san.lun0
VMLAB_INITIATOR_PREFIX=iqn.2024-01.io.relocvol:
# The LUN's unit serial (VPD page 0x80), fixed so that the LUN keeps its
# identity across san reboots and labs. LIO makes the NAA WWN (VPD page 0x83,
# /dev/disk/by-id/wwn-0x6001405...) of its hex digits: hex digits only.
VMLAB_LUN_SERIAL=5a0010000001

# Where build.sh puts what lab.sh boots.
VMLAB_KERNEL=$VMLAB_CACHE/vmlinuz
VMLAB_INITRD=$VMLAB_CACHE/initrd.img
VMLAB_BASE=$VMLAB_CACHE/base.img
VMLAB_KEY=$VMLAB_CACHE/ssh/id_ed25519
VMLAB_STAMP=$VMLAB_CACHE/base.stamp

# vmlab_inputs_hash: what the base image is made from; a change rebuilds it.
vmlab_inputs_hash() {
	{
		printf '%s\n' "$VMLAB_PACKAGES"
		cat "$VMLAB_DIR/common.sh" "$VMLAB_DIR/build.sh" "$VMLAB_DIR"/guest/*
	} | sha256sum | cut -d' ' -f1
}

# vmlab_ssh_opts: ssh/scp options for the lab's VMs (throwaway host keys).
vmlab_ssh_opts() {
	printf '%s\n' -i "$VMLAB_KEY" -o BatchMode=yes -o StrictHostKeyChecking=no \
		-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5 \
		-o ServerAliveInterval=5 -o ServerAliveCountMax=3
}
