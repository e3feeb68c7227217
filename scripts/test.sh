#!/usr/bin/env bash
# scripts/test.sh: the project's test command (CI runs it through .ci/run).
# As root: makes sure of everything setup.sh needs (packages, Go, Docker, the
# base images), everything the VM labs need (qemu, the kernel, the VM
# image: scripts/vmlab/build.sh, cached) and what the status page's browser
# test needs (Debian's chromium), then go vet, shellcheck of every script
# and every test. The e2e tests build and install the plugin themselves
# with scripts/build-plugin.sh. Nothing is skipped on a machine
# set up by this script alone.
#
#   scripts/test.sh [go test flags, e.g. -run TestX]   (as root)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=vmlab/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/vmlab/common.sh"

start=$SECONDS
require_root
# The VM labs (e2e/vmlab, e2e/sanlab) boot qemu VMs from images built here;
# without this a new machine would skip them (or, under CI=true, build them
# inside a test's own time limit). Their build (a kernel, a debootstrap, an
# ext4 image) runs in the background while ensure_all makes the Docker base
# images (another debootstrap): on a new machine that saves a minute. The
# packages of both go in first, in one apt run: apt installs one at a time.
# Only the tests need chromium (controller/api/uitest drives the status page
# in it) and shellcheck, so they are here rather than in setup.sh.
mapfile -t pkgs < <(setup_packages)
ensure_packages "${pkgs[@]}" "${VMLAB_BUILD_PACKAGES[@]}" shellcheck chromium
log "VM lab images (scripts/vmlab/build.sh, in the background)"
bash "$RELOCVOL_REPO/scripts/vmlab/build.sh" &
vmlab_build=$!
trap 'kill "$vmlab_build" 2>/dev/null || true' EXIT
ensure_all
wait "$vmlab_build" || die "scripts/vmlab/build.sh failed (its output above): the VM lab cannot boot"
trap - EXIT
export RELOCVOL_REPO
# Pure Go, as the plugin's binary is built (the Dockerfile): the tests run
# the same resolver and libraries as production, and the e2e tests' own
# builds (the LVM conformance suite for the VM lab, the host CLI) reuse the
# packages compiled for go vet instead of compiling them all again.
export CGO_ENABLED=0
cd "$RELOCVOL_REPO"

log "go vet ./..."
go vet ./...
# Every shell script (by name or by its #! line), sourced files followed as
# they are sourced.
mapfile -t scripts < <({ find scripts -name '*.sh'; grep -rlE '^#!/bin/(ba)?sh|^#!/usr/bin/env bash' scripts .ci; } | sort -u)
log "shellcheck (${#scripts[@]} scripts)"
shellcheck -x -P SCRIPTDIR "${scripts[@]}"

# The e2e packages run verbose, so their skips and daemon logs show, and one
# at a time (-p 1): the Docker tests and the VM labs each need both cores.
mapfile -t all < <(go list ./...)
unit=() e2e=()
for p in "${all[@]}"; do
	case $p in
	*/e2e | */e2e/*) e2e+=("$p") ;;
	*) unit+=("$p") ;;
	esac
done

rc=0
if ((${#unit[@]} > 0)); then
	log "go test (${#unit[@]} packages)"
	go test -count=1 -timeout 20m "$@" "${unit[@]}" || rc=1
fi
# Fuzzing: `go test` above ran every fuzz target's seeds (the recorded tool
# outputs among them) and the inputs a fuzz run found failing, kept under
# testdata/fuzz as regular cases. Here each target fuzzes for a while:
# RELOCVOL_FUZZTIME (a go test -fuzztime, default 3s; e.g. 10m on demand).
# With go test flags given (scripts/test.sh -run TestX) it runs only if
# RELOCVOL_FUZZTIME is set.
if (($# == 0)) || [[ -n ${RELOCVOL_FUZZTIME:-} ]]; then
	fuzztime=${RELOCVOL_FUZZTIME:-3s}
	for p in "${unit[@]}"; do
		mapfile -t targets < <(go test -list '^Fuzz' "$p" | grep '^Fuzz' || true)
		for f in "${targets[@]}"; do
			log "go test -fuzz $f -fuzztime $fuzztime $p"
			go test -run '^$' -fuzz "^$f\$" -fuzztime "$fuzztime" "$p" | grep -v '^fuzz: elapsed' || rc=1
		done
	done
fi
if ((${#e2e[@]} > 0)); then
	log "go test -v (e2e: ${e2e[*]})"
	e2e_log=$(mktemp)
	trap 'rm -f "$e2e_log"' EXIT
	go test -count=1 -p 1 -timeout 40m -v "$@" "${e2e[@]}" | tee "$e2e_log" || rc=1
	# The fault scenarios' figures (RELIABILITY.md's table, which
	# scripts/reliability.sh writes), gathered here for the log.
	if rows=$(reliability_rows "$e2e_log") && [[ -n $rows ]]; then
		log "reliability figures of this run (scenario | cycles | passed | lines lost | two-writer moments | worst recovery):"
		echo "$rows"
	fi
	if ((rc != 0)); then
		log "the failing tests' last lines (their full output is above):"
		failure_tails "$e2e_log"
	fi
fi
if ((rc != 0)); then
	log "FAILED after $((SECONDS - start))s"
	exit 1
fi
log "all tests passed in $((SECONDS - start))s"
