# shellcheck shell=bash
# scripts/lib/docker.sh: the Docker engine and registries (part of scripts/lib.sh, which sources it).

# proc_running NAME: whether a process of that name runs (no procps needed).
proc_running() {
	local f
	for f in /proc/[0-9]*/comm; do
		[[ $(cat "$f" 2>/dev/null) == "$1" ]] && return 0
	done
	return 1
}

docker_ok() { timeout 20 docker info >/dev/null 2>&1; }

# capability_bits: the Linux capability numbers of the names the plugin's
# config.json may leave out (OPTIONAL_CAPS of build-plugin.sh).
declare -A capability_bits=([CAP_SYS_RESOURCE]=24)

# engine_cannot_grant CAP: whether the local dockerd's bounding set lacks
# CAP (a sandbox, docker-in-docker started with --cap-drop), so that a
# plugin asking for it fails to start ("unable to apply caps"). False when
# it cannot tell (no local dockerd: a remote DOCKER_HOST).
engine_cannot_grant() {
	local bit=${capability_bits[$1]:?unknown capability $1} f bnd
	for f in /proc/[0-9]*/comm; do
		[[ $(cat "$f" 2>/dev/null) == dockerd ]] || continue
		bnd=$(sed -n 's/^CapBnd:[[:space:]]*//p' "${f%/comm}/status" 2>/dev/null) || continue
		[[ $bnd =~ ^[0-9a-f]+$ ]] || continue
		(((16#$bnd >> bit) & 1)) && return 1
		return 0
	done
	return 1
}

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
		# It keeps none of this script's other open files: a lock its caller
		# holds (flock FILE scripts/test.sh) would stay held as long as
		# dockerd runs.
		# shellcheck disable=SC2086,SC2016 # word splitting of the extra args is wanted; $fd is the inner shell's
		setsid nohup bash -c 'for fd in /proc/self/fd/*; do fd=${fd##*/}; ((fd > 2)) && eval "exec $fd>&-"; done; exec dockerd "$@"' dockerd \
			${RELOCVOL_DOCKERD_ARGS:-} >>"$RELOCVOL_DOCKERD_LOG" 2>&1 </dev/null &
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

# ensure_registry: Debian's docker-registry (the Docker Distribution registry,
# /usr/bin/docker-registry), for `docker plugin push` / `install` without a
# registry on the network. Only installs it: start one with your own config
# (`docker-registry serve CONFIG`; the package's own service on :5000 asks for
# htpasswd credentials).
ensure_registry() {
	have docker-registry || ensure_packages docker-registry
	have docker-registry || die "docker-registry is installed but not on PATH (expected /usr/bin/docker-registry)"
}
