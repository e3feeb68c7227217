#!/usr/bin/env bash
# scripts/vmlab/lab.sh: runs the VM lab: a "san" VM exporting one LUN over
# iSCSI (LIO) and host VMs (hostA, hostB) logged into it with open-iscsi,
# each its own qemu (TCG) with its own kernel. Run as root.
#
#   lab.sh start          build images if needed (build.sh), fresh disks, boot
#                         all VMs, wait until each answers on ssh and every
#                         host sees the LUN; prints the ports
#   lab.sh stop           stop every VM of the lab (disks and logs stay)
#   lab.sh clean          stop, then remove the lab's folder
#   lab.sh status         state, pid and ssh port of each VM
#   lab.sh ssh NAME [CMD...]     run CMD (or a shell) on VM NAME as root
#   lab.sh copy NAME LOCAL REMOTE  copy a file into VM NAME (scp)
#   lab.sh kill NAME      power loss: SIGKILL its qemu (its disk stays)
#   lab.sh boot [--hold-docker] NAME   start VM NAME again on its disk and
#                         wait until ready; --hold-docker: a host VM does not
#                         start Docker (relocvol-docker start in it does)
#   lab.sh wait NAME      wait until VM NAME is ready
#   lab.sh log NAME       its serial console (every boot, appended)
#   lab.sh env            the lab's settings (ports, key) as shell variables
#
# With RELOCVOL_VMLAB_OWNER_PID=PID, start also leaves a watcher that stops
# the lab when process PID ends (and removes the lab's folder too with
# RELOCVOL_VMLAB_OWNER_CLEAN=1): the Go harness sets both.
#
# The lab lives in $RELOCVOL_VMLAB_RUN (/run/relocvol-vmlab): NAME.qcow2
# (overlay on the base image), NAME.pid, NAME.log (serial console),
# san-lun.img (the LUN's data, sparse), lab.env. Ports are on 127.0.0.1 only:
# ssh of VM NAME is forwarded from SSH_PORT_<NAME> (see `lab.sh env`).
# Inside a VM, 10.0.2.2 is the physical machine's 127.0.0.1 (qemu user
# network): an etcd listening there is reachable at 10.0.2.2:PORT.
# Hosts reach the san VM over private point-to-point links (qemu dgram
# sockets on 127.0.0.1), RELOCVOL_VMLAB_PATHS (P) of them per host: link
# L = (i-1)*P+p is path p of host number i, where the host is
# 192.168.(100+L).(10+i) and the san VM 192.168.(100+L).1, a portal of its
# target. With one path the LUN is /dev/disk/by-path/ip-...-lun-0; with more,
# the dm-multipath map over them (/dev/mapper/mpatha). Its device path is in
# /run/relocvol/lun on each host, the path devices in /run/relocvol/paths.
#
# Knobs: see common.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ENVFILE=$VMLAB_RUN/lab.env

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

# load_env: the settings of the lab in $VMLAB_RUN (written by start).
load_env() {
	[[ -f $ENVFILE ]] || die "no lab in $VMLAB_RUN: run $0 start"
	# shellcheck disable=SC1090
	. "$ENVFILE"
	VMLAB_HOSTS=$LAB_HOSTS
	VMLAB_MEM=${LAB_MEM:-$VMLAB_MEM}
	VMLAB_DOCKER=${LAB_DOCKER:-off}
	VMLAB_PATHS=${LAB_PATHS:-1}
}

# vm_index NAME: 1 for the san VM, 10+i for host number i (1-based).
vm_index() {
	[[ $1 == san ]] && {
		echo 1
		return
	}
	local i=0 h
	for h in $VMLAB_HOSTS; do
		i=$((i + 1))
		[[ $h == "$1" ]] && {
			echo $((10 + i))
			return
		}
	done
	die "no VM named $1 in this lab (san $VMLAB_HOSTS)"
}

ssh_port() { echo $((LAB_PORT_BASE + $(vm_index "$1"))); }

pid_of() {
	local f=$VMLAB_RUN/$1.pid pid
	[[ -f $f ]] || return 1
	pid=$(cat "$f")
	[[ -n $pid && -d /proc/$pid ]] && grep -q qemu "/proc/$pid/comm" 2>/dev/null || return 1
	echo "$pid"
}

running() { pid_of "$1" >/dev/null; }

# port_free PORT: whether nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port_base: a base above which the lab's ports are free: ssh ports
# base+1 (san) and base+10+i (host i), UDP ports of the SAN links base+50+2L
# (san's end) and base+51+2L (the host's end of link L).
pick_port_base() {
	local base p ok tries=0
	if [[ -n ${RELOCVOL_VMLAB_PORT_BASE:-} ]]; then
		echo "$RELOCVOL_VMLAB_PORT_BASE"
		return
	fi
	while ((tries++ < 50)); do
		# Below Linux's ephemeral ports (32768-60999), which any outgoing
		# connection may take between this check and qemu's bind.
		base=$((20000 + (RANDOM % 127) * 100))
		ok=1
		for p in $(seq "$base" $((base + 99))); do
			port_free "$p" || {
				ok=0
				break
			}
		done
		((ok)) && {
			echo "$base"
			return
		}
	done
	die "no free range of 100 ports on 127.0.0.1: set RELOCVOL_VMLAB_PORT_BASE"
}

# start_vm NAME [DOCKER]: starts VM NAME's qemu in the background on its
# disk; a host VM starts Docker at boot as DOCKER says (on, off, hold;
# default the lab's).
start_vm() {
	local name=$1 docker=${2:-$VMLAB_DOCKER} idx role link netdevs=() i disks=() append
	running "$name" && die "$name is already running (pid $(pid_of "$name"))"
	idx=$(vm_index "$name")
	local mac_idx
	mac_idx=$(printf '%02x' "$idx")
	local p l nhosts
	nhosts=$(wc -w <<<"$VMLAB_HOSTS")
	if [[ $name == san ]]; then
		role=san
		for l in $(seq $((nhosts * VMLAB_PATHS))); do
			link=$(printf '%02x' "$l")
			netdevs+=(-netdev "dgram,id=link$l,local.type=inet,local.host=127.0.0.1,local.port=$((LAB_PORT_BASE + 50 + 2 * l)),remote.type=inet,remote.host=127.0.0.1,remote.port=$((LAB_PORT_BASE + 51 + 2 * l))"
				-device "virtio-net-pci,netdev=link$l,mac=52:54:00:ab:$link:$mac_idx")
		done
		disks+=(-drive "file=$VMLAB_RUN/san-lun.img,format=raw,if=virtio,cache=unsafe,aio=threads")
	else
		role=host
		i=$((idx - 10))
		for p in $(seq "$VMLAB_PATHS"); do
			l=$(((i - 1) * VMLAB_PATHS + p))
			link=$(printf '%02x' "$l")
			netdevs+=(-netdev "dgram,id=link$l,local.type=inet,local.host=127.0.0.1,local.port=$((LAB_PORT_BASE + 51 + 2 * l)),remote.type=inet,remote.host=127.0.0.1,remote.port=$((LAB_PORT_BASE + 50 + 2 * l))"
				-device "virtio-net-pci,netdev=link$l,mac=52:54:00:ab:$link:$mac_idx")
		done
	fi
	append="console=ttyS0 root=/dev/vda rw panic=1 net.ifnames=0 quiet loglevel=4"
	append+=" relocvol.role=$role relocvol.name=$name relocvol.hosts=$(tr ' ' , <<<"$VMLAB_HOSTS") relocvol.docker=$docker relocvol.paths=$VMLAB_PATHS"
	printf '\n===== %s: boot of %s =====\n' "$(date '+%F %T')" "$name" >>"$VMLAB_RUN/$name.log"
	if ! qemu-system-x86_64 -name "relocvol-vmlab-$name" -accel "$VMLAB_ACCEL" -smp 1 -m "$VMLAB_MEM" \
		-display none -no-reboot -monitor none \
		-chardev "file,id=console,path=$VMLAB_RUN/$name.log,append=on" -serial chardev:console \
		-kernel "$VMLAB_KERNEL" -initrd "$VMLAB_INITRD" -append "$append" \
		-drive "file=$VMLAB_RUN/$name.qcow2,format=qcow2,if=virtio" "${disks[@]}" \
		-netdev "user,id=user,hostfwd=tcp:127.0.0.1:$(ssh_port "$name")-:22" \
		-device "virtio-net-pci,netdev=user,mac=52:54:00:ab:00:$mac_idx" \
		"${netdevs[@]}" -device virtio-rng-pci \
		-pidfile "$VMLAB_RUN/$name.pid" -daemonize </dev/null >"$VMLAB_RUN/$name.qemu.log" 2>&1 8>&-; then
		cat "$VMLAB_RUN/$name.qemu.log" >&2
		die "qemu of $name did not start"
	fi
	log "started $name (pid $(cat "$VMLAB_RUN/$name.pid"), ssh port $(ssh_port "$name"))"
}

# vssh NAME [CMD...]: ssh to VM NAME as root; vssh_t SECONDS NAME CMD...:
# the same, killed after SECONDS.
vssh() { vssh_t 0 "$@"; }
vssh_t() {
	local secs=$1 name=$2 opts
	shift 2
	mapfile -t opts < <(vmlab_ssh_opts)
	if ((secs == 0)); then
		# Interactive use: timeout(1) would take the terminal from ssh.
		(($# == 0)) && [[ -t 0 ]] && opts+=(-t)
		ssh "${opts[@]}" -p "$(ssh_port "$name")" root@127.0.0.1 "$@"
		return
	fi
	timeout "$secs" ssh "${opts[@]}" -p "$(ssh_port "$name")" root@127.0.0.1 "$@"
}

# wait_vm NAME: until it answers on ssh and its role script is done
# (/run/relocvol/ready: the san exports its LUN, a host sees it).
wait_vm() {
	local name=$1 deadline=$((SECONDS + VMLAB_BOOT_TIMEOUT)) t0=$SECONDS
	while :; do
		if ! running "$name"; then
			tail -n 30 "$VMLAB_RUN/$name.log" >&2 || true
			die "$name stopped while booting (its console: $VMLAB_RUN/$name.log)"
		fi
		if vssh_t 20 "$name" test -f /run/relocvol/ready </dev/null >/dev/null 2>&1; then
			log "$name is ready after $((SECONDS - t0))s"
			return 0
		fi
		if ((SECONDS >= deadline)); then
			tail -n 30 "$VMLAB_RUN/$name.log" >&2 || true
			die "$name not ready within ${VMLAB_BOOT_TIMEOUT}s (its console: $VMLAB_RUN/$name.log)"
		fi
		sleep 1
	done
}

# kill_vm NAME: SIGKILL, as a power loss; waits (bounded) until it is gone.
kill_vm() {
	local name=$1 pid deadline=$((SECONDS + 20))
	pid=$(pid_of "$name") || return 0
	kill -KILL "$pid" 2>/dev/null || true
	while [[ -d /proc/$pid ]]; do
		((SECONDS < deadline)) || die "qemu of $name (pid $pid) does not die"
		sleep 0.2
	done
	rm -f "$VMLAB_RUN/$name.pid"
	log "killed $name (pid $pid)"
}

# stop_vm NAME: a tidy stop: sync the guest's disks (bounded), then SIGTERM
# (qemu flushes its images), SIGKILL after 10s.
stop_vm() {
	local name=$1 pid deadline
	pid=$(pid_of "$name") || return 0
	vssh_t 10 "$name" sync </dev/null >/dev/null 2>&1 || true
	kill -TERM "$pid" 2>/dev/null || true
	deadline=$((SECONDS + 10))
	while [[ -d /proc/$pid ]] && ((SECONDS < deadline)); do sleep 0.2; done
	[[ -d /proc/$pid ]] && kill_vm "$name"
	rm -f "$VMLAB_RUN/$name.pid"
	log "stopped $name"
}

# all_vms: san, then the hosts, as words.
# shellcheck disable=SC2086 # split on purpose
all_vms() { echo san $VMLAB_HOSTS; }

cmd_start() {
	require_root
	bash "$VMLAB_DIR/build.sh"
	mkdir -p "$VMLAB_RUN"
	if [[ -f $ENVFILE ]]; then
		(
			load_env
			for vm in $(all_vms); do
				running "$vm" && die "a lab already runs in $VMLAB_RUN ($vm): $0 stop first"
			done
		) || exit 1
	fi
	rm -f "$VMLAB_RUN"/*.qcow2 "$VMLAB_RUN"/*.pid "$VMLAB_RUN"/*.log "$VMLAB_RUN/san-lun.img"
	# Labs starting at once must not pick the same ports: one at a time from
	# the pick until their qemus listen.
	exec 8>"$VMLAB_CACHE/.ports.lock"
	flock 8
	LAB_PORT_BASE=$(pick_port_base)
	LAB_HOSTS=$VMLAB_HOSTS
	local vm start=$SECONDS
	for vm in $(all_vms); do
		qemu-img create -q -f qcow2 -b "$VMLAB_BASE" -F raw "$VMLAB_RUN/$vm.qcow2"
	done
	truncate -s "$VMLAB_LUN_SIZE" "$VMLAB_RUN/san-lun.img"
	{
		echo "# VM lab in $VMLAB_RUN, started $(date '+%F %T')"
		echo "LAB_PORT_BASE=$LAB_PORT_BASE"
		echo "LAB_HOSTS='$LAB_HOSTS'"
		echo "LAB_MEM=$VMLAB_MEM"
		echo "LAB_DOCKER=$VMLAB_DOCKER"
		echo "LAB_PATHS=$VMLAB_PATHS"
		echo "LAB_KEY=$VMLAB_KEY"
		for vm in $(all_vms); do echo "SSH_PORT_$vm=$(ssh_port "$vm")"; done
	} >"$ENVFILE"
	if [[ -n ${RELOCVOL_VMLAB_OWNER_PID:-} ]]; then
		# Stops the lab when its owner (a test process) dies without
		# stopping it, e.g. killed by go test -timeout.
		setsid nohup bash "$VMLAB_DIR/lab.sh" watch "$RELOCVOL_VMLAB_OWNER_PID" \
			</dev/null >>"$VMLAB_RUN/watch.log" 2>&1 8>&- &
	fi
	for vm in $(all_vms); do start_vm "$vm"; done
	exec 8>&-
	for vm in $(all_vms); do wait_vm "$vm"; done
	log "lab ready in $((SECONDS - start))s ($VMLAB_RUN)"
	cmd_status
}

cmd_status() {
	load_env
	local vm
	printf '%-8s %-8s %-8s %s\n' NAME STATE PID SSH
	for vm in $(all_vms); do
		if running "$vm"; then
			printf '%-8s %-8s %-8s ssh -i %s -p %s root@127.0.0.1\n' "$vm" running "$(pid_of "$vm")" "$VMLAB_KEY" "$(ssh_port "$vm")"
		else
			printf '%-8s %-8s %-8s -\n' "$vm" stopped -
		fi
	done
}

cmd=${1:-}
[[ -n $cmd ]] || usage
shift
case $cmd in
start) cmd_start ;;
stop | clean)
	if [[ -f $ENVFILE ]]; then
		load_env
		for vm in $(all_vms); do stop_vm "$vm"; done
	fi
	if [[ $cmd == clean ]]; then
		rm -rf "$VMLAB_RUN"
		log "removed $VMLAB_RUN"
	fi
	;;
status) cmd_status ;;
ssh)
	(($# >= 1)) || usage
	load_env
	vssh "$@"
	;;
copy)
	(($# == 3)) || usage
	load_env
	mapfile -t opts < <(vmlab_ssh_opts)
	scp -q "${opts[@]}" -P "$(ssh_port "$1")" "$2" "root@127.0.0.1:$3"
	;;
kill)
	(($# == 1)) || usage
	load_env
	vm_index "$1" >/dev/null
	kill_vm "$1"
	;;
boot)
	docker=""
	if [[ ${1:-} == --hold-docker ]]; then
		docker=hold
		shift
	fi
	(($# == 1)) || usage
	load_env
	[[ -f $VMLAB_RUN/$1.qcow2 ]] || die "no disk for $1 in $VMLAB_RUN"
	start_vm "$1" "$docker"
	wait_vm "$1"
	;;
wait)
	(($# == 1)) || usage
	load_env
	wait_vm "$1"
	;;
log)
	(($# == 1)) || usage
	load_env
	cat "$VMLAB_RUN/$1.log"
	;;
env)
	load_env
	cat "$ENVFILE"
	;;
watch)
	# Internal (start runs it): waits for process $1 to end, then stops the
	# lab and, with RELOCVOL_VMLAB_OWNER_CLEAN=1, removes its folder. Ends
	# by itself when the lab is removed.
	(($# == 1)) || usage
	while [[ -f $ENVFILE ]] && kill -0 "$1" 2>/dev/null; do sleep 2; done
	if [[ -f $ENVFILE ]]; then
		log "process $1 that owns the lab is gone: stopping the lab"
		load_env
		for vm in $(all_vms); do stop_vm "$vm"; done
		if [[ ${RELOCVOL_VMLAB_OWNER_CLEAN:-0} == 1 ]]; then
			rm -rf "$VMLAB_RUN"
		fi
	fi
	;;
*) usage ;;
esac
