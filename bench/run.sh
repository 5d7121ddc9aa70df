#!/usr/bin/env bash
# The benchmark, one command from a fresh clone:
#   bash bench/run.sh            full run: floor + naive, article, role (stop), role (shrink),
#                                role (stop) with Mitogen (about 10 minutes on a shared 2-core
#                                machine, plus about 2 for the virtualenv on a fresh clone)
#   bash bench/run.sh --quick    short settings, for debugging the benchmark itself
#   BENCH_ONLY=shrink,floor BENCH_BACKLOG=40 BENCH_STEADY_S=5 bash bench/run.sh --no-latest
#                                a smoke run: a subset, a short backlog and steady state, the
#                                full app knobs; bench/latest.* left alone
# Sets the machine up (scripts/setup.sh), installs what the benchmark alone needs when
# missing (the plot's Python packages into the virtualenv, Debian's `acct` for process
# accounting, PyPI's mitogen into .build/bench-mitogen, apart from the collection), brings
# up one fleet test host (tests/e2e/fleet/fleet.sh up 1) and runs bench/bench.py against it.
# At the end, also on failure or interruption: process accounting off, the fleet down,
# the benchmark's cgroups removed. A fleet that is already up (another test run's) is
# left alone: the benchmark refuses to start (BENCH_REUSE_FLEET=1 uses it and leaves it up).
# Results: bench/results/<timestamp>/, and bench/latest.md + bench/latest.png.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
[ "$(id -u)" -eq 0 ] || { echo "bench/run.sh needs root (cgroups, namespaces, process accounting)" >&2; exit 1; }
bash "$root/scripts/setup.sh"
# shellcheck source=../scripts/lib.sh
source "$root/scripts/lib.sh"
lowspec_env
export PYTHONPATH=$COLLECTIONS
PATH="$PATH:/usr/sbin:/sbin"
MITOGEN_VERSION=0.3.54
export BENCH_MITOGEN_DIR=${BENCH_MITOGEN_DIR:-$BUILD/bench-mitogen}

if ! python -c 'import matplotlib' 2>/dev/null; then
    say "installing the plot's dependency (bench/requirements.txt)"
    pip install -q --disable-pip-version-check -r "$here/requirements.txt"
fi
if ! command -v accton >/dev/null; then
    say "installing process accounting (Debian package acct)"
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq acct >/dev/null
    accton off >/dev/null 2>&1 || true  # in case its service started system-wide accounting
fi
if [ ! -d "$BENCH_MITOGEN_DIR/ansible_mitogen" ]; then
    say "installing mitogen $MITOGEN_VERSION into $BENCH_MITOGEN_DIR (the benchmark's Mitogen column only)"
    pip install -q --disable-pip-version-check --no-deps --target "$BENCH_MITOGEN_DIR" "mitogen==$MITOGEN_VERSION" ||
        say "mitogen did not install: the Mitogen column will say so"
fi

fleet=$root/tests/e2e/fleet/fleet.sh
ours=0
child=
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
        kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    accton off >/dev/null 2>&1 || true
    if [ "$ours" -eq 1 ]; then
        say "taking the fleet test host down"
        bash "$fleet" down || status=1
    fi
    # The benchmark's cgroups (bench.py removes them itself; this is for a run that was killed).
    local d
    for d in /sys/fs/cgroup/*/lsbench-*; do
        [ -d "$d" ] || continue
        find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ip netns list 2>/dev/null | grep -q '^lsbg-'; then
    if [ "${BENCH_REUSE_FLEET:-0}" = 1 ]; then
        say "reusing the fleet that is up (BENCH_REUSE_FLEET=1; it stays up)"
    else
        echo "a fleet of test hosts is already up (another test run's?): $(ip netns list | grep '^lsbg-' | tr '\n' ' ')" >&2
        echo "wait for it to go, or BENCH_REUSE_FLEET=1 to use it" >&2
        exit 1
    fi
else
    ours=1
    say "bringing up one fleet test host (tests/e2e/fleet/fleet.sh up 1)"
    bash "$fleet" up 1
fi
python "$here/bench.py" "$@" &
child=$!
wait "$child"
