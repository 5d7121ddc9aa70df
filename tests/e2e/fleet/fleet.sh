#!/usr/bin/env bash
# A fleet of test hosts on this one machine, for the molecule scenarios and the
# fleet benchmark. Each test host is a network namespace with its own address on
# a private bridge, its own sshd (Ansible connects over real SSH with a generated
# key), its own Docker daemon (own data root and socket) with the demo images
# loaded, its own nginx and the demo's shared Redis.
#
#   fleet.sh up N      hosts pi5-1 .. pi5-N up (idempotent; extra hosts removed);
#                      writes the inventory $FLEET_DIR/inventory.yml (group pi5)
#   fleet.sh down      everything removed: namespaces, veths, bridge, daemons,
#                      containers, mounts, data (idempotent, safe to run twice)
#   fleet.sh status    what is up
#   fleet.sh shell H [CMD...]   a command (default: bash) inside host H's namespace
#   fleet.sh docker H stop|start   faults: H's Docker daemon stopped as by its service
#                      manager (SIGTERM: it stops its containers; returns once it is
#                      gone), or started again (returns once it answers)
#   fleet.sh link H down|up        faults: H's link to the bridge cut (H unreachable,
#                      its processes keep running) or restored
#
# A failed `up` tears the whole fleet down before it exits. Needs root, iproute2,
# nsenter, sshd, nginx and the demo images on the main daemon (scripts/setup.sh).
# Test traffic goes only to 127.0.0.0/8 and to the test hosts' own addresses
# (10.213.0.0/24 by default, on the bridge lsbg0).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/scripts/lib.sh"

FLEET_DIR=${LOWSPEC_FLEET_DIR:-$BUILD/fleet}
RUN_DIR=${LOWSPEC_FLEET_RUN_DIR:-/run/lowspec-fleet}  # exec roots and sockets: short paths
NET=${LOWSPEC_FLEET_NET:-10.213.0}                      # the test hosts' /24
BRIDGE=lsbg0
NS_PREFIX=lsbg-
HOST_PREFIX=pi5-
MAX_HOSTS=40
IMAGES=(lowspec-demo:v1 lowspec-demo:v2 lowspec-demo:broken lowspec-demo-base:bookworm)
APP=demo
NGINX_PORT=18080
REDIS_PORT=16379
DEMO_DIR=$ROOT/examples/demo
PATH="$PATH:/usr/sbin:/sbin"

log() { printf '[fleet] %s\n' "$*" >&2; }

host_name() { echo "$HOST_PREFIX$1"; }
host_index() { echo "${1#"$HOST_PREFIX"}"; }
ns_name() { echo "$NS_PREFIX$1"; }
host_addr() { echo "$NET.$((10 + $(host_index "$1")))"; }
host_dir() { echo "$FLEET_DIR/hosts/$1"; }
host_run() { echo "$RUN_DIR/$1"; }
host_sock() { echo "$(host_run "$1")/docker.sock"; }
in_ns() { local h=$1; shift; nsenter --net="/var/run/netns/$(ns_name "$h")" "$@"; }
hdocker() { local h=$1; shift; DOCKER_HOST="unix://$(host_sock "$h")" docker "$@"; }
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Hosts that exist in any form (namespace, directory), sorted by index.
known_hosts() {
    {
        ip netns list 2>/dev/null | awk '{print $1}' | sed -n "s/^$NS_PREFIX//p"
        [ -d "$FLEET_DIR/hosts" ] && ls "$FLEET_DIR/hosts"
        [ -d "$RUN_DIR" ] && ls "$RUN_DIR"
    } | grep -E "^$HOST_PREFIX[0-9]+$" | sort -u -t- -k2,2n || true
}

# ---------------------------------------------------------------- up

preflight() {
    [ "$(id -u)" -eq 0 ] || die "fleet.sh needs root (network namespaces, daemons)"
    local cmd
    for cmd in ip nsenter sshd ssh-keygen nginx dockerd docker; do
        command -v "$cmd" >/dev/null || die "$cmd is missing (run scripts/setup.sh)"
    done
    docker compose version >/dev/null 2>&1 || die "docker compose (v2) is missing (run scripts/setup.sh)"
    local image
    for image in "${IMAGES[@]}"; do
        docker image inspect "$image" >/dev/null 2>&1 || die "image $image missing on the main daemon (run scripts/setup.sh)"
    done
}

setup_common() {
    mkdir -p "$FLEET_DIR/hosts" "$RUN_DIR"
    chmod 0755 "$FLEET_DIR"
    # /var/run/netns becomes a mount point on the first `ip netns add`; remember
    # whether it was one before, so that `down` leaves the mounts as it found them.
    if [ ! -f "$FLEET_DIR/netns-premounted" ]; then
        if mountpoint -q /var/run/netns 2>/dev/null; then echo yes; else echo no; fi >"$FLEET_DIR/netns-premounted"
    fi
    [ -f "$FLEET_DIR/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C lowspec-fleet -f "$FLEET_DIR/id_ed25519"
    install -m 0600 "$FLEET_DIR/id_ed25519.pub" "$FLEET_DIR/authorized_keys"
    mkdir -p /run/sshd && chmod 0755 /run/sshd  # sshd's privilege separation directory
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
        ip addr add "$NET.1/24" dev "$BRIDGE"
    fi
    ip link set "$BRIDGE" up
}

# The demo images, saved once from the main daemon (refreshed when their ids change).
save_images() {
    local ids
    ids=$(docker image inspect -f '{{.Id}}' "${IMAGES[@]}" | tr '\n' ' ')
    if [ -f "$FLEET_DIR/images.tar" ] && [ "$(cat "$FLEET_DIR/images.ids" 2>/dev/null)" = "$ids" ]; then
        return
    fi
    log "saving the demo images to $FLEET_DIR/images.tar"
    docker save -o "$FLEET_DIR/images.tar.part" "${IMAGES[@]}"
    mv "$FLEET_DIR/images.tar.part" "$FLEET_DIR/images.tar"
    echo "$ids" >"$FLEET_DIR/images.ids"
}

up_network() {
    local h=$1 ns addr veth peer
    ns=$(ns_name "$h") addr=$(host_addr "$h") veth=lsbg-v$(host_index "$h") peer=lsbg-p$(host_index "$h")
    ip netns list | awk '{print $1}' | grep -qx "$ns" || ip netns add "$ns"
    if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
        ip link del "$veth" 2>/dev/null || true
        ip link add "$veth" type veth peer name "$peer"
        ip link set "$peer" netns "$ns"
        ip -n "$ns" link set "$peer" name eth0
        ip -n "$ns" addr add "$addr/24" dev eth0
        ip link set "$veth" master "$BRIDGE"
    fi
    ip link set "$veth" up
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
}

up_sshd() {
    local h=$1 dir addr
    dir=$(host_dir "$h") addr=$(host_addr "$h")
    pid_alive "$dir/sshd.pid" && return
    [ -f "$dir/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C "$h" -f "$dir/ssh_host_ed25519_key"
    cat >"$dir/sshd_config" <<EOF
# Test host $h: listens only on its own address, key login for root only.
ListenAddress $addr
Port 22
HostKey $dir/ssh_host_ed25519_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $FLEET_DIR/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The generated files live in the checkout, whose parents may be group-writable.
StrictModes no
PrintMotd no
X11Forwarding no
# Ansible opens many sessions at once.
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel ERROR
EOF
    sshd -t -f "$dir/sshd_config" || die "sshd rejected $dir/sshd_config"
    in_ns "$h" "$(command -v sshd)" -f "$dir/sshd_config" -E "$dir/sshd.log"
}

start_dockerd() {
    local h=$1 dir run
    dir=$(host_dir "$h") run=$(host_run "$h")
    if hdocker "$h" version >/dev/null 2>&1; then return; fi
    mkdir -p "$dir/docker" "$run/exec"
    # nsenter --net (not `ip netns exec`, which remounts /sys: "Devices cgroup isn't mounted").
    # Started from a subshell: the daemon is no child of this script (nothing waits for it).
    (setsid nsenter --net="/var/run/netns/$(ns_name "$h")" "$(command -v dockerd)" \
        --data-root "$dir/docker" --exec-root "$run/exec" \
        -H "unix://$(host_sock "$h")" --pidfile "$run/dockerd.pid" \
        --bip "172.29.$(host_index "$h").1/24" --shutdown-timeout 5 \
        >"$dir/dockerd.log" 2>&1 </dev/null &)
}

wait_dockerd() {
    local h=$1 waited=0
    until hdocker "$h" version >/dev/null 2>&1; do
        sleep 0.5; waited=$((waited + 1))
        if [ "$waited" -ge $((DOCKER_WAIT * 2)) ]; then
            tail -5 "$(host_dir "$h")/dockerd.log" >&2 || true
            die "the Docker daemon of $h did not answer within ${DOCKER_WAIT}s"
        fi
    done
}

load_images() {
    local h=$1 image missing=0
    for image in "${IMAGES[@]}"; do
        hdocker "$h" image inspect "$image" >/dev/null 2>&1 || missing=1
    done
    [ "$missing" -eq 0 ] && return
    hdocker "$h" load -q -i "$FLEET_DIR/images.tar" >/dev/null
}

up_nginx() {
    local h=$1 prefix addr
    prefix=$(host_dir "$h")/nginx addr=$(host_addr "$h")
    mkdir -p "$prefix/tmp"
    # The demo's nginx.conf, listening on the host's loopback and on its address.
    sed -e "s/__UPSTREAM_NAME__/${APP}_bluegreen/" \
        -e "s/^\([[:space:]]*\)listen 127.0.0.1:__LISTEN_PORT__;/\1listen 127.0.0.1:$NGINX_PORT;\n\1listen $addr:$NGINX_PORT;/" \
        "$DEMO_DIR/nginx/nginx.conf" >"$prefix/nginx.conf"
    grep -q "listen $addr:$NGINX_PORT;" "$prefix/nginx.conf" || die "could not adapt $DEMO_DIR/nginx/nginx.conf"
    # Before the first deploy nothing answers behind it (502), as on a new host.
    [ -f "$prefix/upstream.conf" ] ||
        printf 'upstream %s_bluegreen {\n    server 127.0.0.1:18001;\n}\n' "$APP" >"$prefix/upstream.conf"
    pid_alive "$prefix/nginx.pid" && return
    in_ns "$h" nginx -p "$prefix" -c nginx.conf -e error.log || die "nginx of $h did not start (see $prefix/error.log)"
}

up_redis() {
    local h=$1
    DOCKER_HOST="unix://$(host_sock "$h")" DEMO_NETWORK=$APP-broker DEMO_REDIS_PORT=$REDIS_PORT \
        docker compose --ansi never -p "$APP-shared" --project-directory "$DEMO_DIR/shared" \
        up --detach --wait --quiet-pull >"$(host_dir "$h")/redis.log" 2>&1 \
        || { tail -5 "$(host_dir "$h")/redis.log" >&2; die "the shared Redis of $h did not start"; }
}

check_host() {
    local h=$1 addr
    addr=$(host_addr "$h")
    ssh -q -i "$FLEET_DIR/id_ed25519" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o ConnectTimeout=5 "root@$addr" true || die "ssh root@$addr ($h) failed"
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$addr:$NGINX_PORT/")" = 502 ] ||
        [ -f "$(host_dir "$h")/state/$APP.json" ] || die "nginx of $h does not answer on $addr:$NGINX_PORT"
}

write_inventory() {
    local n=$1 i h dir python
    python=$VENV/bin/python
    {
        cat <<EOF
---
# Generated by tests/e2e/fleet/fleet.sh up $n: the test hosts of this machine.
# Each host is a network namespace with its own sshd, Docker daemon and nginx.
all:
  children:
    pi5:
      vars:
        ansible_user: root
        ansible_ssh_private_key_file: $FLEET_DIR/id_ed25519
        # ServerAlive*: a host that drops off mid-task is reported unreachable within
        # seconds; without them Ansible waits on the dead connection (seen: until
        # the link came back).
        ansible_ssh_common_args: >-
          -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10
          -o ServerAliveInterval=3 -o ServerAliveCountMax=3
        ansible_ssh_pipelining: true
        # The namespaces share this machine's filesystem: the virtualenv's Python
        # (requests, docker) is the test hosts' Python too.
        ansible_python_interpreter: $python
        bluegreen_app: $APP
        bluegreen_project_src: $DEMO_DIR
        bluegreen_shared_project_src: $DEMO_DIR/shared
        bluegreen_shared_env:
          DEMO_NETWORK: $APP-broker
          DEMO_REDIS_PORT: "$REDIS_PORT"
        bluegreen_env:
          DEMO_NETWORK: $APP-broker
        bluegreen_web_ports:
          blue: 18001
          green: 18002
        bluegreen_celery_app: tasks
        bluegreen_celery_command: [python3, -m, celery]
        bluegreen_drain_timeout: 30
        bluegreen_stop_timeout: 30
        # Short deadlines: the demo's web answers within seconds, so a broken
        # release fails (and is rescued) sooner.
        bluegreen_health_deadline: 20
        bluegreen_start_wait_timeout: 90
        bluegreen_worker_ready_timeout: 90
        bluegreen_verify_gate: "off"
        # The test hosts share this machine's kernel: /proc/pressure is the whole
        # machine's (every test host, every other job). Read, but never blocking.
        bluegreen_pressure_cpu_max: 100
        bluegreen_pressure_memory_max: 100
        bluegreen_pressure_wait: 30
        bluegreen_nginx_upstream_path: "{{ fleet_host_dir }}/nginx/upstream.conf"
        bluegreen_nginx_test_command: [nginx, -p, "{{ fleet_host_dir }}/nginx", -c, nginx.conf, -e, error.log, -t]
        bluegreen_nginx_reload_command: [nginx, -p, "{{ fleet_host_dir }}/nginx", -c, nginx.conf, -e, error.log, -s, reload]
        bluegreen_public_url: "http://{{ ansible_host }}:$NGINX_PORT/health/"
        bluegreen_state_dir: "{{ fleet_host_dir }}/state"
        bluegreen_docker_host: "unix://$RUN_DIR/{{ inventory_hostname }}/docker.sock"
        fleet_host_dir: "$FLEET_DIR/hosts/{{ inventory_hostname }}"
        fleet_nginx_port: $NGINX_PORT
      hosts:
EOF
        for i in $(seq 1 "$n"); do
            h=$(host_name "$i") dir=$(host_dir "$h")
            printf '        %s:\n          ansible_host: %s\n' "$h" "$(host_addr "$h")"
        done
    } >"$FLEET_DIR/inventory.yml.part"
    mv "$FLEET_DIR/inventory.yml.part" "$FLEET_DIR/inventory.yml"
}

up() {
    local n=${1:-3} i h started
    [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le "$MAX_HOSTS" ] || die "usage: fleet.sh up N (1..$MAX_HOSTS)"
    started=$SECONDS
    preflight
    # Any failure (set -e, die, a signal) tears the whole fleet down.
    trap 'status=$?; trap - EXIT; [ $status -eq 0 ] || { log "up failed: tearing the fleet down"; down || true; }; exit $status' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # Hosts beyond N from an earlier `up` go away.
    for h in $(known_hosts); do
        [ "$(host_index "$h")" -le "$n" ] || down_host "$h"
    done
    setup_common
    save_images
    for i in $(seq 1 "$n"); do
        h=$(host_name "$i")
        mkdir -p "$(host_dir "$h")/state" "$(host_run "$h")"
        up_network "$h"
        up_sshd "$h"
        start_dockerd "$h"
    done
    for i in $(seq 1 "$n"); do wait_dockerd "$(host_name "$i")"; done
    # Two loads at a time (two cores).
    local -a loads=()
    for i in $(seq 1 "$n"); do
        load_images "$(host_name "$i")" &
        loads+=($!)
        if [ "${#loads[@]}" -eq 2 ] || [ "$i" -eq "$n" ]; then
            wait "${loads[@]}" || true
            loads=()
        fi
    done
    for i in $(seq 1 "$n"); do
        h=$(host_name "$i")
        load_images "$h"  # fails here (and tears down) if a background load failed
        up_nginx "$h"
        up_redis "$h"
        check_host "$h"
    done
    write_inventory "$n"
    trap - EXIT INT TERM
    log "$n test host(s) up in $((SECONDS - started))s; inventory: $FLEET_DIR/inventory.yml"
}

# ---------------------------------------------------------------- down

# Every process whose network namespace is the host's, and their descendants
# (container processes live in their own namespaces under the containerd shims).
ns_pids() {
    local ns=$1 pids
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ') || true
    [ -n "${pids// /}" ] || return 0
    local all=" $pids " changed=1 pid ppid
    while [ "$changed" -eq 1 ]; do
        changed=0
        while read -r pid ppid; do
            if [[ "$all" == *" $ppid "* ]] && [[ "$all" != *" $pid "* ]]; then
                all="$all$pid "; changed=1
            fi
        done < <(ps -e -o pid=,ppid=)
    done
    echo "$all"
}

wait_gone() {  # wait_gone SECONDS PID... : true when all exited
    local deadline=$((SECONDS + $1)) pid alive
    shift
    while :; do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" -eq 0 ] && return 0
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.2
    done
}

unmount_under() {  # unmount every mount point below a directory, deepest first
    local prefix=$1 mnt
    [ -n "$prefix" ] || return 0
    { awk '{print $5}' /proc/self/mountinfo | grep -E "^$prefix(/|$)" || true; } | sort -r | while read -r mnt; do
        umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
    done
}

down_host() {
    local h=$1 ns dir run pids pid veth id sub
    ns=$(ns_name "$h") dir=$(host_dir "$h") run=$(host_run "$h") veth=lsbg-v$(host_index "$h")
    # Containers first (killed: these hosts are throwaway), then the daemon.
    if [ -S "$(host_sock "$h")" ] && timeout 10 env DOCKER_HOST="unix://$(host_sock "$h")" docker version >/dev/null 2>&1; then
        local ids
        ids=$(hdocker "$h" ps -aq 2>/dev/null || true)
        # shellcheck disable=SC2086
        [ -z "$ids" ] || timeout 60 env DOCKER_HOST="unix://$(host_sock "$h")" docker rm -f $ids >/dev/null 2>&1 || true
    fi
    if pid_alive "$run/dockerd.pid"; then
        pid=$(cat "$run/dockerd.pid")
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone 20 "$pid" || kill -KILL "$pid" 2>/dev/null || true
    fi
    [ -f "$dir/nginx/nginx.pid" ] && kill -QUIT "$(cat "$dir/nginx/nginx.pid")" 2>/dev/null || true
    [ -f "$dir/sshd.pid" ] && kill -TERM "$(cat "$dir/sshd.pid")" 2>/dev/null || true
    # Whatever is left in the namespace (and below it): TERM, then KILL.
    if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
        pids=$(ns_pids "$ns")
        if [ -n "${pids// /}" ]; then
            # shellcheck disable=SC2086
            kill -TERM $pids 2>/dev/null || true
            # shellcheck disable=SC2086
            wait_gone 10 $pids || kill -KILL $pids 2>/dev/null || true
            # shellcheck disable=SC2086
            wait_gone 5 $pids || log "processes of $h still alive: $pids"
        fi
    fi
    unmount_under "$run"
    unmount_under "$dir"
    # Cgroups of containers a killed daemon could not remove (empty directories).
    if [ -d "$dir/docker/containers" ]; then
        for id in $(ls "$dir/docker/containers"); do
            for sub in /sys/fs/cgroup/*/docker/"$id"; do [ -d "$sub" ] && rmdir "$sub" 2>/dev/null || true; done
        done
    fi
    ip netns del "$ns" 2>/dev/null || true
    ip link del "$veth" 2>/dev/null || true
    rm -rf "$run" "$dir"
}

down() {
    local h started=$SECONDS
    local -a jobs=()
    # All hosts at once: most of the time goes to waiting for daemons and to
    # removing each host's Docker data root.
    for h in $(known_hosts); do
        down_host "$h" &
        jobs+=($!)
    done
    [ "${#jobs[@]}" -eq 0 ] || wait "${jobs[@]}" || true
    ip link del "$BRIDGE" 2>/dev/null || true
    # Stray veths of ours (a run killed between `ip link add` and the move).
    local veth
    for veth in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^lsbg-[vp][0-9]+$' || true); do
        ip link del "$veth" 2>/dev/null || true
    done
    # /var/run/netns back to how it was when no namespace is left at all.
    if [ "$(cat "$FLEET_DIR/netns-premounted" 2>/dev/null)" = no ] && [ -z "$(ip netns list 2>/dev/null)" ] &&
        mountpoint -q /var/run/netns 2>/dev/null; then
        umount /var/run/netns 2>/dev/null || true
    fi
    rm -rf "$RUN_DIR" "$FLEET_DIR/hosts" "$FLEET_DIR/netns-premounted"
    # An empty inventory in place of the fleet's, so that tools pointed at it
    # (the molecule scenarios) find no host rather than no file.
    if [ -d "$FLEET_DIR" ]; then
        printf -- '---\n# No test hosts: tests/e2e/fleet/fleet.sh down.\nall:\n  children:\n    pi5:\n      hosts: {}\n' \
            >"$FLEET_DIR/inventory.yml"
    fi
    leftovers
    log "fleet down in $((SECONDS - started))s"
}

# Reports (and fails on) anything of the fleet still present.
leftovers() {
    local found=0
    if ip netns list 2>/dev/null | grep -q "^$NS_PREFIX"; then log "namespaces left: $(ip netns list | grep "^$NS_PREFIX" | tr '\n' ' ')"; found=1; fi
    if ip -o link show 2>/dev/null | grep -qE ': lsbg'; then log "links left"; found=1; fi
    if grep -qE " ($RUN_DIR|$FLEET_DIR)[/ ]" /proc/self/mountinfo; then log "mounts left under $RUN_DIR or $FLEET_DIR"; found=1; fi
    [ "$found" -eq 0 ]
}

# ---------------------------------------------------------------- faults

known_host() {
    [ -n "${1:-}" ] && [ -d "$(host_dir "$1")" ] || die "no test host ${1:-(none given)} (fleet.sh status)"
}

docker_ctl() {
    local h=$1 action=${2:-} run pid
    known_host "$h"
    run=$(host_run "$h")
    case "$action" in
        stop)
            pid_alive "$run/dockerd.pid" || { log "the Docker daemon of $h is not running"; return 0; }
            pid=$(cat "$run/dockerd.pid")
            kill -TERM "$pid"
            # It stops its containers first (each within its stop grace period).
            wait_gone 90 "$pid" || die "the Docker daemon of $h (pid $pid) did not stop within 90s"
            log "the Docker daemon of $h stopped"
            ;;
        start)
            start_dockerd "$h"
            wait_dockerd "$h"
            log "the Docker daemon of $h answers again"
            ;;
        *) die "usage: fleet.sh docker HOST stop|start" ;;
    esac
}

link_ctl() {
    local h=$1 action=${2:-}
    known_host "$h"
    case "$action" in
        down | up) ip link set "lsbg-v$(host_index "$h")" "$action" ;;
        *) die "usage: fleet.sh link HOST down|up" ;;
    esac
}

status() {
    local h any=0
    for h in $(known_hosts); do
        any=1
        printf '%-8s %-12s ns:%s sshd:%s docker:%s nginx:%s\n' "$h" "$(host_addr "$h")" \
            "$(ip netns list | awk '{print $1}' | grep -qx "$(ns_name "$h")" && echo up || echo -)" \
            "$(pid_alive "$(host_dir "$h")/sshd.pid" && echo up || echo -)" \
            "$(hdocker "$h" version >/dev/null 2>&1 && echo "up($(hdocker "$h" ps -q | wc -l) running)" || echo -)" \
            "$(pid_alive "$(host_dir "$h")/nginx/nginx.pid" && echo up || echo -)"
    done
    [ "$any" -eq 1 ] || echo "no test hosts"
}

main() {
    local cmd=${1:-}
    shift || true
    case "$cmd" in
        up) up "$@" ;;
        down) down ;;
        status) status ;;
        shell)
            [ -n "${1:-}" ] || die "usage: fleet.sh shell HOST [CMD...]"
            local h=$1; shift
            [ $# -gt 0 ] || set -- bash
            DOCKER_HOST="unix://$(host_sock "$h")" in_ns "$h" "$@"
            ;;
        docker) docker_ctl "$@" ;;
        link) link_ctl "$@" ;;
        *) die "usage: fleet.sh up N | down | status | shell HOST [CMD...] | docker HOST stop|start | link HOST down|up" ;;
    esac
}

main "$@"
