#!/usr/bin/env bash
# The README's demo: a real blue-green deploy of the bundled demo app on this
# machine, through a private nginx on http://127.0.0.1:18080/.
#   scripts/demo.sh        set up, deploy v1, then v2 (the switch), show status
#   scripts/demo.sh down   remove the demo's containers, state and nginx
set -euo pipefail
source "$(dirname "$0")/lib.sh"

prefix=$BUILD/demo-nginx
inventory=$ROOT/examples/demo/inventory
public=http://127.0.0.1:18080/health/

nginx_cmd() { nginx -p "$prefix" -c nginx.conf -e error.log "$@"; }

start_nginx() {
    mkdir -p "$prefix/tmp"
    sed -e 's/__LISTEN_PORT__/18080/' -e 's/__UPSTREAM_NAME__/demo_bluegreen/' \
        "$ROOT/examples/demo/nginx/nginx.conf" >"$prefix/nginx.conf"
    # Before the first deploy nothing answers behind it (502), as on a new host.
    [ -f "$prefix/upstream.conf" ] || printf 'upstream demo_bluegreen {\n    server 127.0.0.1:18001;\n}\n' >"$prefix/upstream.conf"
    if [ -f "$prefix/nginx.pid" ] && kill -0 "$(cat "$prefix/nginx.pid")" 2>/dev/null; then
        return
    fi
    nginx_cmd || die "the demo's nginx did not start (see $prefix/error.log)"
}

deploy() {
    say "deploying demo release $1"
    ansible-playbook lowspec.bluegreen.deploy -i "$inventory" -e "bluegreen_release=$1"
    say "the proxy now answers: $(curl -fsS "$public")"
}

down() {
    lowspec_env
    for project in demo-blue demo-green; do
        docker compose -p "$project" down -v --remove-orphans --timeout 10 2>/dev/null || true
    done
    docker compose -p demo-shared -f "$ROOT/examples/demo/shared/compose.yml" down -v --remove-orphans 2>/dev/null || true
    [ -f "$prefix/nginx.pid" ] && nginx_cmd -s quit 2>/dev/null || true
    rm -f /var/lib/lowspec-bluegreen/demo.json /var/lib/lowspec-bluegreen/demo.lock
    say "demo removed"
}

main() {
    if [ "${1:-}" = down ]; then down; return; fi
    bash "$ROOT/scripts/setup.sh"
    lowspec_env
    start_nginx
    deploy v1
    deploy v2
    ansible-playbook lowspec.bluegreen.status -i "$inventory" || true
    cat <<EOT

The demo runs: $public (nginx) -> demo-$(curl -fsS "$public" | python3 -c 'import json,sys; print(json.load(sys.stdin)["color"])').
Deploy again:  ANSIBLE_COLLECTIONS_PATH=$COLLECTIONS $VENV/bin/ansible-playbook lowspec.bluegreen.deploy -i examples/demo/inventory -e bluegreen_release=v1
Remove it all: bash scripts/demo.sh down
EOT
}

main "$@"
