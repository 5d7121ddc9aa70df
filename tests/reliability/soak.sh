#!/usr/bin/env bash
# The heavy part of the reliability suite (issue 9), kept out of `make test`:
# a 20-deploy soak under HTTP load and a task stream, and the controller
# interrupted (Ctrl-C) mid-deploy and at the verify gate, with the documented
# recovery. Takes 15-30 minutes on a 2-core machine.
#   bash tests/reliability/soak.sh               # everything
#   bash tests/reliability/soak.sh -k interrupt  # pytest selection
# The soak's figures are printed and written to .build/reliability/soak.json.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"

bash "$ROOT/scripts/setup.sh" || die "set-up failed"
lowspec_env
export PYTHONPATH="$COLLECTIONS"
cd "$ROOT"
exec pytest -q -s -p no:cacheprovider --durations=10 tests/reliability "$@"
