# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""No dead code in the collection's plugins: what vulture finds unused must be one of
the names Ansible itself reads (documentation, doc fragments, filter plugins) or a
state handler the modules dispatch to by name."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
# Read by Ansible, not by our code: documentation strings, doc fragments, filter plugins'
# entry points; and compose_project_color's state_<state> methods, called by name.
READ_BY_ANSIBLE = re.compile(
    r"unused (variable '(DOCUMENTATION|EXAMPLES|RETURN|INFO_MODULE)'|class '(ModuleDocFragment|FilterModule)'"
    r"|method 'filters'|method 'state_[a-z]+')"
    # requests.Session's attribute, set to keep the proxy settings of the environment out of a health check.
    r"|unused attribute 'trust_env'")


def test_vulture_finds_nothing_unused():
    proc = subprocess.run([sys.executable, "-m", "vulture", str(PLUGINS), "--min-confidence", "60"],
                          capture_output=True, text=True, check=False)
    found = [line for line in proc.stdout.splitlines() if line.strip() and not READ_BY_ANSIBLE.search(line)]
    assert found == [], "unused code:\n" + "\n".join(found)
