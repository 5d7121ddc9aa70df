# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How the unit tests run a module: its real main(), as Ansible runs it.

`run_main(main, args, check_mode=False, diff=False)` hands `args` to AnsibleModule the
way Ansible does (ansible.module_utils.testing.patch_module_args), lets the module
build its real AnsibleModule (argument spec, rules, check mode, no_log masking) and
exit through the real exit_json()/fail_json(), and returns the JSON it printed, with
`warnings` as a plain list of messages. Nothing else of AnsibleModule is replaced but
get_bin_path (`docker` is tests.support.fakes.DOCKER_BIN, others as `run_main.bins` says):
each test replaces the module's own interfaces (Engine, Celery, run_command...) with
the fakes of tests/support/fakes.py.
"""

from __future__ import annotations

import json

import pytest

from ansible.module_utils import _internal as ansible_internal
from ansible.module_utils import basic
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args

from tests.support.fakes import DOCKER_BIN


@pytest.fixture
def run_main(capsys, tmp_path, monkeypatch):
    module_tmp = tmp_path / "ansible-tmp"
    module_tmp.mkdir()
    bins = {"docker": DOCKER_BIN}

    def get_bin_path(self, name, required=False, opt_dirs=None):
        if bins.get(name):
            return bins[name]
        if required:
            self.fail_json(msg="Failed to find required executable %s" % name)
        return None

    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", get_bin_path)
    # Importing ansible's controller side (ansible.errors, as the filter tests do) switches warn() to the
    # controller's display; a module runs on the managed host, where warnings go into its result.
    monkeypatch.setattr(ansible_internal, "is_controller", False)

    def run(main, args, check_mode=False, diff=False):
        # Warnings are kept per process by ansible-core: each run starts with none.
        ansible_warnings._global_warnings.clear()
        ansible_warnings._global_deprecations.clear()
        payload = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff, _ansible_tmpdir=str(module_tmp))
        with patch_module_args(payload):
            with pytest.raises(SystemExit) as stop:
                main()
        result = json.loads(capsys.readouterr().out)
        result["warnings"] = [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]
        assert (stop.value.code != 0) == bool(result.get("failed")), result
        result.setdefault("failed", False)
        return result

    run.bins = bins
    return run
