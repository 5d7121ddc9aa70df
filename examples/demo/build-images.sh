#!/usr/bin/env bash
# Builds the demo's images without a registry: a base root filesystem from
# Debian packages (debootstrap + docker import, cached), then one app image per
# release on top of it (rebuilt only when the app's source changed).
#   build-images.sh            base image, then lowspec-demo:{v1,v2,broken}
# Environment: DEMO_BASE_IMAGE, DEMO_IMAGE, DEBIAN_MIRROR, BUILD_DIR.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
base_image=${DEMO_BASE_IMAGE:-lowspec-demo-base:bookworm}
app_image=${DEMO_IMAGE:-lowspec-demo}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
build_dir=${BUILD_DIR:-$here/../../.build}
packages=python3,python3-celery,python3-redis,python3-flask,gunicorn,redis-server,redis-tools,curl,procps

say() { printf '==> %s\n' "$*"; }

if docker image inspect "$base_image" >/dev/null 2>&1; then
    say "base image $base_image present (cached)"
else
    command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
    rootfs=$(mktemp -d "${TMPDIR:-/tmp}/lowspec-rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    say "building base image $base_image with debootstrap (about a minute)"
    debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" \
        >"$build_dir/debootstrap.log" 2>&1 || {
        echo "debootstrap failed; last lines of $build_dir/debootstrap.log:" >&2
        tail -20 "$build_dir/debootstrap.log" >&2
        exit 1
    }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'ENV LANG=C.UTF-8' - "$base_image" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
fi

# The app image records a hash of its sources; an unchanged one is not rebuilt.
source_hash=$(cd "$here" && find Dockerfile app -type f ! -name '*.pyc' -print0 | sort -z \
    | xargs -0 sha256sum | sha256sum | cut -c1-16)
build_release() {
    local release=$1 broken=$2 tag="$app_image:$1" have
    have=$(docker image inspect -f '{{ index .Config.Labels "io.lowspec.demo.source-hash" }}' "$tag" 2>/dev/null || true)
    if [ "$have" = "$source_hash" ]; then
        say "image $tag up to date (cached)"
        return
    fi
    say "building image $tag"
    docker build -q --build-arg "BASE_IMAGE=$base_image" --build-arg "RELEASE=$release" \
        --build-arg "BROKEN=$broken" --build-arg "SOURCE_HASH=$source_hash" \
        -t "$tag" "$here" >"$build_dir/docker-build-$release.log" 2>&1 \
        || { tail -20 "$build_dir/docker-build-$release.log" >&2; exit 1; }
}
build_release v1 0
build_release v2 0
build_release broken 1
