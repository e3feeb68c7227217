#!/usr/bin/env bash
# scripts/bench.sh: the benchmarks of BENCHMARKS.md's "At scale and side by
# side" section, in one command; each item also on its own:
#
#   scripts/bench.sh [--full] [ITEM...]     (as root; default: every item)
#
#   plan        controller.Plan for 10,000 volumes / 500 hosts / 50 dead and
#               100,000 / 2,000 / 200 (Go benchmark, allocations), and the
#               leader's whole pass for a dead host with 1,000 volumes on
#               an etcd that fsyncs (lease gone → every claim released)
#   metadata    the plugin's List (from its cache and from etcd) and Get
#               with 1,000 and 10,000 volume records in a real etcd
#               (--full: 100,000 too)
#   docker-run  `docker run --rm -v VOL:/data` on a relocvol volume (the
#               managed plugin, loop) against a local volume on an ext4
#               loop device, alternating (20 pairs; --full: 50), and the
#               plugin's Mount steps
#   volume-ls   `docker volume ls` with 1,000 relocvol volumes against 1,000
#               local ones (--full: 10,000 each), the rate of `docker
#               volume create` of each, the plugin's memory
#   at-rest     a host with 100 volumes mounted by idle containers, for a
#               minute: etcd requests per second and the plugin's CPU
#   failover    a host's power loss with 1, 10 and 50 apps on it, three
#               docker-in-docker hosts: until every app runs elsewhere,
#               and where the time goes (3 times each, the median; --full: 5)
#   move        planned moves of one app back and forth (10; the median),
#               then ten apps moved at once
#
# plan and metadata run 5 times (-count 5), the table shows the median of
# the runs (failover 3); docker-run and move the median of their rounds. Each
# item's table replaces its previous one in BENCHMARKS.md, with the date,
# the machine and the command.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

full=
items=()
for a in "$@"; do
	case $a in
	--full) full=1 ;;
	plan | metadata | docker-run | volume-ls | at-rest | failover | move) items+=("$a") ;;
	-h | --help)
		sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown item $a: give plan, metadata, docker-run, volume-ls, at-rest, failover or move (or none for all), and --full for the full sizes" ;;
	esac
done
((${#items[@]} > 0)) || items=(plan metadata docker-run volume-ls at-rest failover move)

ensure_all
export RELOCVOL_REPO CGO_ENABLED=0
[[ -n $full ]] && export RELOCVOL_BENCH_FULL=1 RELOCVOL_BENCH_VOLUMES=10000
cd "$RELOCVOL_REPO"

# medians reads `go test -bench` output and prints one markdown row per
# benchmark: its name and the median of each of its figures over the runs
# (ns/op shown in ms).
medians() {
	awk '
	function median(s,    a, n, i, j, t) {
		n = split(s, a, " ")
		for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
		return a[int((n + 1) / 2)]
	}
	/^Benchmark/ {
		name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
		if (!(name in seen)) { seen[name] = 1; order[++names] = name }
		for (i = 3; i < NF; i += 2) {
			k = name SUBSEP $(i + 1)
			if (!(k in vals)) units[name] = units[name] " " $(i + 1)
			vals[k] = vals[k] " " $i
		}
	}
	END {
		for (x = 1; x <= names; x++) {
			name = order[x]; row = "| `" name "` |"
			n = split(units[name], u, " ")
			for (i = 1; i <= n; i++) {
				m = median(vals[name SUBSEP u[i]])
				if (u[i] == "ns/op") row = row sprintf(" %.2f ms/op", m / 1e6)
				else if (u[i] == "B/op") row = row sprintf(" %.1f MB/op", m / 1048576)
				else row = row sprintf(" %g %s", m, u[i])
				row = row (i < n ? "," : "")
			}
			print row " |"
		}
	}'
}

# section ITEM FILE replaces ITEM's table in BENCHMARKS.md (between its
# markers, appended at the end the first time) with FILE.
section() {
	local begin="<!-- bench.sh:$1 -->" end="<!-- /bench.sh:$1 -->" md=$RELOCVOL_REPO/BENCHMARKS.md
	grep -qF "$begin" "$md" || printf '\n%s\n%s\n' "$begin" "$end" >>"$md"
	awk -v b="$begin" -v e="$end" -v f="$2" '
		$0 == b { print; while ((getline line < f) > 0) print line; skip = 1; next }
		$0 == e { skip = 0 }
		!skip' "$md" >"$md.new"
	mv "$md.new" "$md"
}

machine="$(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo)"
bench() { # ITEM TITLE COMMAND...
	local item=$1 title=$2 out table
	shift 2
	log "$item: $*"
	out=$(mktemp) table=$(mktemp)
	"$@" 2>&1 | tee "$out" >&2 || die "$item: the benchmark failed (its output above)"
	{
		echo "**$title** — \`scripts/bench.sh${full:+ --full} $item\` on $(date -u +%Y-%m-%d), $machine: \`$*\`"
		echo
		echo "| benchmark | median of the runs |"
		echo "|---|---|"
		medians <"$out"
	} >"$table"
	grep -q '^| `' "$table" || die "$item: no benchmark result in its output (above)"
	section "$item" "$table"
	cat "$table" >&2
	rm -f "$out" "$table"
}

for item in "${items[@]}"; do
	case $item in
	plan) bench plan "The failover plan, and the leader's whole pass for a dead host with 1,000 volumes" \
		bash -c "go test -run '^\$' -bench '^BenchmarkPlan\$' -benchmem -count 5 ./controller && go test -run '^\$' -bench '^BenchmarkLeaderPass\$' -benchtime 1x -count 5 ./controller" ;;
	metadata) bench metadata "Volume metadata: List and Get" go test -run '^$' -bench '^Benchmark(List|Get)$' -benchmem -count 5 -timeout 60m ./plugin ;;
	docker-run) bench docker-run "Mount + Unmount through Docker: relocvol against the local driver" \
		go test -run '^$' -bench '^BenchmarkDockerRun$' -benchtime "$([[ -n $full ]] && echo 50x || echo 20x)" -count 1 -timeout 30m ./e2e ;;
	volume-ls) bench volume-ls "docker volume ls: relocvol against the local driver" \
		go test -run '^$' -bench '^BenchmarkVolumeLs$' -benchtime 10x -count 1 -timeout 60m ./e2e ;;
	at-rest) bench at-rest "A host at rest: 100 volumes mounted by idle containers" \
		go test -run '^$' -bench '^BenchmarkAtRest$' -benchtime 1x -count 1 -timeout 30m ./e2e ;;
	failover) bench failover "Failover of a host with many apps (docker-in-docker, loop, lease TTL 5 s)" \
		go test -run '^$' -bench '^BenchmarkFailoverMany$' -benchtime 1x -count "$([[ -n $full ]] && echo 5 || echo 3)" -timeout 60m ./e2e/cluster ;;
	move) bench move "Planned moves (docker-in-docker, loop)" go test -run '^$' -bench '^BenchmarkMove$' -benchtime 10x -count 1 -timeout 30m ./e2e/cluster ;;
	esac
done
log "BENCHMARKS.md updated (${items[*]})"
