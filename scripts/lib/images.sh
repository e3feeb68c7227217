# shellcheck shell=bash
# scripts/lib/images.sh: the base and node images, made offline with
# debootstrap when no registry answers (part of scripts/lib.sh, which sources
# it).

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
