# shellcheck shell=bash
# scripts/lib.sh: shared helpers of setup.sh, build-plugin.sh and test.sh
# (and of the e2e tests, which may source it too).
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
# host's LVM (README, Production: "The LVM folders are the host's"); lvm2
# makes them where it is installed (udev makes /run/udev), and the plugin
# needs them even with the loop backend.
RELOCVOL_HOST_DIRS=${RELOCVOL_HOST_DIRS:-/var/lib/relocvol /var/lib/relocvol/san /etc/lvm /run/lvm /run/lock/lvm /run/udev}
# Written into images imported here, so that they can be told from real ones.
RELOCVOL_IMPORT_MESSAGE="relocvol offline import"
: "${HOME:=/root}"
export HOME RELOCVOL_REPO

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

# version_ge A B: whether Go version A >= B (both like 1.26.8, 1.26, 1.26rc1).
version_ge() {
	[[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" == "$2" ]]
}

# go_mod_version: the `go` line of go.mod, e.g. 1.26.8.
go_mod_version() {
	local v
	v=$(awk '$1 == "go" { print $2; exit }' "$RELOCVOL_REPO/go.mod")
	[[ -n $v ]] || die "no go line in $RELOCVOL_REPO/go.mod"
	printf '%s\n' "$v"
}

# go_version_of GOBIN: the version of that go binary without the "go" prefix.
go_version_of() {
	(cd / && GOTOOLCHAIN=local "$1" env GOVERSION 2>/dev/null) | sed -n 's/^go//p'
}

go_arch() {
	case $(uname -m) in
	x86_64 | amd64) echo amd64 ;;
	aarch64 | arm64) echo arm64 ;;
	*) die "no Go toolchain download for machine $(uname -m): install Go $(go_mod_version) by hand" ;;
	esac
}

# ensure_go: puts a go >= go.mod's `go` line first on PATH, downloading the
# official toolchain from the Go module proxy when none is installed.
# Sets GO (the binary) and GOTOOLCHAIN=local (no surprise downloads later).
ensure_go() {
	local want cand v dir
	want=$(go_mod_version)
	local cands=()
	if [[ ${RELOCVOL_FORCE_GO_DOWNLOAD:-0} != 1 ]]; then
		have go && cands+=("$(command -v go)")
		cands+=(/usr/local/go/bin/go)
	fi
	# Toolchains downloaded earlier, newest first.
	while IFS= read -r dir; do
		[[ -n $dir ]] && cands+=("$dir/bin/go")
	done < <(find "$RELOCVOL_GO_ROOT" -mindepth 1 -maxdepth 1 -type d ! -name '.*' 2>/dev/null | sort -rV)
	for cand in "${cands[@]}"; do
		[[ -x $cand ]] || continue
		v=$(go_version_of "$cand")
		if [[ -n $v ]] && version_ge "$v" "$want"; then
			_use_go "$cand"
			return 0
		fi
		[[ -n $v ]] && log "ignoring $cand: go$v is older than go$want (go.mod)"
	done
	download_go "$want"
	_use_go "$RELOCVOL_GO_ROOT/$_RELOCVOL_GO_VER/bin/go"
}

_use_go() {
	local bin
	bin=$(dirname "$1")
	case ":$PATH:" in
	"$bin":*) ;;
	*) PATH="$bin:$PATH" ;;
	esac
	export PATH GOTOOLCHAIN=local
	GO=$1
	log "using $("$GO" version) ($GO)"
}

# download_go VERSION: fetches golang.org/toolchain@v0.0.1-goVERSION.linux-ARCH
# from the module proxy into $RELOCVOL_GO_ROOT/VERSION (bin/go inside).
download_go() {
	local ver=$1 arch proxy url tmp mod
	# A go line like "1.26" names the language; its first release is 1.26.0.
	[[ $ver =~ ^[0-9]+\.[0-9]+$ ]] && ver=$ver.0
	_RELOCVOL_GO_VER=$ver
	if [[ -x $RELOCVOL_GO_ROOT/$ver/bin/go ]]; then
		return 0
	fi
	ensure_packages ca-certificates curl unzip
	arch=$(go_arch)
	proxy=${GOPROXY:-https://proxy.golang.org}
	proxy=${proxy%%,*}
	proxy=${proxy%%|*}
	case $proxy in
	direct | off | "") proxy=https://proxy.golang.org ;;
	esac
	mod="v0.0.1-go$ver.linux-$arch"
	url="${proxy%/}/golang.org/toolchain/@v/$mod.zip"
	log "downloading Go $ver from $url"
	mkdir -p "$RELOCVOL_GO_ROOT"
	tmp=$(mktemp -d "$RELOCVOL_GO_ROOT/.download.XXXXXX")
	if ! curl -fsSL --retry 3 --connect-timeout 20 -o "$tmp/go.zip" "$url"; then
		rm -rf "$tmp"
		die "cannot download Go $ver from $url: install Go >= $ver by hand or set GOPROXY"
	fi
	run_logged "unzip $mod.zip" unzip -q "$tmp/go.zip" -d "$tmp/x" || {
		rm -rf "$tmp"
		die "bad toolchain zip from $url"
	}
	local root="$tmp/x/golang.org/toolchain@$mod"
	[[ -f $root/bin/go ]] || {
		rm -rf "$tmp"
		die "toolchain zip from $url has no bin/go"
	}
	# Module zips carry no file modes: make the tools executable, as the go
	# command does when it installs a toolchain itself.
	chmod -R u+rwX,go+rX "$root"
	find "$root/bin" "$root/pkg/tool" -type f -exec chmod 0755 {} +
	rm -rf "${RELOCVOL_GO_ROOT:?}/$ver"
	mv "$root" "$RELOCVOL_GO_ROOT/$ver"
	rm -rf "$tmp"
	[[ $(go_version_of "$RELOCVOL_GO_ROOT/$ver/bin/go") == "$ver" ]] ||
		die "downloaded toolchain in $RELOCVOL_GO_ROOT/$ver does not run"
}

# proc_running NAME: whether a process of that name runs (no procps needed).
proc_running() {
	local f
	for f in /proc/[0-9]*/comm; do
		[[ $(cat "$f" 2>/dev/null) == "$1" ]] && return 0
	done
	return 1
}

docker_ok() { timeout 20 docker info >/dev/null 2>&1; }

# ensure_docker: uses the engine `docker info` answers; otherwise installs
# docker.io and starts dockerd in the background (it outlives this script).
ensure_docker() {
	if have docker && docker_ok; then
		log "using the running Docker engine ($(docker version -f '{{.Server.Version}}' 2>/dev/null))"
		return 0
	fi
	have dockerd || ensure_packages docker.io
	have dockerd || die "docker.io is installed but there is no dockerd on PATH"
	if ! proc_running dockerd; then
		log "starting dockerd (log: $RELOCVOL_DOCKERD_LOG)"
		mkdir -p "$(dirname "$RELOCVOL_DOCKERD_LOG")"
		# shellcheck disable=SC2086 # word splitting of the extra args is wanted
		setsid nohup dockerd ${RELOCVOL_DOCKERD_ARGS:-} >>"$RELOCVOL_DOCKERD_LOG" 2>&1 </dev/null &
		disown || true
	else
		log "dockerd runs but does not answer yet; waiting"
	fi
	local deadline=$((SECONDS + ${RELOCVOL_DOCKERD_TIMEOUT:-90}))
	until docker_ok; do
		if ((SECONDS >= deadline)); then
			log "last lines of $RELOCVOL_DOCKERD_LOG:"
			tail -n 40 "$RELOCVOL_DOCKERD_LOG" >&2 || true
			die "dockerd did not answer within ${RELOCVOL_DOCKERD_TIMEOUT:-90}s (see $RELOCVOL_DOCKERD_LOG)"
		fi
		sleep 1
	done
	log "dockerd is up ($(docker version -f '{{.Server.Version}}' 2>/dev/null))"
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# try_pull IMAGE: a registry is optional: fail fast and quietly without one.
try_pull() {
	[[ ${RELOCVOL_NO_PULL:-0} == 1 ]] && return 1
	log "trying docker pull $1"
	if timeout "${RELOCVOL_PULL_TIMEOUT:-120}" docker pull -q "$1" >/dev/null 2>&1; then
		return 0
	fi
	log "cannot pull $1: building it offline"
	return 1
}

# debian_mirror: the Debian mirror apt uses here (or RELOCVOL_DEBIAN_MIRROR).
debian_mirror() {
	if [[ -n ${RELOCVOL_DEBIAN_MIRROR:-} ]]; then
		echo "$RELOCVOL_DEBIAN_MIRROR"
		return
	fi
	local m=""
	if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
		# deb822: the URIs of the first stanza whose Suites have "bookworm".
		m=$(awk '
			/^[[:space:]]*$/ { if (uri != "" && suites ~ /(^| )bookworm( |$)/) { print uri; exit } uri = ""; suites = ""; next }
			tolower($1) == "uris:" { uri = $2 }
			tolower($1) == "suites:" { $1 = ""; suites = $0 " " }
			END { if (uri != "" && suites ~ /(^| )bookworm( |$)/) print uri }
		' /etc/apt/sources.list.d/debian.sources | head -n1)
	fi
	if [[ -z $m && -r /etc/apt/sources.list ]]; then
		m=$(awk '$1 == "deb" && $0 ~ / bookworm / { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' /etc/apt/sources.list | head -n1)
	fi
	echo "${m:-http://deb.debian.org/debian}"
}

# unmount_under DIR: unmounts everything mounted at or below DIR, deepest
# first (a failed debootstrap can leave /proc or /sys mounted in its tree).
unmount_under() {
	local dir m
	dir=$(realpath -m "$1")
	awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r m; do
			umount -l "$m" 2>/dev/null || true
		done
}

# safe_rm_tree DIR: removes a chroot tree without ever following a mount
# into the host.
safe_rm_tree() {
	[[ -n $1 && $1 != / && -e $1 ]] || return 0
	unmount_under "$1"
	rm -rf --one-file-system "$1"
}

# debootstrap_tree NAME PKGS: prints the path of a cached minbase bookworm tree
# with PKGS (comma-separated) included, building it (about a minute) when
# absent. Reruns reuse it. Any other tree (e.g. docker-in-docker nodes for
# e2e) can use this too.
debootstrap_tree() {
	local name=$1 pkgs=$2 dir tmp mirror
	dir="$RELOCVOL_CACHE/$name"
	if [[ -f $dir/.relocvol-complete && $(cat "$dir/.relocvol-complete") == "$pkgs" ]]; then
		echo "$dir"
		return 0
	fi
	ensure_packages debootstrap ca-certificates
	mirror=$(debian_mirror)
	mkdir -p "$RELOCVOL_CACHE"
	tmp="$RELOCVOL_CACHE/.$name.tmp"
	safe_rm_tree "$tmp"
	log "debootstrap bookworm ($pkgs) from $mirror into $dir (about a minute)"
	if ! run_logged "debootstrap" debootstrap --variant=minbase --include="$pkgs" bookworm "$tmp" "$mirror"; then
		[[ -f $tmp/debootstrap/debootstrap.log ]] && tail -n 20 "$tmp/debootstrap/debootstrap.log" >&2
		safe_rm_tree "$tmp"
		die "debootstrap failed: check the network and the mirror ($mirror; set RELOCVOL_DEBIAN_MIRROR)"
	fi
	unmount_under "$tmp"
	# Smaller images: no downloaded .debs, no apt lists.
	rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/* 2>/dev/null || true
	printf '%s\n' "$pkgs" >"$tmp/.relocvol-complete"
	safe_rm_tree "$dir"
	mv "$tmp" "$dir"
	echo "$dir"
}

# trust_host_ca DIR: gives a tree the host's CA bundle, so that builds inside
# it trust what the host trusts (a TLS-inspecting egress proxy's CA, a
# company CA) when they reach the Go module proxy.
trust_host_ca() {
	local bundle=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
	[[ -s $bundle && -d $1/etc/ssl/certs ]] || return 0
	cmp -s "$bundle" "$1/etc/ssl/certs/ca-certificates.crt" && return 0
	log "copying the host's CA bundle ($bundle) into $1"
	cp "$bundle" "$1/etc/ssl/certs/ca-certificates.crt"
}

# What images made from a tree leave out, as Debian's -slim images do (the
# C locale needs no files), plus this script's marker.
RELOCVOL_TREE_EXCLUDES=(--exclude=./.relocvol-complete --exclude='./usr/share/man/*'
	--exclude='./usr/share/info/*' --exclude='./usr/share/locale/*')

# import_tree DIR IMAGE [CHANGE...]: docker import of a tree (minus this
# script's marker), each CHANGE passed as --change.
import_tree() {
	local dir=$1 image=$2 args=() c
	shift 2
	for c in "$@"; do args+=(--change "$c"); done
	log "importing $dir as $image"
	tar -C "$dir" "${RELOCVOL_TREE_EXCLUDES[@]}" --numeric-owner -c . |
		docker import --message "$RELOCVOL_IMPORT_MESSAGE" "${args[@]}" - "$image" >/dev/null
}

# imported_here IMAGE: whether IMAGE was made by import_tree (or the Go
# image's import), not pulled from a registry.
imported_here() {
	[[ $(docker image inspect -f '{{.Comment}}' "$1" 2>/dev/null) == "$RELOCVOL_IMPORT_MESSAGE" ]]
}

# image_label IMAGE LABEL: the value of LABEL on IMAGE (empty if none).
image_label() {
	docker image inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true
}

# recipe_hash LINE...: a short hash of what an image is made from, for its
# label: the image is made again when it changes.
recipe_hash() {
	printf '%s\n' "$@" | sha256sum | cut -c1-16
}

image_env() {
	docker image inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$1" 2>/dev/null | sed -n "s/^$2=//p"
}

# ensure_base_images: the two images the Dockerfile builds FROM. Existing
# images are reused; else pulled; else made offline from a debootstrap tree
# (the Go builder gets the Go toolchain of ensure_go at /usr/local/go).
# A BASE_IMAGE made here is labelled with the hash of its recipe
# (RELOCVOL_BASE_PACKAGES, the import's changes) and made again when that
# changes, so that a machine set up before a package was added gets it; a
# pulled image is left as it is (the Dockerfile installs what it lacks).
ensure_base_images() {
	local tree want v goroot hash stale=""
	local changes=('ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' 'CMD ["bash"]')
	hash=$(recipe_hash "$RELOCVOL_BASE_PACKAGES" "${changes[@]}")
	if image_exists "$BASE_IMAGE" && imported_here "$BASE_IMAGE" &&
		[[ $(image_label "$BASE_IMAGE" "$RELOCVOL_BASE_LABEL") != "$hash" ]]; then
		log "$BASE_IMAGE was made here from another recipe: making it again with $RELOCVOL_BASE_PACKAGES"
		stale=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
	fi
	if [[ -n $stale ]] || { ! image_exists "$BASE_IMAGE" && ! try_pull "$BASE_IMAGE"; }; then
		tree=$(debootstrap_tree bookworm-base "$RELOCVOL_BASE_PACKAGES")
		trust_host_ca "$tree"
		import_tree "$tree" "$BASE_IMAGE" "${changes[@]}" "LABEL $RELOCVOL_BASE_LABEL=$hash"
		[[ $(image_label "$BASE_IMAGE" "$RELOCVOL_BASE_LABEL") == "$hash" ]] ||
			die "docker import did not label $BASE_IMAGE with $RELOCVOL_BASE_LABEL=$hash"
		# The replaced image, unless images built from it still need it.
		[[ -z $stale ]] || docker rmi "$stale" >/dev/null 2>&1 || true
		log "made $BASE_IMAGE (recipe $hash)"
	fi

	want=$(go_mod_version)
	if image_exists "$GO_IMAGE"; then
		v=$(image_env "$GO_IMAGE" GOLANG_VERSION)
		if [[ -n $v ]] && ! version_ge "$v" "$want" && imported_here "$GO_IMAGE"; then
			log "$GO_IMAGE has Go $v, go.mod wants $want: rebuilding it"
			docker rmi "$GO_IMAGE" >/dev/null
		else
			log "using images $BASE_IMAGE and $GO_IMAGE"
			return 0
		fi
	elif try_pull "$GO_IMAGE"; then
		return 0
	fi
	[[ -n ${GO:-} ]] || ensure_go
	goroot=$(cd "$("$GO" env GOROOT)" && pwd -P)
	v=$(go_version_of "$GO")
	tree=$(debootstrap_tree bookworm-base "$RELOCVOL_BASE_PACKAGES")
	trust_host_ca "$tree"
	log "importing $tree + Go $v ($goroot) as $GO_IMAGE"
	# One tar stream: the tree, then GOROOT renamed to usr/local/go.
	tar --numeric-owner -c "${RELOCVOL_TREE_EXCLUDES[@]}" -C "$tree" . \
		-C "$(dirname "$goroot")" --transform "s,^$(basename "$goroot")\(/\|\$\),usr/local/go\1," "$(basename "$goroot")" |
		docker import --message "$RELOCVOL_IMPORT_MESSAGE" \
			--change 'ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--change 'ENV GOPATH=/go' \
			--change 'ENV GOTOOLCHAIN=local' \
			--change "ENV GOLANG_VERSION=$v" \
			--change 'WORKDIR /go' \
			--change 'CMD ["bash"]' \
			- "$GO_IMAGE" >/dev/null
	log "made $GO_IMAGE"
}

# Docker-in-docker nodes of the e2e cluster (e2e/cluster): Debian's dockerd
# 20.10 plus what a relocvol host runs, and tini to reap the nested engine's
# orphans. RELOCVOL_NODE_IMAGE names the image.
RELOCVOL_NODE_IMAGE=${RELOCVOL_NODE_IMAGE:-relocvol-node:dev}
RELOCVOL_NODE_PACKAGES=${RELOCVOL_NODE_PACKAGES:-docker.io,tini,iproute2,util-linux,mount,e2fsprogs,procps,ca-certificates}
RELOCVOL_NODE_LABEL=io.relocvol.node-recipe

# ensure_node_image: the image of the e2e cluster's nodes: a debootstrap tree
# with RELOCVOL_NODE_PACKAGES and scripts/node/entrypoint.sh, imported. It is
# labelled with a hash of its recipe (packages, entrypoint, import changes)
# and made again only when that hash changes.
ensure_node_image() {
	local entry="$RELOCVOL_REPO/scripts/node/entrypoint.sh" changes hash tree
	[[ -f $entry ]] || die "missing $entry"
	changes=(
		'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
		'ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/sbin/relocvol-node-init"]'
	)
	hash=$(recipe_hash "$RELOCVOL_NODE_PACKAGES" "${changes[@]}" "$(cat "$entry")")
	if [[ $(image_label "$RELOCVOL_NODE_IMAGE" "$RELOCVOL_NODE_LABEL") == "$hash" ]]; then
		log "using image $RELOCVOL_NODE_IMAGE (recipe $hash)"
		return 0
	fi
	tree=$(debootstrap_tree bookworm-node "$RELOCVOL_NODE_PACKAGES")
	install -D -m 0755 "$entry" "$tree/usr/local/sbin/relocvol-node-init"
	import_tree "$tree" "$RELOCVOL_NODE_IMAGE" "${changes[@]}" "LABEL $RELOCVOL_NODE_LABEL=$hash"
	[[ $(image_label "$RELOCVOL_NODE_IMAGE" "$RELOCVOL_NODE_LABEL") == "$hash" ]] ||
		die "docker import did not label $RELOCVOL_NODE_IMAGE with $RELOCVOL_NODE_LABEL=$hash"
	# The image it replaced, if no container uses it any more.
	docker image prune -f --filter "label=$RELOCVOL_NODE_LABEL" >/dev/null 2>&1 || true
	log "made $RELOCVOL_NODE_IMAGE (recipe $hash)"
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

# ensure_registry: Debian's docker-registry (the Docker Distribution registry,
# /usr/bin/docker-registry), for `docker plugin push` / `install` without a
# registry on the network. Only installs it: start one with your own config
# (`docker-registry serve CONFIG`; the package's own service on :5000 asks for
# htpasswd credentials).
ensure_registry() {
	have docker-registry || ensure_packages docker-registry
	have docker-registry || die "docker-registry is installed but not on PATH (expected /usr/bin/docker-registry)"
}
