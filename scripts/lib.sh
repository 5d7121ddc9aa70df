# Shared by the scripts in this folder: paths and small helpers. Sourced.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${LOWSPEC_VENV:-$ROOT/.venv}
BUILD=$ROOT/.build
COLLECTIONS=$BUILD/collections
COLLECTION_LINK=$COLLECTIONS/ansible_collections/lowspec/bluegreen
DOCKER_WAIT=${LOWSPEC_DOCKER_WAIT:-60}

say() { printf '==> %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# The environment every tool of ours runs in: the virtualenv first on PATH,
# the collection resolvable from the checkout, and no interpreter discovery
# (pyenv shims here point at Pythons that are not installed).
lowspec_env() {
    export PATH="$VENV/bin:$PATH"
    export ANSIBLE_COLLECTIONS_PATH="$COLLECTIONS"
    export ANSIBLE_PYTHON_INTERPRETER="$VENV/bin/python"
    export ANSIBLE_LOCALHOST_WARNING=false
    export ANSIBLE_INVENTORY_UNPARSED_WARNING=false
    export ANSIBLE_HOME="$BUILD/ansible-home"
    export ANSIBLE_NOCOLOR=1
    export PYTHONDONTWRITEBYTECODE=1
}

docker_answers() { timeout 10 docker info >/dev/null 2>&1; }
