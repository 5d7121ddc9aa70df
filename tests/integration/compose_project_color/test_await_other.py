# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""compose_project_color's await_other on the real stack: the new workers start only once the old ones,
told to stop by a quiesce that did not wait, have exited; what the old worker was killed with goes back
to the queue first, and runs exactly once on the new worker."""

from __future__ import annotations

import time
import uuid

from tests.support.docker_cli import container_state, project_containers
from tests.support.runner import run_module
from tests.support.stack import DemoStack

CELERY = {"app": "tasks", "command": ["python3", "-m", "celery"]}


def wait_for(predicate, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met within %s s" % timeout
        time.sleep(interval)


def started(stack, tmp_path, color, services, **extra):
    env = stack.env_for(color)
    del env["BLUEGREEN_COLOR"]
    args = dict(app=stack.app, project_src=stack.project_src, env=env, color=color, state="started",
                services=services, state_dir=str(tmp_path / "state"), journal=str(tmp_path / "journal.json"),
                web_ports=dict(stack.ports), stop_timeout=2, wait_timeout=120, **extra)
    result = run_module("compose_project_color", args)
    assert result["rc"] == 0, result.get("msg")
    return result


def test_the_new_workers_start_after_the_old_exited_and_their_orphans_went_back(tmp_path):
    stack = DemoStack("ao%s" % uuid.uuid4().hex[:8])
    try:
        stack.up_shared()
        stack.up_color("blue")
        # Two tasks run far longer than the drain and the grace period: the old worker is killed with them.
        running = sorted(stack.enqueue("blue", n=2, seconds=30))
        wait_for(lambda: len(stack.records.hkeys("demo:started")) >= 2, 30)
        told = run_module("celery_quiesce", {
            "project": stack.project("blue"), "celery_app": "tasks", "celery_command": ["python3", "-m", "celery"],
            "drain_timeout": 1, "stop_timeout": 2, "wait_exited": False, "journal": str(tmp_path / "journal.json")})
        assert told["rc"] == 0 and told["stopping"], told.get("msg")
        started(stack, tmp_path, "green", ["web"])
        result = started(stack, tmp_path, "green", ["worker", "beat"], await_other=True,
                         celery=dict(CELERY, control_service="web"))
        old = project_containers(stack.project("blue"), "worker") + project_containers(stack.project("blue"), "beat")
        assert [container_state(cid)[0] for cid in old] == ["exited", "exited"]
        assert result["broker_checked"] is True
        assert set(running) <= set(r["id"] for r in result["restored"]), (running, result["restored"])
        assert result["celery"]["container"].startswith(stack.project("green") + "-web"), result["celery"]
        stack.assert_each_ran_once(running, timeout=120, what="tasks of the killed old worker, on the new one")
    finally:
        stack.teardown()
