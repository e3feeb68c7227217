#!/usr/bin/env bash
# scripts/plugin-rootfs.sh: makes the plugin's root filesystem in DEST from
# the commands relocvol runs, as the Dockerfile's last stage does: each
# command, every shared library it loads (ldd), the plugins libmultipath
# loads at run time, and the few files those commands read. Nothing else: no
# package manager, no Python or Perl, no locales. The plugin then installs
# in a fraction of the time (the VM lab measured the unpacking of a 230 MB
# Debian rootfs at over a minute on an emulated host; BENCHMARKS.md) and
# carries nothing it never runs.
#
#   scripts/plugin-rootfs.sh DEST COMMAND...    (inside the image build)
#
# The commands are the Tools lists of backends/lvm, backends/loop,
# fencing/scsi3 and internal/fsutil (the Dockerfile names them), plus sh
# for a look inside the plugin; the e2e test TestManagedPlugin finds every
# one of them in the built plugin and runs each.
set -euo pipefail

if (($# < 2)) || [[ $1 == -h || $1 == --help ]]; then
	sed -n '2,/^set /s/^# \{0,1\}//p' "$0" | sed '$d'
	exit 2
fi
dest=$1
shift
die() {
	echo "plugin-rootfs.sh: $*" >&2
	exit 1
}
[[ -e $dest ]] && die "$dest exists: give a new folder"
mkdir -p "$dest"

declare -A seen

# canon PATH: PATH with the symlinks of its folder resolved (/sbin/lvs is
# /usr/sbin/lvs on a merged /usr), the last element kept as it is.
canon() {
	local dir
	dir=$(readlink -f -- "$(dirname -- "$1")") || die "no folder for $1"
	printf '%s/%s\n' "${dir%/}" "$(basename -- "$1")"
}

# is_elf FILE: whether FILE is an ELF binary (a program or a library).
is_elf() {
	[[ $(head -c 4 -- "$1" | tr -d '\0') == $'\x7fELF' ]]
}

# libs FILE: the libraries the dynamic loader loads for FILE, the loader
# itself included (none for a static binary); a library it cannot find
# fails the build.
libs() {
	local out
	out=$(ldd -- "$1" 2>&1) || {
		[[ $out == *"not a dynamic executable"* || $out == *"statically linked"* ]] && return 0
		die "ldd $1: $out"
	}
	if grep -q 'not found' <<<"$out"; then
		die "$1 needs libraries that are not installed: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"
	fi
	awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' <<<"$out"
}

# add PATH: copies PATH into DEST at the same place; a symlink as a symlink,
# then what it points to; an ELF file with its libraries.
add() {
	local p target lib
	p=$(canon "$1")
	[[ -z ${seen[$p]:-} ]] || return 0
	seen[$p]=1
	[[ -e $p || -L $p ]] || die "$p does not exist"
	mkdir -p "$dest$(dirname -- "$p")"
	cp -a --no-dereference -- "$p" "$dest$p"
	if [[ -L $p ]]; then
		target=$(readlink -- "$p")
		[[ $target == /* ]] || target=$(dirname -- "$p")/$target
		add "$target"
		return 0
	fi
	if [[ -f $p ]] && is_elf "$p"; then
		while IFS= read -r lib; do
			add "$lib"
		done < <(libs "$p")
	fi
}

# The top-level links of a merged /usr (/bin -> usr/bin, /lib64 -> usr/lib64:
# the programs' ELF interpreter is /lib64/ld-linux-x86-64.so.2).
for d in /bin /sbin /lib /lib32 /lib64 /libx32; do
	if [[ -L $d ]]; then
		cp -a --no-dereference "$d" "$dest$d"
	fi
done

for c in "$@"; do
	p=$(command -v -- "$c") || die "command $c is not installed: add its package to the Dockerfile's install"
	add "$p"
done

# libmultipath loads its path checkers and prioritizers (dlopen) from its
# plugin folder when mpathpersist reads the paths of a map.
if command -v mpathpersist >/dev/null; then
	while IFS= read -r so; do
		add "$so"
	done < <(dpkg -L multipath-tools | grep -E '/multipath/lib[^/]*\.so$')
	# glibc loads libgcc_s (dlopen) to unwind a thread that ends with
	# pthread_exit, as mpathpersist's per-path threads do: without it
	# mpathpersist aborts ("libgcc_s.so.1 must be installed for
	# pthread_exit to work"), seen failing preempts in the VM lab.
	gcc_s=$(ldconfig -p | awk '$1 == "libgcc_s.so.1" && /x86-64|64bit/ { print $NF; exit }')
	[[ -n $gcc_s ]] || die "libgcc_s.so.1 not found (package libgcc-s1): mpathpersist needs it"
	add "$gcc_s"
fi

# Files the commands read: mke2fs's defaults, and the CA bundle for TLS to
# etcd. /etc/lvm, /etc/hosts and /etc/resolv.conf are the host's (mounts).
for f in /etc/mke2fs.conf /etc/ssl/certs/ca-certificates.crt; do
	[[ -e $f ]] && add "$f"
done
mkdir -p "$dest/etc" "$dest/root" "$dest/run" "$dest/tmp"
# multipath-tools reads the host's configuration, through the host-etc
# mount (the host's /etc, read-only): mpathpersist must see the
# reservation_key setting multipathd runs with (docs/production.md).
ln -s /host/etc/multipath.conf "$dest/etc/multipath.conf"
ln -s /host/etc/multipath "$dest/etc/multipath"
chmod 1777 "$dest/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$dest/etc/passwd"
printf 'root:x:0:\n' >"$dest/etc/group"
echo "plugin-rootfs.sh: $(find "$dest" -type f | wc -l) files, $(du -sh "$dest" | cut -f1) in $dest"
