#!/usr/bin/env bash
# The benchmark (issues 8, 10), one command from a fresh clone:
#   bash bench/run.sh            full run: floor + naive, article, role (stop), role (shrink)
#                                (about 13 minutes on a shared 2-core machine, plus about 2
#                                for the virtualenv on a fresh clone)
#   bash bench/run.sh --quick    short settings, for debugging the benchmark itself
#   BENCH_ONLY=shrink,floor BENCH_BACKLOG=40 BENCH_STEADY_S=5 bash bench/run.sh --no-latest
#                                a smoke run: a subset, a short backlog and steady state, the
#                                full app knobs; bench/latest.* left alone
# Sets the machine up (scripts/setup.sh), installs the plot's dependency into the
# virtualenv when missing, then runs bench/bench.py. Results: bench/results/<timestamp>/,
# and bench/latest.md + bench/latest.png (the table and plot shown in README.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
[ "$(id -u)" -eq 0 ] || { echo "bench/run.sh needs root (cgroups, Docker)" >&2; exit 1; }
bash "$root/scripts/setup.sh"
# shellcheck source=../scripts/lib.sh
source "$root/scripts/lib.sh"
lowspec_env
export PYTHONPATH=$COLLECTIONS
if ! python -c 'import matplotlib' 2>/dev/null; then
    say "installing the plot's dependency (bench/requirements.txt)"
    pip install -q --disable-pip-version-check -r "$here/requirements.txt"
fi
exec python "$here/bench.py" "$@"
