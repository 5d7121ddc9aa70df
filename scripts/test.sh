#!/usr/bin/env bash
# Every test of the collection, after an idempotent set-up of this machine:
#   unit (pytest tests/unit), sanity (ansible-test), lint (ansible-lint,
#   production profile), build, integration (tests/integration: each module and
#   playbook against this machine's Docker daemon; tests/e2e/role: the role end
#   to end) and fleet (tests/e2e, marker `fleet`: the fleet test bed; then the
#   molecule scenarios; then tests/e2e/reliability: the faults and the short
#   soak). Tests marked `heavy` (the full soak, Ctrl-C) run with
#   tests/e2e/reliability/soak.sh instead.
# Each stage runs even when an earlier one failed; the exit code is non-zero
# when any failed. LOWSPEC_STAGES="unit lint" runs a subset.
#
# Two lanes: `fleet` runs in the background beside the others. Its test hosts
# have their own Docker daemons, network namespaces and state directories, and
# the integration tests give every stack its own name and ports, so the lanes
# share nothing but the CPUs; most of either lane's time is spent waiting
# (health checks, drains, SSH), and side by side they take about the time of
# the longer one instead of the sum. Its output is printed once it has ended.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

bash "$ROOT/scripts/setup.sh" || die "set-up failed"
lowspec_env
export PYTHONPATH="$COLLECTIONS"
cd "$ROOT"

stages=${LOWSPEC_STAGES:-unit sanity lint build integration fleet}
declare -a passed=() failed=()
declare -A took=()

stage_unit() { pytest -q -p no:cacheprovider tests/unit; }
stage_sanity() { bash scripts/sanity.sh; }
stage_lint() { ansible-lint --offline --profile production; }
stage_build() {
    # The collection as users get it: built, installed elsewhere, documented.
    local out=$BUILD/galaxy module doc
    rm -rf "$out" && mkdir -p "$out/collections"
    ansible-galaxy collection build --output-path "$out" "$ROOT" || return 1
    ansible-galaxy collection install --offline --force -p "$out/collections" "$out"/lowspec-bluegreen-*.tar.gz || return 1
    for module in compose_project_color celery_quiesce http_health deploy_lock host_pressure proxy_switch; do
        doc=$(ANSIBLE_COLLECTIONS_PATH="$out/collections" ansible-doc "lowspec.bluegreen.$module" 2>&1)
        grep -q "^> MODULE lowspec.bluegreen.$module" <<<"$doc" || { echo "$doc" >&2; return 1; }
    done
    ANSIBLE_COLLECTIONS_PATH="$out/collections" ansible-playbook --syntax-check -i localhost, \
        lowspec.bluegreen.deploy || return 1
    if tar -tzf "$out"/lowspec-bluegreen-*.tar.gz \
        | grep -E '^(\.venv|\.build|\.benchmarks|\.pytest_cache|bench/results|molecule|tests/output)/'; then
        echo "build artefacts leaked into the tarball" >&2
        return 1
    fi
}
LIGHT='not fleet and not heavy'

stage_integration() {
    pytest -q -p no:cacheprovider -x --durations=15 -m "$LIGHT" tests/integration tests/e2e/role
}
stage_fleet() {
    local scenario began=$SECONDS rc=0
    # Base directories of their own: pytest prunes old numbered ones of a shared one.
    pytest -q -p no:cacheprovider -x --durations=5 --basetemp="$BUILD/pytest-fleet" -m fleet tests/e2e || rc=1
    say "fleet test bed: $((SECONDS - began)) s"
    for scenario in molecule/*/; do
        [ -f "$scenario/molecule.yml" ] || continue
        began=$SECONDS
        molecule test -s "$(basename "$scenario")" || { rc=1; break; }
        say "molecule scenario $(basename "$scenario"): $((SECONDS - began)) s"
    done
    began=$SECONDS
    pytest -q -p no:cacheprovider -x --durations=5 --basetemp="$BUILD/pytest-reliability" -m "$LIGHT" \
        tests/e2e/reliability || rc=1
    say "reliability (faults, short soak): $((SECONDS - began)) s"
    return "$rc"
}

fleet_log=$BUILD/stage-fleet.log
fleet_pid=
if [[ " $stages " == *" fleet "* ]]; then
    say "stage fleet (in the background, output below when it ends: $fleet_log)"
    rm -f "$fleet_log.rc"
    set -m  # the lane in a process group of its own, so that it can be stopped whole
    (
        start=$SECONDS
        stage_fleet >"$fleet_log" 2>&1
        echo "$? $((SECONDS - start))" >"$fleet_log.rc"
    ) &
    fleet_pid=$!
    set +m
    # Interrupted: stop the lane and take its test hosts down (its fixtures cannot).
    trap 'kill -TERM -- "-$fleet_pid" 2>/dev/null; bash "$ROOT/tests/e2e/fleet/fleet.sh" down >/dev/null 2>&1; exit 130' INT TERM
fi

for stage in $stages; do
    [ "$stage" = fleet ] && continue
    say "stage $stage"
    start=$SECONDS
    if "stage_$stage"; then passed+=("$stage"); else failed+=("$stage"); fi
    took[$stage]=$((SECONDS - start))
done

if [ -n "$fleet_pid" ]; then
    wait "$fleet_pid"
    trap - INT TERM
    say "stage fleet"
    cat "$fleet_log"
    read -r rc secs <"$fleet_log.rc" || { rc=1 secs=0; }
    if [ "$rc" -eq 0 ]; then passed+=(fleet); else failed+=(fleet); fi
    took[fleet]=$secs
fi

echo
for stage in $stages; do
    status=passed
    [[ " ${failed[*]:-} " == *" $stage "* ]] && status=FAILED
    printf '  %-12s %-7s %4ss\n' "$stage" "$status" "${took[$stage]}"
done
echo "stages: ${#passed[@]} passed, ${#failed[@]} failed"
[ "${#failed[@]}" -eq 0 ]
