# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""No message stays with a worker that is gone: the broker's own record, on the real stack.

A worker killed at the end of its grace period leaves the messages it held in
the Redis transport's `unacked` record; the broker would hand them out again
only after its visibility timeout (an hour). celery_quiesce puts them back in
their queue once the workers have exited, and they run exactly once, within
seconds.
"""

from __future__ import annotations

import json
import time
import uuid

from tests.support.docker_cli import container_state, project_containers
from tests.support.runner import run_module
from tests.support.stack import DemoStack

CELERY = {"celery_command": ["python3", "-m", "celery"], "celery_app": "tasks", "control_service": "web"}


def wait_for(predicate, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met within %s s" % timeout
        time.sleep(interval)


def test_a_worker_killed_at_its_grace_period_leaves_no_message_behind(tmp_path):
    stack = DemoStack("br%s" % uuid.uuid4().hex[:8])
    journal = tmp_path / "journal.json"
    try:
        stack.up_shared()
        stack.up_color("blue")
        broker = stack.broker()
        # Two tasks run (concurrency 2) far longer than the drain and the grace period; more wait in the queue.
        running = sorted(stack.enqueue("blue", n=2, seconds=30))
        wait_for(lambda: len(stack.records.hkeys("demo:started")) >= 2, 30)
        uids = running + stack.enqueue("blue", n=4, seconds=0.2)
        result = run_module("celery_quiesce", dict(CELERY, project=stack.project("blue"), drain_timeout=1,
                                                   stop_timeout=2, journal=str(journal)))
        assert result["rc"] == 0, result.get("msg")
        worker = project_containers(stack.project("blue"), "worker")[0]
        assert container_state(worker)[0] == "exited"
        # SIGKILLed at the end of its 2 s grace: its running tasks' messages would stay unacknowledged for an hour.
        assert result["broker_checked"] is True
        restored = sorted(entry["id"] for entry in result["restored"])
        assert set(running) <= set(restored), (running, result["restored"])
        assert broker.hlen("unacked") == 0, "messages are still delivered to a worker that is gone"
        assert any("put back in their queue" in str(w) for w in result.get("warnings", [])), result.get("warnings")
        # Brought back, the worker runs each task exactly once, the killed ones included.
        back = run_module("celery_quiesce", dict(CELERY, project=stack.project("blue"), state="resumed",
                                                 journal=str(journal)))
        assert back["rc"] == 0, back.get("msg")
        stack.assert_each_ran_once(uids, timeout=120, what="tasks of the killed worker")
        # A second check finds nothing to put back: each message was restored once.
        again = run_module("celery_quiesce", dict(CELERY, project=stack.project("blue"), drain_timeout=5,
                                                  stop_timeout=10, journal=str(journal)))
        assert again["rc"] == 0 and again["restored"] == [], again.get("restored")
        runs = {uid: int(stack.records.hget("demo:runs", uid) or 0) for uid in uids}
        assert set(runs.values()) == {1}, runs
        print("killed worker: %d running task(s), %d message(s) put back: %s"
              % (len(running), len(restored), json.dumps(result["timings"])))
    finally:
        stack.teardown()
