# shellcheck shell=bash
# scripts/lib.sh: shared helpers of setup.sh, build-plugin.sh and test.sh
# (and of the e2e tests, which may source it too): logging, packages and
# the host's folders here; the Go toolchain (lib/go.sh), the Docker engine
# (lib/docker.sh) and the images (lib/images.sh) in the files it sources.
#
# Source it from a bash script running with `set -euo pipefail`:
#     . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Every function logs to stderr with a "[relocvol]" prefix and either
# succeeds or exits through die() with a message that says what to do.
#
# Knobs (environment):
#   RELOCVOL_REPO              repo root (default: this file's parent folder)
#   GO_IMAGE, BASE_IMAGE       image names the Dockerfile builds FROM
#   RELOCVOL_CACHE             cache of debootstrap trees (/var/cache/relocvol)
#   RELOCVOL_GO_ROOT           where downloaded Go toolchains go (/usr/local/relocvol-go)
#   RELOCVOL_FORCE_GO_DOWNLOAD=1  ignore any installed go and use/download one there
#   RELOCVOL_DEBIAN_MIRROR     mirror for debootstrap (default: the one apt uses)
#   RELOCVOL_DOCKERD_LOG       log of a dockerd started here (/var/log/relocvol-dockerd.log)
#   RELOCVOL_DOCKERD_ARGS      extra dockerd arguments (e.g. --iptables=false in a nested node)
#   RELOCVOL_HOST_DIRS         the plugin's bind-mount sources ensure_host_dirs makes
#   RELOCVOL_TMPFILES          where setup.sh writes the tmpfiles.d entry (/etc/tmpfiles.d/relocvol.conf)
#   GOPROXY                    also where the Go toolchain is downloaded from

RELOCVOL_REPO=${RELOCVOL_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
GO_IMAGE=${GO_IMAGE:-golang:1.26-bookworm}
BASE_IMAGE=${BASE_IMAGE:-debian:bookworm-slim}
RELOCVOL_CACHE=${RELOCVOL_CACHE:-/var/cache/relocvol}
RELOCVOL_GO_ROOT=${RELOCVOL_GO_ROOT:-/usr/local/relocvol-go}
RELOCVOL_DOCKERD_LOG=${RELOCVOL_DOCKERD_LOG:-/var/log/relocvol-dockerd.log}
# Packages of the plugin's runtime image: what the backends and fencing exec
# (the Tools lists of backends/loop, backends/lvm, fencing/scsi3 and
# internal/fsutil; the e2e test TestManagedPlugin checks the rootfs has them).
RELOCVOL_BASE_PACKAGES=${RELOCVOL_BASE_PACKAGES:-util-linux,mount,e2fsprogs,xfsprogs,lvm2,sg3-utils,multipath-tools,ca-certificates}
# The label of a BASE_IMAGE made here: the hash of its recipe.
RELOCVOL_BASE_LABEL=io.relocvol.base-recipe
# Host folders the plugin's config.json bind-mounts: Docker refuses to start
# a plugin whose mount source is missing. The LVM ones are shared with the
# host's LVM (docs/production.md: "The LVM folders are the host's"); lvm2
# makes them where it is installed (udev makes /run/udev), and the plugin
# needs them even with the loop backend.
RELOCVOL_HOST_DIRS=${RELOCVOL_HOST_DIRS:-/var/lib/relocvol /var/lib/relocvol/san /etc/lvm /run/lvm /run/lock/lvm /run/udev}
# Written into images imported here, so that they can be told from real ones.
RELOCVOL_IMPORT_MESSAGE="relocvol offline import"
: "${HOME:=/root}"
export HOME RELOCVOL_REPO

# shellcheck source-path=SCRIPTDIR source=lib/go.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/go.sh"
# shellcheck source-path=SCRIPTDIR source=lib/docker.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/docker.sh"
# shellcheck source-path=SCRIPTDIR source=lib/images.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/images.sh"

# reliability_rows prints the rows of RELIABILITY.md's table that the fault
# tests logged in the go test -v output file $1 (testenv.Tally).
reliability_rows() { sed -n 's/^ *[a-z_]*\.go:[0-9]*: RELIABILITY //p' "$1"; }

# failure_tails prints, for each test of the go test -v output file $1 that
# failed with no failing subtest of its own, the last 40 lines of its own
# output (lines cut at 400 characters): where its failure was reported. A
# failing e2e test's clean-up dumps VM consoles and daemon logs after that,
# and more tests run after it; this brings the reason to the end of the log.
failure_tails() {
	awk '
	/^=== (RUN|NAME|CONT) / { cur = $3; next }
	/^=== / { cur = ""; next }
	/^ *--- (FAIL|PASS|SKIP): / {
		if ($2 == "FAIL:" && !($3 in failed)) { failed[$3] = 1; order[++nf] = $3 }
		cur = ""; next
	}
	cur != "" { n[cur]++; text[cur, n[cur]] = substr($0, 1, 400) }
	END {
		for (i = 1; i <= nf; i++) {
			t = order[i]; leaf = 1
			for (u in failed) if (index(u, t "/") == 1) leaf = 0
			if (!leaf) continue
			print "---- the end of " t "'"'"'s output ----"
			for (j = (n[t] > 40 ? n[t] - 39 : 1); j <= n[t]; j++) print text[t, j]
		}
	}' "$1"
}

log() { printf '[relocvol %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

require_root() {
	[[ $(id -u) -eq 0 ]] || die "run this as root: it installs packages, starts dockerd and uses loop devices"
}

# have CMD: whether CMD is on PATH.
have() { command -v "$1" >/dev/null 2>&1; }

# run_logged DESC CMD...: runs CMD with its output in a temporary file, shown
# (its tail) only when CMD fails.
run_logged() {
	local desc=$1 out rc=0
	shift
	out=$(mktemp)
	"$@" >"$out" 2>&1 || rc=$?
	if ((rc != 0)); then
		log "$desc failed (exit $rc); last lines of its output:"
		tail -n 40 "$out" >&2
		rm -f "$out"
		return "$rc"
	fi
	rm -f "$out"
}

# ensure_packages PKG...: installs the Debian packages that are not installed
# yet; `apt-get update` runs at most once per script.
ensure_packages() {
	local missing=() p
	for p in "$@"; do
		[[ " ${missing[*]} " == *" $p "* ]] && continue
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	((${#missing[@]} > 0)) || return 0
	have apt-get || die "missing packages ${missing[*]} and no apt-get: install them by hand"
	log "installing packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if [[ -z ${_RELOCVOL_APT_UPDATED:-} ]]; then
		run_logged "apt-get update" apt-get update -q || die "apt-get update failed: check the network and /etc/apt/sources.list*"
		_RELOCVOL_APT_UPDATED=1
	fi
	run_logged "apt-get install ${missing[*]}" apt-get install -y -q --no-install-recommends "${missing[@]}" ||
		die "could not install ${missing[*]}"
}

# run_dir_mode DIR: the mode the owner of a folder under /run gives it:
# lvm2's tmpfiles make its folders 0700; udev's is readable by all (udev
# queries of non-root users read it).
run_dir_mode() {
	case $1 in
	/run/udev) echo 0755 ;;
	*) echo 0700 ;;
	esac
}

# ensure_host_dirs: the bind-mount sources of config.json. Those under /run
# are made with their owners' modes (run_dir_mode).
ensure_host_dirs() {
	local d
	for d in $RELOCVOL_HOST_DIRS; do
		[[ -d $d ]] && continue
		mkdir -p "$(dirname "$d")"
		case $d in
		/run/*) mkdir -m "$(run_dir_mode "$d")" "$d" ;;
		*) mkdir "$d" ;;
		esac
	done
}

RELOCVOL_TMPFILES=${RELOCVOL_TMPFILES:-/etc/tmpfiles.d/relocvol.conf}

# ensure_boot_dirs: a systemd-tmpfiles file that makes the bind-mount sources
# under /run again at every boot (/run is a tmpfs: empty after a reboot, and
# Docker then refuses to start the plugin). Where lvm2 is installed its own
# tmpfiles make the LVM ones too; the duplicate line is harmless.
ensure_boot_dirs() {
	local d
	mkdir -p "$(dirname "$RELOCVOL_TMPFILES")"
	{
		echo "# Written by relocvol's scripts/setup.sh: the relocvol plugin's bind-mount"
		echo "# sources under /run (config.json), made again at every boot."
		for d in $RELOCVOL_HOST_DIRS; do
			if [[ $d == /run/* ]]; then
				echo "d $d $(run_dir_mode "$d") root root -"
			fi
		done
	} >"$RELOCVOL_TMPFILES"
	log "wrote $RELOCVOL_TMPFILES (the plugin's mount sources under /run, at boot)"
}

# ensure_all: everything setup.sh and test.sh need before building.
# setup_packages: the Debian packages ensure_all needs, one per line (test.sh
# installs them in the same apt run as the VM lab's).
setup_packages() {
	printf '%s\n' ca-certificates curl unzip debootstrap util-linux mount e2fsprogs xfsprogs
	if ! have docker || ! docker_ok; then
		echo docker.io
	fi
}

ensure_all() {
	require_root
	local pkgs
	mapfile -t pkgs < <(setup_packages)
	ensure_packages "${pkgs[@]}"
	ensure_go
	ensure_docker
	ensure_base_images
	ensure_host_dirs
}
