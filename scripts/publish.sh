#!/usr/bin/env bash
# scripts/publish.sh: builds the relocvol managed plugin from this checkout
# and pushes it to a registry, so that other Docker hosts can install it with
# `docker plugin install`.
#
#   scripts/publish.sh REGISTRY[/REPO][:TAG]
#
#   scripts/publish.sh 127.0.0.1:5000/relocvol:0.1
#   scripts/publish.sh registry.example.com:5000        # = …/relocvol:latest
#
# REGISTRY alone (host or host:port) means REGISTRY/relocvol:latest; a
# reference without a tag gets :latest. The plugin is built by
# build-plugin.sh under that very name, pushed with `docker plugin push`, and
# stays in this engine, disabled (remove it with `docker plugin rm REF`
# before installing REF from the registry on this same host). A plugin of
# that name already here is replaced, losing its settings, unless running
# containers use its volumes: then nothing is built or pushed.
#
# On every other host (no prompt with --grant-all-permissions; settings as
# KEY=VALUE arguments, the same as `docker plugin set`; the bind-mount
# sources must exist, as install enables the plugin):
#
#   mkdir -p /var/lib/relocvol/san /etc/lvm /run/lvm /run/lock/lvm
#   docker plugin install --grant-all-permissions --alias relocvol REF \
#       RELOCVOL_HOST=$(hostname) RELOCVOL_ETCD_ENDPOINTS=https://10.0.0.1:2379 \
#       RELOCVOL_ETCD_CA=/var/lib/relocvol/tls/etcd-ca.pem \
#       RELOCVOL_ETCD_CERT=/var/lib/relocvol/tls/etcd-client.pem \
#       RELOCVOL_ETCD_KEY=/var/lib/relocvol/tls/etcd-client-key.pem
#
# Write access to etcd is root on every host: give etcd TLS with client
# certificates (docs/production.md), the files under the state folder.
#
# The registry must answer before anything is built. Without one, Debian's
# docker-registry package provides it (the package's own service on :5000
# asks for credentials; this runs one without):
#
#   apt-get install -y docker-registry
#   printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/relocvol-registry\nhttp:\n  addr: :5000\n' >/etc/relocvol-registry.yml
#   docker-registry serve /etc/relocvol-registry.yml &
#
# Docker talks plain HTTP only to registries on 127.0.0.0/8 and to those
# listed in "insecure-registries" of /etc/docker/daemon.json (on the pushing
# host and on every installing host); any other registry needs TLS.
#
# Environment: the knobs of scripts/build-plugin.sh and scripts/lib.sh
# (RELOCVOL_IMAGE, GO_IMAGE, BASE_IMAGE, GOPROXY, …), but RELOCVOL_OMIT_CAPS
# defaults to none here: the plugin keeps every capability it asks for,
# which the installing hosts' engines must grant (set it to auto to publish
# for hosts whose engine is like this one's); REGISTRY_TIMEOUT (seconds to
# wait for the registry's answer, default 10).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,/^set /s/^# \{0,1\}//p' "$0"; }

ref=""
for arg in "$@"; do
	case $arg in
	-h | --help)
		usage
		exit 0
		;;
	-*) die "unknown option $arg (see $0 --help)" ;;
	*)
		[[ -z $ref ]] || die "one reference only, got $ref and $arg (see $0 --help)"
		ref=$arg
		;;
	esac
done
[[ -n $ref ]] || die "usage: $0 REGISTRY[/REPO][:TAG], e.g. $0 127.0.0.1:5000/relocvol:0.1 (see --help)"
[[ $ref != *@* && $ref != *[[:space:]]* && $ref != /* && $ref != */ && $ref != *//* ]] ||
	die "invalid reference \"$ref\": use REGISTRY[/REPO][:TAG] (no digest), e.g. 127.0.0.1:5000/relocvol:0.1"
[[ $ref != *[A-Z]* ]] || die "invalid reference \"$ref\": Docker references are lower case"

# The registry is the first component when it looks like a host (a dot, a
# port or localhost), as Docker decides; otherwise the reference is Docker
# Hub's.
if [[ $ref != */* ]]; then
	registry=$ref
	ref=$ref/relocvol:latest
else
	first=${ref%%/*}
	if [[ $first == *.* || $first == *:* || $first == localhost ]]; then
		registry=$first
	else
		registry=docker.io
	fi
	# A tag is a colon in the last component (a colon before it is a port).
	[[ ${ref##*/} == *:* ]] || ref=$ref:latest
fi

if ! have docker || ! docker_ok; then
	die "no Docker engine answers (docker info): run scripts/setup.sh, or start dockerd, then run this again"
fi

# registry_answer URL: the HTTP status of URL ("000": no answer).
registry_answer() {
	curl -sk -o /dev/null -w '%{http_code}' --connect-timeout "${REGISTRY_TIMEOUT:-10}" \
		--max-time "${REGISTRY_TIMEOUT:-10}" "$1" 2>/dev/null || true
}

# check_registry: fails early, before the build, when the registry does not
# answer the Docker Registry API at https:// or http://.
check_registry() {
	local host=$registry code="" url
	[[ $host == docker.io ]] && host="registry-1.docker.io"
	if ! have curl; then
		local h=${host%:*} p=${host##*:}
		[[ $host == *:* ]] || p=443
		h=${h#[}
		h=${h%]}
		if timeout "${REGISTRY_TIMEOUT:-10}" bash -c ">/dev/tcp/$h/$p" 2>/dev/null; then
			return 0
		fi
	else
		for url in "https://$host/v2/" "http://$host/v2/"; do
			code=$(registry_answer "$url")
			case $code in
			200)
				log "registry $registry answers at $url"
				return 0
				;;
			401)
				log "registry $registry answers at $url and asks for credentials: the push uses those of \`docker login $registry\`"
				return 0
				;;
			000 | "") ;;
			*)
				log "registry $registry: $url answered HTTP $code (not a Docker registry there?)"
				return 0
				;;
			esac
		done
	fi
	local port=5000
	[[ $host == *:* ]] && port=${host##*:}
	local msg="registry $registry does not answer (nothing at https://$host/v2/ nor http://$host/v2/).
  Start one, or check the address. On Debian, one without credentials:
    apt-get install -y docker-registry
    printf 'version: 0.1\\nstorage:\\n  filesystem:\\n    rootdirectory: /var/lib/relocvol-registry\\nhttp:\\n  addr: :$port\\n' >/etc/relocvol-registry.yml
    docker-registry serve /etc/relocvol-registry.yml &
  (see $0 --help)"
	if [[ -n ${DOCKER_HOST:-} && ${DOCKER_HOST} != unix://* ]]; then
		log "WARNING: $msg"
		log "DOCKER_HOST=$DOCKER_HOST: the engine is elsewhere and may reach it; trying anyway"
		return 0
	fi
	die "$msg"
}
check_registry

start=$SECONDS
log "building plugin $ref"
# The plugin is for other hosts: it keeps every capability it asks for
# unless RELOCVOL_OMIT_CAPS says otherwise (auto: those this engine cannot
# grant, for hosts like this one).
PLUGIN_NAME=$ref RELOCVOL_OMIT_CAPS=${RELOCVOL_OMIT_CAPS-} bash "$RELOCVOL_REPO/scripts/build-plugin.sh" ||
	die "scripts/build-plugin.sh failed for $ref (see above): nothing was pushed"

log "pushing plugin $ref"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if ! docker plugin push "$ref" >"$out" 2>&1; then
	tail -n 20 "$out" >&2
	hint="check the registry's log"
	if grep -qi 'http response to https client' "$out"; then
		hint="the registry speaks plain HTTP: add \"insecure-registries\": [\"$registry\"] to /etc/docker/daemon.json and restart dockerd (on every host that pushes or installs), or give the registry TLS"
	elif grep -qiE 'unauthorized|authentication required|denied' "$out"; then
		hint="the registry refused the credentials: docker login $registry, then run this again"
	elif grep -qiE 'connection refused|no such host|i/o timeout|no route' "$out"; then
		hint="the engine cannot reach $registry (is the registry still running, and reachable from dockerd's network?)"
	fi
	die "docker plugin push $ref failed: $hint. The plugin stays in this engine, disabled, as $ref"
fi
digest=$(grep -oE 'sha256:[0-9a-f]{64}' "$out" | tail -n 1 || true)
log "pushed $ref${digest:+ ($digest)} in $((SECONDS - start))s"

cat <<DONE

Plugin $ref is in the registry. Install it on each Docker host (that host's
settings as KEY=VALUE; the engine must trust $registry, see $0 --help):

  mkdir -p /var/lib/relocvol/san /etc/lvm /run/lvm /run/lock/lvm
  docker plugin install --grant-all-permissions --alias relocvol $ref \\
      RELOCVOL_HOST=\$(hostname) RELOCVOL_ETCD_ENDPOINTS=https://ETCD:2379 \\
      RELOCVOL_ETCD_CA=/var/lib/relocvol/tls/etcd-ca.pem \\
      RELOCVOL_ETCD_CERT=/var/lib/relocvol/tls/etcd-client.pem \\
      RELOCVOL_ETCD_KEY=/var/lib/relocvol/tls/etcd-client-key.pem

(Write access to etcd is root on every host: serve it over TLS with client
certificates, docs/production.md; relocvol doctor warns otherwise.)

This engine keeps the built plugin $ref, disabled: \`docker plugin rm $ref\`
before installing it from the registry here.

DONE
