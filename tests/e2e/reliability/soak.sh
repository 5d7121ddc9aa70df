#!/usr/bin/env bash
# The heavy part of the reliability suite, kept out of `make test` (pytest
# marker `heavy`): a 20-deploy soak in `stop` and in `shrink` mode under HTTP
# load and a task stream, and the controller interrupted (Ctrl-C) mid-deploy
# and at the verify gate, with the documented recovery. Takes 20-40 minutes on
# a 2-core machine.
#   bash tests/e2e/reliability/soak.sh               # everything
#   bash tests/e2e/reliability/soak.sh -k interrupt  # pytest selection
# The soak's figures are printed and written to .build/reliability/soak-<mode>-<deploys>.json.
set -uo pipefail
source "$(dirname "$0")/../../../scripts/lib.sh"

bash "$ROOT/scripts/setup.sh" || die "set-up failed"
lowspec_env
export PYTHONPATH="$COLLECTIONS"
cd "$ROOT"
exec pytest -q -s -p no:cacheprovider --durations=10 -m heavy tests/e2e/reliability "$@"
