# relocvol's managed-plugin root filesystem.
#
# scripts/build-plugin.sh builds this image, exports its filesystem as the
# plugin's rootfs and adds config.json. Nothing is pulled when the two base
# images exist locally (scripts/lib.sh ensure_base_images makes them offline);
# only the Go stages need the Go module proxy, hence the build args and
# `docker build --network host`.

ARG GO_IMAGE=golang:1.26-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

# Modules, downloaded once per go.sum.
FROM ${GO_IMAGE} AS mods
# build-plugin.sh tags the build stage (keeping these layers cached) and
# prunes the untagged leftovers of earlier builds by this label.
LABEL io.relocvol.stage=build
ARG GOPROXY=https://proxy.golang.org,direct
ARG GOFLAGS=
ARG GOSUMDB=
# auto: an older builder image fetches the toolchain go.mod asks for.
ENV CGO_ENABLED=0 GOTOOLCHAIN=auto GOPROXY=${GOPROXY} GOFLAGS=${GOFLAGS}
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download

# The list of non-project packages the binary imports: while it does not
# change, the next stage's compiled dependencies stay cached.
FROM mods AS deps
COPY . .
RUN go list -deps -f '{{if and (not .Standard) .Module}}{{if not .Module.Main}}{{.ImportPath}}{{end}}{{end}}' \
        ./cmd/relocvol | sort >/deps.txt

FROM mods AS build
COPY --from=deps /deps.txt /deps.txt
# Same flags as the real build, so that it hits this cache.
RUN if [ -s /deps.txt ]; then xargs go build -trimpath </deps.txt; fi
COPY . .
# The binary's version (relocvol --version) and build tags (none in a
# release; the crash tests build with `failpoints`): declared here, so that
# only this step depends on them and the compiled dependencies above stay
# cached.
ARG VERSION=dev
ARG GO_TAGS=
RUN mkdir -p /out \
    && go build -trimpath -buildvcs=false -tags "${GO_TAGS}" -ldflags="-s -w -X main.version=${VERSION}" \
        -o /out/relocvol ./cmd/relocvol

# The tools, installed on Debian, from which the plugin's rootfs is cut.
FROM ${BASE_IMAGE} AS tools
# What the backends and fencing run (their Tools lists; the e2e test
# TestManagedPlugin checks the built rootfs for each). The base made by
# ensure_base_images already holds them, so this step needs no network there;
# on a stock debian:bookworm-slim it installs them, with a policy-rc.d that
# keeps the packages' maintainer scripts from starting daemons (multipathd,
# dmeventd, lvmpolld) in the build; one the image had already is kept.
RUN if command -v losetup && command -v mount && command -v mkfs.ext4 && command -v mkfs.xfs \
        && command -v lvm && command -v sg_persist && command -v mpathpersist \
        && [ -e /etc/ssl/certs/ca-certificates.crt ]; then :; \
    else own_policy=; \
        if [ ! -e /usr/sbin/policy-rc.d ]; then \
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d && own_policy=1; \
        fi \
        && apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            util-linux mount e2fsprogs xfsprogs lvm2 sg3-utils multipath-tools ca-certificates \
        && rm -rf /var/lib/apt/lists/* \
        && if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
    fi >/dev/null
# Only those commands, their libraries and the files they read (a tenth of
# the Debian tree: the plugin installs that much faster); sh for a look.
COPY scripts/plugin-rootfs.sh /usr/local/bin/plugin-rootfs.sh
RUN bash /usr/local/bin/plugin-rootfs.sh /rootfs \
        lvs lvcreate lvchange lvextend lvremove vgs vgchange pvs lvmconfig pvcreate pvremove pvscan vgextend dmsetup \
        sg_persist mpathpersist multipathd \
        mkfs.ext4 mkfs.xfs resize2fs e2fsck xfs_growfs mount umount losetup \
        sh

FROM scratch
COPY --from=tools /rootfs/ /
COPY --from=build /out/relocvol /usr/bin/relocvol
ENTRYPOINT ["/usr/bin/relocvol", "plugin"]
