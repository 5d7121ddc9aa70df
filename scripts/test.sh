#!/usr/bin/env bash
# Every test of the collection, after an idempotent set-up of this machine:
#   unit (pytest), sanity (ansible-test), lint (ansible-lint, production
#   profile), integration (pytest against the real Docker daemon), molecule.
# Each stage runs even when an earlier one failed; the exit code is non-zero
# when any failed. LOWSPEC_STAGES="unit lint" runs a subset.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

bash "$ROOT/scripts/setup.sh" || die "set-up failed"
lowspec_env
export PYTHONPATH="$COLLECTIONS"
cd "$ROOT"

stages=${LOWSPEC_STAGES:-unit sanity lint build integration molecule}
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
    for module in compose_project_color celery_quiesce http_health deploy_lock host_pressure; do
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
stage_integration() { pytest -q -p no:cacheprovider -x --durations=15 tests/integration; }
stage_molecule() {
    local scenario
    [ -d molecule ] || return 0
    for scenario in molecule/*/; do
        [ -f "$scenario/molecule.yml" ] || continue
        local began=$SECONDS
        molecule test -s "$(basename "$scenario")" || return 1
        say "molecule scenario $(basename "$scenario"): $((SECONDS - began)) s"
    done
}

for stage in $stages; do
    say "stage $stage"
    start=$SECONDS
    if "stage_$stage"; then passed+=("$stage"); else failed+=("$stage"); fi
    took[$stage]=$((SECONDS - start))
done

echo
for stage in $stages; do
    status=passed
    [[ " ${failed[*]:-} " == *" $stage "* ]] && status=FAILED
    printf '  %-12s %-7s %4ss\n' "$stage" "$status" "${took[$stage]}"
done
echo "stages: ${#passed[@]} passed, ${#failed[@]} failed"
[ "${#failed[@]}" -eq 0 ]
