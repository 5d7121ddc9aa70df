#!/usr/bin/env bash
# Fleet benchmark (not part of CI): rolls the demo out to 8 test hosts in
# batches (a canary of 1, then 3, then 4) with the collection's deploy
# playbook over SSH, and reports the time of each batch and of the whole
# rollout, i.e. what the fleet costs per host.
#
#   bash tests/e2e/fleet/rollout-8.sh
#
# Steps: set-up (idempotent), `fleet.sh up 8`, v1 on every host (the release the
# rollout replaces, not timed as part of it), then the timed rollout of v2
# with bluegreen_serial [1, 3, 4], a check of every host through its nginx, and
# `fleet.sh down` (also when anything fails). Output and summary are kept in
# .build/fleet-bench/. Environment: LOWSPEC_BENCH_SERIAL (default "[1, 3, 4]"),
# LOWSPEC_BENCH_HOSTS (default 8), LOWSPEC_BENCH_FORKS (default 10).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/scripts/lib.sh"

hosts=${LOWSPEC_BENCH_HOSTS:-8}
serial=${LOWSPEC_BENCH_SERIAL:-[1, 3, 4]}
fleet=$ROOT/tests/e2e/fleet/fleet.sh
inventory=$BUILD/fleet/inventory.yml
out=$BUILD/fleet-bench
stamp=$(date -u +%Y%m%dT%H%M%SZ)
log=$out/rollout-$hosts-$stamp.log
summary=$out/rollout-$hosts-$stamp.txt

bash "$ROOT/scripts/setup.sh" >/dev/null || die "set-up failed (run bash scripts/setup.sh)"
lowspec_env
export ANSIBLE_FORKS=${LOWSPEC_BENCH_FORKS:-10}
mkdir -p "$out"

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    say "tearing the test hosts down"
    bash "$fleet" down || status=1
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Prefixes every line with the time (seconds since the epoch, with fractions).
timestamp() { while IFS= read -r line; do printf '%s %s\n' "$(date +%s.%N)" "$line"; done; }

deploy() {  # deploy RELEASE SERIAL-JSON
    PYTHONUNBUFFERED=1 ansible-playbook lowspec.bluegreen.deploy -i "$inventory" --limit pi5 \
        -e "bluegreen_release=$1" -e "{\"bluegreen_serial\": $2}" 2>&1
}

say "bringing $hosts test hosts up"
start=$(now)
bash "$fleet" up "$hosts"
up_time=$(since "$start")

say "deploying v1 to every host (the release the rollout replaces)"
start=$(now)
deploy v1 '["100%"]' >"$out/v1-$stamp.log" || { tail -30 "$out/v1-$stamp.log" >&2; die "the v1 deploy failed (see $out/v1-$stamp.log)"; }
v1_time=$(since "$start")

say "rolling v2 out in batches $serial"
start=$(now)
set +e
deploy v2 "$serial" | timestamp >"$log"
status=${PIPESTATUS[0]}
set -e
end=$(now)

# Batches: each starts with a "PLAY [" line (one per batch under serial); its
# hosts are the ones its tasks report; it ends where the next begins (the last
# one at the PLAY RECAP).
report=$(awk -v start="$start" -v end="$end" '
    / PLAY \[/ { if (n) { stop[n] = $1 } n++; begin[n] = $1; next }
    / PLAY RECAP/ { if (n && !stop[n]) stop[n] = $1; next }
    n && match($0, /: \[pi5-[0-9]+\]/) {
        h = substr($0, RSTART + 3, RLENGTH - 4)
        if (!((n, h) in seen)) { seen[n, h] = 1; members[n] = members[n] (members[n] ? " " : "") h; count[n]++ }
    }
    END {
        for (i = 1; i <= n; i++) {
            if (!stop[i]) stop[i] = end
            t = stop[i] - begin[i]
            printf "batch %d: %2d host(s) %7.1fs  (%.1fs per host)  %s\n", i, count[i], t, (count[i] ? t / count[i] : 0), members[i]
        }
        printf "rollout: %d batch(es) %7.1fs wall (ansible-playbook start to exit)\n", n, end - start
    }' "$log")

# Every host through its own nginx, from here (test traffic to the test hosts' addresses only).
check=""
on_v2=0
for i in $(seq 1 "$hosts"); do
    addr=$(sed -n "/^        pi5-$i:/{n;s/.*ansible_host: //p}" "$inventory")
    answer=$(curl -s --max-time 5 "http://$addr:18080/health/" || echo '{}')
    release=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1] or "{}"); print(d.get("color","-"), d.get("release","-"))' "$answer" 2>/dev/null || echo "- -")
    check+=$(printf '  pi5-%d %-12s %s' "$i" "$addr" "$release")$'\n'
    [ "${release#* }" = v2 ] && on_v2=$((on_v2 + 1))
done

{
    echo "fleet rollout benchmark, $stamp, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'test hosts up:      %7.1fs (%d hosts)\n' "$up_time" "$hosts"
    printf 'v1 to every host:   %7.1fs (one batch, forks %s)\n' "$v1_time" "$ANSIBLE_FORKS"
    echo "v2 rollout, serial $serial, exit code $status:"
    echo "$report"
    awk -v a="$start" -v b="$end" -v n="$hosts" 'BEGIN { printf "per host (rollout wall / hosts): %.1fs\n", (b - a) / n }'
    echo "hosts answering through nginx (color release):"
    printf '%s' "$check"
    echo "on v2: $on_v2 of $hosts; log: $log"
} | tee "$summary"

[ "$status" -eq 0 ] && [ "$on_v2" -eq "$hosts" ] || die "the rollout did not complete (see $log)"
