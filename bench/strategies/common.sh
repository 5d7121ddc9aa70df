# Shared by the two scripted strategies; sourced. The driver (bench/bench.py) sets:
#   PROJECT_DIR  COMPOSE_FILES (space-separated absolute paths)  APP
#   OLD_COLOR OLD_RELEASE OLD_PORT  NEW_COLOR NEW_RELEASE NEW_PORT
#   NGINX_PREFIX UPSTREAM_NAME  and the demo's DEMO_* variables.
# shellcheck shell=bash
mark() { echo "MARK $1 $(date +%s.%N)"; }

dc() {  # dc COLOR RELEASE PORT compose-args...
    local color=$1 release=$2 port=$3 f
    shift 3
    local -a files=()
    for f in $COMPOSE_FILES; do files+=(-f "$f"); done
    BLUEGREEN_COLOR=$color BLUEGREEN_RELEASE=$release BLUEGREEN_WEB_PORT=$port \
        docker compose --ansi never -p "$APP-$color" --project-directory "$PROJECT_DIR" "${files[@]}" "$@"
}
dc_old() { dc "$OLD_COLOR" "$OLD_RELEASE" "$OLD_PORT" "$@"; }
dc_new() { dc "$NEW_COLOR" "$NEW_RELEASE" "$NEW_PORT" "$@"; }

switch_traffic() {  # point the private nginx at the new color and reload it
    printf 'upstream %s {\n    server 127.0.0.1:%s;\n}\n' "$UPSTREAM_NAME" "$NEW_PORT" >"$NGINX_PREFIX/upstream.conf.new"
    mv "$NGINX_PREFIX/upstream.conf.new" "$NGINX_PREFIX/upstream.conf"
    nginx -p "$NGINX_PREFIX" -c nginx.conf -e error.log -t 2>/dev/null \
        && nginx -p "$NGINX_PREFIX" -c nginx.conf -e error.log -s reload
}
