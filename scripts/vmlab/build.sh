#!/usr/bin/env bash
# scripts/vmlab/build.sh: builds the VM lab's kernel, initramfs and base
# image offline from Debian packages, into $RELOCVOL_VMLAB_CACHE
# (/var/cache/relocvol-vmlab). Run as root; lab.sh start runs it too.
#
#   sudo scripts/vmlab/build.sh [--force]
#
# Each step is cached: the kernel by its version, the debootstrap tree by its
# package list, the base image by a hash of this folder's scripts, the
# package list and the kernel version (base.stamp). A cold build takes a few
# minutes (downloads, debootstrap, mkfs); a warm one a second.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

force=0
[[ ${1:-} == --force ]] && force=1

require_root
mkdir -p "$VMLAB_CACHE"
# Labs of several test packages may build at once: one at a time.
exec 9>"$VMLAB_CACHE/.build.lock"
flock 9
ensure_packages "${VMLAB_BUILD_PACKAGES[@]}"

# kernel_version: the ABI version linux-image-amd64 depends on (6.1.0-N-amd64).
kernel_version() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { sub(/^linux-image-/, "", $2); print $2; exit }'
}
kver=$(kernel_version)
if [[ -z $kver ]]; then
	run_logged "apt-get update" apt-get update -q || true
	kver=$(kernel_version)
fi
if [[ -z $kver ]]; then
	# Offline with no apt lists: a kernel fetched earlier will do.
	kver=$(find "$VMLAB_CACHE/kernel" -mindepth 2 -maxdepth 2 -name .complete -printf '%h\n' 2>/dev/null |
		xargs -r -n1 basename | sort -V | tail -n1)
fi
[[ -n $kver ]] || die "cannot tell the Debian kernel version (apt-cache depends linux-image-amd64): check apt sources"

hash=$(printf '%s\n%s\n' "$kver" "$(vmlab_inputs_hash)" | sha256sum | cut -d' ' -f1)
if ((force == 0)) && [[ -f $VMLAB_STAMP && $(cat "$VMLAB_STAMP") == "$hash" &&
	-f $VMLAB_BASE && -f $VMLAB_KERNEL && -f $VMLAB_INITRD && -f $VMLAB_KEY ]]; then
	log "VM lab images are up to date ($VMLAB_CACHE, kernel $kver)"
	exit 0
fi
start=$SECONDS

# --- the kernel: Debian's package, unpacked, with modules.dep made here ---
kdir=$VMLAB_CACHE/kernel/$kver
if [[ ! -f $kdir/.complete ]]; then
	log "fetching kernel linux-image-$kver"
	rm -rf "$kdir"
	mkdir -p "$kdir/deb"
	(cd "$kdir/deb" && run_logged "apt-get download linux-image-$kver" apt-get download "linux-image-$kver") ||
		die "cannot download linux-image-$kver: check the network and apt sources"
	dpkg -x "$kdir"/deb/*.deb "$kdir/x"
	depmod -b "$kdir/x" "$kver"
	rm -rf "$kdir/deb"
	touch "$kdir/.complete"
fi
kx=$kdir/x
[[ -d $kx/lib/modules/$kver ]] || die "no modules in $kx/lib/modules/$kver"
cp "$kx/boot/vmlinuz-$kver" "$VMLAB_KERNEL.tmp"
mv "$VMLAB_KERNEL.tmp" "$VMLAB_KERNEL"

# --- the ssh key the lab logs in with ---
if [[ ! -f $VMLAB_KEY ]]; then
	mkdir -p "$(dirname "$VMLAB_KEY")"
	ssh-keygen -q -t ed25519 -N '' -C relocvol-vmlab -f "$VMLAB_KEY"
fi

# --- the initramfs: busybox and what mounting an ext4 virtio root needs ---
log "making the initramfs"
ird=$VMLAB_CACHE/.initrd.tmp
rm -rf "$ird"
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,lib/modules}
cp /bin/busybox "$ird/bin/busybox"
ln -s busybox "$ird/bin/sh"
install -m 0755 "$VMLAB_DIR/guest/initramfs-init" "$ird/init"
# modprobe --show-depends lists each module after what it needs: insmod in
# that order (the first occurrence of each).
for m in virtio_pci virtio_blk crc32c_generic ext4; do
	modprobe -d "$kx" -S "$kver" --show-depends "$m"
done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' >"$ird/order.full"
while read -r ko; do
	cp "$ko" "$ird/lib/modules/"
	basename "$ko" >>"$ird/lib/modules/order"
done <"$ird/order.full"
rm "$ird/order.full"
(cd "$ird" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"$VMLAB_INITRD.tmp"
mv "$VMLAB_INITRD.tmp" "$VMLAB_INITRD"
rm -rf "$ird"

# --- the root filesystem: one debootstrap tree for every role ---
tree=$(RELOCVOL_CACHE=$VMLAB_CACHE debootstrap_tree vm-tree "$VMLAB_PACKAGES")
stage=$VMLAB_CACHE/.stage
log "staging the root filesystem"
safe_rm_tree "$stage"
cp -a "$tree" "$stage"
rm -f "$stage/.relocvol-complete"
mkdir -p "$stage/lib/modules"
# All modules but those of hardware a qemu VM lacks (a third of the size).
tar -C "$kx/lib/modules" \
	--exclude="$kver/kernel/drivers/gpu" --exclude="$kver/kernel/drivers/media" \
	--exclude="$kver/kernel/drivers/infiniband" --exclude="$kver/kernel/drivers/net/wireless" \
	--exclude="$kver/kernel/drivers/net/ethernet" --exclude="$kver/kernel/drivers/iio" \
	--exclude="$kver/kernel/drivers/staging" --exclude="$kver/kernel/drivers/comedi" \
	--exclude="$kver/kernel/drivers/bluetooth" --exclude="$kver/kernel/drivers/isdn" \
	--exclude="$kver/kernel/drivers/mtd" --exclude="$kver/kernel/drivers/thunderbolt" \
	--exclude="$kver/kernel/sound" --exclude="$kver/kernel/net/bluetooth" \
	--exclude="$kver/kernel/net/mac80211" --exclude="$kver/kernel/net/wireless" \
	-c "$kver" | tar -C "$stage/lib/modules" -x
depmod -b "$stage" "$kver"

install -m 0755 "$VMLAB_DIR/guest/init" "$stage/usr/local/sbin/relocvol-init"
install -m 0755 "$VMLAB_DIR/guest/san.sh" "$stage/usr/local/sbin/relocvol-san"
install -m 0755 "$VMLAB_DIR/guest/host.sh" "$stage/usr/local/sbin/relocvol-host"
install -m 0755 "$VMLAB_DIR/guest/docker.sh" "$stage/usr/local/sbin/relocvol-docker"
install -m 0755 "$VMLAB_DIR/guest/lun.sh" "$stage/usr/local/sbin/relocvol-lun"
# Docker as on a host of the lab's network: no iptables (nothing to NAT),
# the registry on the physical machine (10.0.2.2) over plain HTTP; and the
# host folders the relocvol plugin's mounts need.
install -d "$stage/etc/docker" "$stage/var/lib/relocvol/san"
cat >"$stage/etc/docker/daemon.json" <<'JSON'
{
  "iptables": false,
  "insecure-registries": ["10.0.2.2/32"]
}
JSON
ln -sf /usr/local/sbin/relocvol-init "$stage/sbin/init"
cat >"$stage/etc/relocvol-vmlab.conf" <<EOF
# Written by scripts/vmlab/build.sh; read by the guest scripts.
VMLAB_TARGET_IQN=$VMLAB_TARGET_IQN
VMLAB_INITIATOR_PREFIX=$VMLAB_INITIATOR_PREFIX
VMLAB_LUN_SERIAL=$VMLAB_LUN_SERIAL
EOF
install -d -m 0700 "$stage/root/.ssh"
install -m 0600 "$VMLAB_KEY.pub" "$stage/root/.ssh/authorized_keys"
cat >"$stage/etc/ssh/sshd_config.d/relocvol.conf" <<'EOF'
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
MaxStartups 64
MaxSessions 64
EOF
echo 'nameserver 10.0.2.3' >"$stage/etc/resolv.conf"
# iscsiadm starts iscsid itself if it is not running (there is no systemd).
sed -i 's|^iscsid.startup = .*|iscsid.startup = /usr/sbin/iscsid|' "$stage/etc/iscsi/iscsid.conf"
# Each host's initiator name is written at boot from relocvol.name.
rm -f "$stage/etc/iscsi/initiatorname.iscsi"
printf '%s\n' 'proc /proc proc defaults 0 0' >"$stage/etc/fstab"
rm -rf "$stage"/var/cache/apt/archives/*.deb "$stage"/var/lib/apt/lists/* "$stage"/usr/share/man/* \
	"$stage"/usr/share/doc/* "$stage"/usr/share/locale/*

log "packing the base image (mkfs.ext4 -d)"
rm -f "$VMLAB_BASE.tmp"
run_logged "mkfs.ext4 -d" mkfs.ext4 -q -F -L relocvol-root -d "$stage" "$VMLAB_BASE.tmp" 4G ||
	die "mkfs.ext4 -d failed"
mv "$VMLAB_BASE.tmp" "$VMLAB_BASE"
safe_rm_tree "$stage"
printf '%s\n' "$hash" >"$VMLAB_STAMP"
log "VM lab images ready in $((SECONDS - start))s: $VMLAB_BASE ($(du -h "$VMLAB_BASE" | cut -f1) used), kernel $kver"
