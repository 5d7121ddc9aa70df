#!/usr/bin/env bash
# ansible-test sanity on a copy of the checkout at .../ansible_collections/lowspec/bluegreen
# (ansible-test insists on that path, and resolves symlinks). Works offline from
# Galaxy: pip's bootstrap script, which ansible-test would download from a host
# that is not reachable here (and run with a cleaned environment that trusts no
# CA of the registry), is replaced by a stand-in that bootstraps pip from
# ensurepip and installs with the system CA store.
# Usage: scripts/sanity.sh [ansible-test sanity options, e.g. --test pylint]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
lowspec_env

python_version=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# ansible-core 2.19 asks for pip 24.2; the stand-in works for any version asked.
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
for name in get_pip_24_2.py; do
    cat >"$cache/$name" <<'PY'
"""Stand-in for get-pip.py: bootstrap pip from ensurepip, then install with the system CA store."""
import ensurepip
import subprocess
import sys

ensurepip.bootstrap()
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "--cert", "/etc/ssl/certs/ca-certificates.crt"] + args)
PY
done

# LOWSPEC_SANITY_TAG keeps parallel runs (several checkouts or helpers) apart.
dest=$BUILD/sanity-${LOWSPEC_SANITY_TAG:-main}/ansible_collections/lowspec/bluegreen
rm -rf "$dest"
mkdir -p "$dest"
# Tracked files plus new ones not ignored: what a commit would contain.
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
    | tar --null --ignore-failed-read -cf - -T - 2>/dev/null) | tar -xf - -C "$dest"
cd "$dest"
git init -q . && git add -A >/dev/null 2>&1
ansible-test sanity --python "$python_version" --requirements --color no "$@"
