# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark-only callback: writes each task's start and end to $BENCH_TIMELINE (JSON lines).

Every line carries the task's phase marker (the role's `__bluegreen_phase` task
var), so that bench/bench.py keys on phases, not on task names; a result line
also carries what the module reported of its own cost (timings, the Celery
agent's figures) and whether a module ran at all on the host.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_timeline
type: aggregate
short_description: task start/end times, phases and module figures for bench/bench.py
description: Appends one JSON line per task start and end to the file named by BENCH_TIMELINE.
requirements: [enabled in the benchmark only]
"""

# Tasks that run on the controller only (no module execution on the host).
CONTROLLER_ACTIONS = frozenset((
    "ansible.builtin.set_fact", "ansible.builtin.debug", "ansible.builtin.assert", "ansible.builtin.fail",
    "ansible.builtin.pause", "ansible.builtin.include_tasks", "ansible.builtin.import_tasks",
    "ansible.builtin.include_role", "ansible.builtin.validate_argument_spec", "ansible.builtin.meta",
    "set_fact", "debug", "assert", "fail", "pause", "include_tasks", "validate_argument_spec", "meta",
))


def _phase(task):
    return (getattr(task, "vars", None) or {}).get("__bluegreen_phase")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timeline"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._path = os.environ.get("BENCH_TIMELINE")

    def _write(self, event, task, **extra):
        if not self._path:
            return
        line = dict(event=event, task=task.get_name(), action=task.action, phase=_phase(task), t=time.time(),
                    on_host=task.action not in CONTROLLER_ACTIONS, **extra)
        with open(self._path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line, default=str) + "\n")

    def _figures(self, result):
        found = result._result  # pylint: disable=protected-access
        figures = dict((key, found[key]) for key in ("timings", "celery", "attempts", "waiting", "restored", "switch",
                                                     "quiesce", "retire", "grow") if key in found)
        # The quiesce (celery_quiesce, or the one the new web's call makes first) writes each container
        # down, with its time, just before its first change.
        quiesced = found.get("quiesce") if isinstance(found.get("quiesce"), dict) else found
        changed_at = [c["at"] for c in quiesced.get("containers") or [] if isinstance(c, dict) and c.get("at")]
        if changed_at:
            figures["first_change_at"] = min(changed_at)
        return figures

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._write("start", task)

    def v2_runner_on_ok(self, result):
        self._write("ok", result._task, **self._figures(result))  # pylint: disable=protected-access

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write("failed", result._task, msg=str(result._result.get("msg", ""))[:300],  # pylint: disable=protected-access
                    **self._figures(result))

    def v2_runner_on_skipped(self, result):
        self._write("skipped", result._task)  # pylint: disable=protected-access

    def v2_runner_retry(self, result):
        self._write("retry", result._task, **self._figures(result))  # pylint: disable=protected-access
