#!/usr/bin/env bash
# scripts/build-plugin.sh: builds the relocvol managed plugin and (re)creates
# it in the local Docker engine, disabled. setup.sh and the e2e tests call it.
#
#   scripts/build-plugin.sh [--enable]
#
# Environment:
#   PLUGIN_NAME      plugin to (re)create (default relocvol:latest)
#   RELOCVOL_IMAGE   tag of the rootfs image (default relocvol-rootfs:dev)
#   RELOCVOL_BUILD_IMAGE  tag of the build stage (default relocvol-build:dev)
#   PLUGIN_DIR       keep the plugin folder (config.json + rootfs/) here
#                    instead of a temporary one removed at exit
#   RELOCVOL_VERSION the binary's version, as `relocvol version` and the
#                    API show it (default dev)
#   RELOCVOL_GO_TAGS Go build tags of the plugin's binary (default none;
#                    `failpoints` makes the crash-test build, never for
#                    production)
#   RELOCVOL_OMIT_CAPS  capabilities of config.json to leave out, of those
#                    the plugin can do without (CAP_SYS_RESOURCE: without
#                    it ext4 volumes grow at their next mount, not online):
#                    "auto" (the default) leaves out those this machine's
#                    dockerd cannot grant (its bounding set lacks them, as
#                    in a sandbox or docker-in-docker: a plugin asking for
#                    one would not start); "" keeps them all (publish.sh
#                    does, for other hosts); or a list, e.g. CAP_SYS_RESOURCE
#   GO_IMAGE, BASE_IMAGE, GOPROXY, GOFLAGS, GOSUMDB  passed to docker build
#
# Needs a running engine and the Dockerfile's base images (setup.sh or
# lib.sh ensure_base_images make them). It refuses to replace a plugin whose
# volumes running containers use: stop them first.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PLUGIN_NAME=${PLUGIN_NAME:-relocvol:latest}
RELOCVOL_IMAGE=${RELOCVOL_IMAGE:-relocvol-rootfs:dev}
RELOCVOL_BUILD_IMAGE=${RELOCVOL_BUILD_IMAGE:-relocvol-build:dev}
enable=0
for arg in "$@"; do
	case $arg in
	--enable) enable=1 ;;
	-h | --help)
		sed -n '2,/^set /s/^# \{0,1\}//p' "$0"
		exit 0
		;;
	*) die "unknown argument $arg (see $0 --help)" ;;
	esac
done

if ! have docker || ! docker_ok; then
	die "no Docker engine answers: run scripts/setup.sh (or start dockerd)"
fi
for img in "$GO_IMAGE" "$BASE_IMAGE"; do
	image_exists "$img" || die "image $img is missing: run scripts/setup.sh (it builds it offline)"
done

# plugin_full_name NAME: Docker's name for a plugin reference (adds :latest).
plugin_full_name() {
	# Only the last path element can carry the tag: host:5000/x is untagged.
	case ${1##*/} in
	*:*) echo "$1" ;;
	*) echo "$1:latest" ;;
	esac
}

# volumes_in_use NAME: volumes of plugin NAME that running containers mount.
volumes_in_use() {
	local v driver full
	full=$(plugin_full_name "$1")
	docker volume ls -q --filter "driver=$full" 2>/dev/null | while read -r v; do
		[[ -n $v ]] || continue
		if [[ -n $(docker ps -q --filter "volume=$v") ]]; then
			echo "$v"
		fi
	done
	# Older engines list the driver without the tag.
	driver=${full%:latest}
	[[ $driver == "$full" ]] && return 0
	docker volume ls -q --filter "driver=$driver" 2>/dev/null | while read -r v; do
		[[ -n $v && -n $(docker ps -q --filter "volume=$v") ]] && echo "$v"
	done
	return 0
}

full=$(plugin_full_name "$PLUGIN_NAME")
# Refuse before building anything: replacing the plugin under a running
# container would drop its mounts from the plugin's view.
if docker plugin inspect "$full" >/dev/null 2>&1; then
	busy=$(volumes_in_use "$full" | sort -u | tr '\n' ' ')
	if [[ -n ${busy// /} ]]; then
		die "plugin $full serves volumes that running containers use: ${busy% }. Stop those containers (docker ps --filter volume=NAME), then run this again"
	fi
fi

start=$SECONDS
tags=${RELOCVOL_GO_TAGS:-}
version=${RELOCVOL_VERSION:-dev}
[[ $version =~ ^[A-Za-z0-9][A-Za-z0-9._+-]*$ ]] || die "RELOCVOL_VERSION=$version: use letters, digits and . _ + - (e.g. 1.2.0)"
log "building image $RELOCVOL_IMAGE (version $version${tags:+, Go build tags: $tags}) from $RELOCVOL_REPO"
old_image=$(docker image inspect -f '{{.Id}}' "$RELOCVOL_IMAGE" 2>/dev/null || true)
build_args=(--build-arg "GO_IMAGE=$GO_IMAGE" --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "GO_TAGS=$tags" --build-arg "VERSION=$version")
for v in GOPROXY GOFLAGS GOSUMDB; do
	if [[ -n ${!v:-} ]]; then
		build_args+=(--build-arg "$v=${!v}")
	fi
done
# The classic builder: it uses local base images as they are, never asking
# a registry (there is none here), and `--network host` reaches the proxy.
# The build stage is tagged first so that its cached layers (the module
# download) stay referenced; then earlier builds' leftovers are pruned.
docker_build() {
	DOCKER_BUILDKIT=0 run_logged "docker build $*" \
		docker build --network host --force-rm "${build_args[@]}" -f "$RELOCVOL_REPO/Dockerfile" "$@" "$RELOCVOL_REPO" ||
		die "docker build failed (output above)"
}
docker_build --target build -t "$RELOCVOL_BUILD_IMAGE"
docker_build -t "$RELOCVOL_IMAGE"
new_image=$(docker image inspect -f '{{.Id}}' "$RELOCVOL_IMAGE")
if [[ -n $old_image && $old_image != "$new_image" ]]; then
	docker rmi "$old_image" >/dev/null 2>&1 || true
fi
docker image prune -f --filter label=io.relocvol.stage=build >/dev/null 2>&1 || true

if [[ -n ${PLUGIN_DIR:-} ]]; then
	dir=$PLUGIN_DIR
	safe_rm_tree "$dir"
	mkdir -p "$dir"
else
	dir=$(mktemp -d "${TMPDIR:-/var/tmp}/relocvol-plugin.XXXXXX")
fi
cid=""
cleanup() {
	[[ -n $cid ]] && docker rm -f "$cid" >/dev/null 2>&1
	[[ -z ${PLUGIN_DIR:-} ]] && rm -rf --one-file-system "$dir"
	return 0
}
trap cleanup EXIT

mkdir -p "$dir/rootfs"
cid=$(docker create "$RELOCVOL_IMAGE")
docker export "$cid" | tar -x --numeric-owner -C "$dir/rootfs"
docker rm "$cid" >/dev/null
cid=""
# The capabilities the plugin can do without; each stands on a line of its
# own in config.json, not the last of the list (a test checks it), so that
# leaving it out is dropping that line.
OPTIONAL_CAPS=(CAP_SYS_RESOURCE)
omit=()
why="as RELOCVOL_OMIT_CAPS asks"
case ${RELOCVOL_OMIT_CAPS-auto} in
auto)
	why="this Docker engine cannot grant it"
	for c in "${OPTIONAL_CAPS[@]}"; do
		engine_cannot_grant "$c" && omit+=("$c")
	done
	;;
*)
	for c in ${RELOCVOL_OMIT_CAPS//,/ }; do
		[[ " ${OPTIONAL_CAPS[*]} " == *" $c "* ]] || die "RELOCVOL_OMIT_CAPS: $c is not a capability the plugin can do without (those are: ${OPTIONAL_CAPS[*]})"
		omit+=("$c")
	done
	;;
esac
cp "$RELOCVOL_REPO/config.json" "$dir/config.json"
for c in "${omit[@]}"; do
	grep -v "^[[:space:]]*\"$c\",\$" "$dir/config.json" >"$dir/config.json.new"
	mv "$dir/config.json.new" "$dir/config.json"
	log "leaving $c out of the plugin: $why; ext4 volumes then grow when next mounted, not online (xfs grows online)"
done

if docker plugin inspect "$full" >/dev/null 2>&1; then
	log "removing the existing plugin $full"
	docker plugin disable -f "$full" >/dev/null 2>&1 || true
	docker plugin rm -f "$full" >/dev/null
fi
log "creating plugin $full"
docker plugin create "$full" "$dir" >/dev/null
if ((enable)); then
	log "enabling plugin $full"
	docker plugin enable "$full" >/dev/null
fi
log "plugin $full ready in $((SECONDS - start))s"
