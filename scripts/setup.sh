#!/usr/bin/env bash
# scripts/setup.sh: installs relocvol on this machine, as root, from this
# checkout: everything it needs (packages, Go, Docker, the build's base
# images, made offline when no registry answers), then builds the managed
# plugin and enables it, and installs the relocvol CLI in /usr/local/bin.
# The plugin's bind-mount sources are made, and those under /run made again
# at every boot (/etc/tmpfiles.d/relocvol.conf). Run it again to rebuild and
# re-enable.
#
#   scripts/setup.sh          (as root)
#
# Environment: PLUGIN_NAME (default relocvol:latest) and the knobs listed in
# scripts/lib.sh and scripts/build-plugin.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PLUGIN_NAME=${PLUGIN_NAME:-relocvol:latest}
export PLUGIN_NAME
start=$SECONDS

ensure_all
ensure_boot_dirs
bash "$RELOCVOL_REPO/scripts/build-plugin.sh"
log "enabling plugin $PLUGIN_NAME"
if ! docker plugin enable "$PLUGIN_NAME" >/dev/null; then
	die "docker plugin enable $PLUGIN_NAME failed: see the plugin's log in the dockerd log (journalctl -u docker, or $RELOCVOL_DOCKERD_LOG)"
fi
# The CLI (relocvol status, apps, move, …) is the plugin's own binary.
cid=$(docker create "${RELOCVOL_IMAGE:-relocvol-rootfs:dev}")
docker cp "$cid:/usr/bin/relocvol" /usr/local/bin/relocvol
docker rm "$cid" >/dev/null
log "installed the CLI as /usr/local/bin/relocvol"
log "relocvol is installed in $((SECONDS - start))s"

name=${PLUGIN_NAME%:latest}
cat <<TRY

relocvol is ready. Try it:

  docker volume create -d $name -o size=1G db
  docker run --rm -v db:/data debian:bookworm-slim sh -c 'echo hello > /data/hello'
  docker run --rm -v db:/data debian:bookworm-slim cat /data/hello
  docker volume rm db
  relocvol status; relocvol hosts; relocvol volumes     # the controller's view
  (status page and metrics: http://127.0.0.1:7480/ and /metrics)

Settings: docker plugin disable $name; docker plugin set $name RELOCVOL_LOG_LEVEL=debug; docker plugin enable $name

TRY
docker plugin ls
