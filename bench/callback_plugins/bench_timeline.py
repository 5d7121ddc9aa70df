# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark-only callback: writes each task's start and end time to $BENCH_TIMELINE (JSON lines)."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_timeline
type: aggregate
short_description: task start/end times for bench/bench.py
description: Appends one JSON line per task start and end to the file named by BENCH_TIMELINE.
requirements: [enabled in the benchmark only]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timeline"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._path = os.environ.get("BENCH_TIMELINE")

    def _write(self, event, name, **extra):
        if not self._path:
            return
        with open(self._path, "a", encoding="utf-8") as out:
            out.write(json.dumps(dict(event=event, task=name, t=time.time(), **extra)) + "\n")

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._write("start", task.get_name())

    def v2_runner_on_ok(self, result):
        self._write("ok", result.task_name)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write("failed", result.task_name, msg=str(result._result.get("msg", ""))[:300])

    def v2_runner_on_skipped(self, result):
        self._write("skipped", result.task_name)
