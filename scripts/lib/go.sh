# shellcheck shell=bash
# scripts/lib/go.sh: the Go toolchain (part of scripts/lib.sh, which sources it).

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
