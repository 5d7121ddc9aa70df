#!/usr/bin/env bash
# Strategy 2, the article's script as written ("Resource-aware blue-green with
# Celery", shared/seeds): stop the old worker and beat with `docker compose stop`,
# start only the new web, sleep 15 s, curl the health URL (up to 10 tries),
# switch, then start the new worker and beat. Rollback on a failed check:
# start the old worker and beat again, stop the new web.
set -uo pipefail
source "$(dirname "$0")/common.sh"
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-5}
STARTUP_SLEEP=${STARTUP_SLEEP:-15}
url="http://127.0.0.1:$NEW_PORT/health/"

health_check() {  # retry up to 10 times, as the article's script does
    local i
    for i in $(seq 1 10); do
        if curl -fsSIL --max-time "$HEALTH_TIMEOUT" "$url" >/dev/null; then
            echo "Health check passed (try $i)"
            return 0
        fi
        sleep 3
    done
    return 1
}

mark start
dc_old stop worker beat || exit 1
mark old_stopped
dc_new up -d web || exit 1
mark web_started
sleep "$STARTUP_SLEEP"
mark slept
if ! health_check; then
    echo "health check failed: rolling back"
    dc_old start worker beat
    dc_new stop web
    exit 1
fi
mark healthy
switch_traffic || exit 1
mark switched
dc_new up -d worker beat || exit 1
mark workers_started
echo "Deployment succeeded. When verified, clean up the old color: docker compose -p $APP-$OLD_COLOR down"
