#!/usr/bin/env bash
# Strategy 1, naive blue-green: start the whole new color beside the old one,
# health-check it, switch traffic, stop the old color.
set -uo pipefail
source "$(dirname "$0")/common.sh"
url="http://127.0.0.1:$NEW_PORT/health/"

mark start
dc_new up -d || exit 1
mark new_started
for _ in $(seq 1 120); do
    curl -fsS -o /dev/null --max-time 2 "$url" && break
    sleep 1
done
curl -fsS -o /dev/null --max-time 2 "$url" || { echo "new color never healthy"; exit 1; }
mark healthy
switch_traffic || exit 1
mark switched
dc_old stop || exit 1
mark old_stopped
