# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The module base: run_module() builds the AnsibleModule with the shared options, runs the
manager, always closes it, and turns its errors into one failure that keeps its partial result."""

from __future__ import annotations

import pytest

from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import BlueGreenError, CommandError
from ansible_collections.lowspec.bluegreen.plugins.module_utils._module import COMMON_OPTIONS, Manager, run_module

SPEC = dict(name=dict(type="str", required=True), token=dict(type="str", no_log=True))


class Recorder(Manager):
    """Does what `behaviour` says; close() adds a key, as an agent's stats are added."""

    behaviour = None

    def run(self):
        self.result.update(changed=True, stopped=["beat"], docker_host=self.params["docker_host"],
                           check_mode=self.check_mode, diff_mode=self.diff_mode)
        if self.behaviour is not None:
            raise self.behaviour

    def close(self):
        self.result["closed"] = True


def run(run_main, behaviour=None, rules=None, **args):
    Recorder.behaviour = behaviour
    return run_main(lambda: run_module(Recorder, SPEC, **(rules or {})), dict({"name": "x"}, **args))


def test_a_manager_that_runs_exits_with_its_result_after_close(run_main):
    result = run(run_main)
    assert not result["failed"] and result["changed"] and result["stopped"] == ["beat"] and result["closed"]
    assert result["docker_host"] == "" and result["check_mode"] is False and result["diff_mode"] is False


def test_every_module_takes_docker_host(run_main):
    assert COMMON_OPTIONS == {"docker_host": {"type": "str", "default": ""}}
    assert run(run_main, docker_host="ssh://pi@pi5")["docker_host"] == "ssh://pi@pi5"


def test_check_and_diff_mode_reach_the_manager(run_main):
    result = run_main(lambda: run_module(Recorder, SPEC), {"name": "x"}, check_mode=True, diff=True)
    assert result["check_mode"] is True and result["diff_mode"] is True


def test_a_users_error_fails_with_its_message_and_what_was_done_so_far(run_main):
    result = run(run_main, BlueGreenError("beat did not exit"))
    assert result["failed"] and result["msg"] == "beat did not exit"
    assert result["stopped"] == ["beat"] and result["closed"] and result["changed"]
    assert "cmd" not in result and "exception" not in result


def test_a_failed_command_adds_cmd_rc_stdout_and_stderr(run_main):
    result = run(run_main, CommandError("nginx -t failed: emerg", cmd=["nginx", "-t"], rc=1, stdout="o", stderr="e"))
    assert result["failed"] and result["msg"] == "nginx -t failed: emerg" and result["closed"]
    assert (result["cmd"], result["rc"], result["stdout"], result["stderr"]) == (["nginx", "-t"], 1, "o", "e")


def test_an_unexpected_error_says_so_and_keeps_what_was_done(run_main):
    # Its traceback goes to fail_json(exception=...), which ansible-core shows when tracebacks are asked for.
    result = run(run_main, KeyError("queues"))
    assert result["failed"] and result["msg"] == "unexpected error: 'queues'"
    assert result["stopped"] == ["beat"] and result["closed"]


def test_no_log_values_never_show_in_the_result(run_main):
    result = run(run_main, BlueGreenError("token s3cret-token refused"), token="s3cret-token")
    assert "s3cret-token" not in result["msg"]


def test_the_modules_rules_are_applied_before_the_manager_runs(run_main):
    result = run(run_main, rules=dict(required_if=[("name", "y", ("token",))]), name="y")
    assert result["failed"] and "token" in result["msg"] and "closed" not in result


def test_a_manager_that_cannot_start_fails_with_its_message(run_main):
    class Refuses(Manager):
        def __init__(self, module):
            super().__init__(module)
            self.result["url"] = "http://x/"
            raise BlueGreenError("name must not be x")

    result = run_main(lambda: run_module(Refuses, SPEC), {"name": "x"})
    assert result["failed"] and result["msg"] == "name must not be x" and result["changed"] is False
    assert result["url"] == "http://x/", "what it had set up is still returned"


def test_the_base_manager_must_be_given_a_run():
    with pytest.raises(NotImplementedError):
        Manager.run(None)
