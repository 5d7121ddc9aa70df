# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The deploy's order and its early endings, on the real stack.

- Traffic moves to the new color as soon as its web is healthy, before the new
  workers start; the new beat starts only after the old beat has exited.
- A new worker that fails after the switch puts traffic back.
- A web container that exits fails the deploy at once, not at the deadline.
- A worker with no Docker health check that boots slowly is waited for (Celery's
  ping), not failed.
- A rollback to a color whose containers a rescued deploy replaced is refused
  before anything starts, naming what is there and the way back.
"""

from __future__ import annotations

import json
import time

from tests.support.docker_cli import container_state, docker, project_containers
from tests.support.runner import deploy
from tests.support.stack import TrafficProbe, role_vars

NO_HEALTHCHECK_WORKER = """\
services:
  worker:
    healthcheck:
      disable: true
"""

EXITING_WEB = """\
services:
  web:
    command: [python3, -c, "import sys; print('demo web: cannot start, exiting'); sys.exit(3)"]
"""


def started_at(cid):
    """When a container last started, epoch seconds."""
    value = json.loads(docker("inspect", cid))[0]["State"]["StartedAt"]
    main, _dot, frac = value.rstrip("Z").partition(".")
    return time.mktime(time.strptime(main, "%Y-%m-%dT%H:%M:%S")) - time.timezone + float("0." + (frac or "0")[:6])


class Timeline(TrafficProbe):
    """A traffic probe that keeps when each answer came."""

    def _run(self):
        import requests

        while not self._stop.is_set():
            try:
                reply = requests.get(self.url, timeout=5, headers={"Connection": "close"})
                body = reply.json() if reply.headers.get("content-type", "").startswith("application/json") else {}
                self.answers.append((reply.status_code, body.get("color"), body.get("release")))
            except (requests.RequestException, ValueError) as exc:
                self.answers.append(("error", type(exc).__name__, str(exc)[:300]))
            self.times = getattr(self, "times", []) + [time.time()]
            self._stop.wait(self.period)

    def first(self, color):
        for answer, at in zip(self.answers, getattr(self, "times", [])):
            if answer[1] == color:
                return at
        return None


def test_traffic_moves_before_the_new_workers_start_and_the_beats_never_overlap(demo_stack, nginx, tmp_path):
    state_dir = tmp_path / "state"
    assert deploy(role_vars(demo_stack, nginx, state_dir, "v1")).returncode == 0
    with Timeline(nginx.url, period=0.05) as probe:
        result = deploy(role_vars(demo_stack, nginx, state_dir, "v2"))
    assert result.returncode == 0, result.stdout[-5000:]
    switched = probe.first("green")
    assert switched is not None and probe.failures == [], probe.failures[:5]
    worker = project_containers(demo_stack.project("green"), "worker")
    beat = project_containers(demo_stack.project("green"), "beat")
    old_beat = project_containers(demo_stack.project("blue"), "beat")
    assert started_at(worker[0]) > switched, "the new workers started before traffic moved"
    assert started_at(beat[0]) >= started_at(worker[0])
    finished = json.loads(docker("inspect", old_beat[0]))[0]["State"]["FinishedAt"]
    assert container_state(old_beat[0])[0] == "exited" and finished
    assert demo_stack.beat_runs() == ["blue", "green"], "two beats sent at the same time"


def test_a_new_worker_failing_after_the_switch_puts_traffic_back(demo_stack, nginx, tmp_path):
    state_dir = tmp_path / "state"
    assert deploy(role_vars(demo_stack, nginx, state_dir, "v1")).returncode == 0
    old = {svc: project_containers(demo_stack.project("blue"), svc) for svc in ("web", "worker", "beat")}
    # A readiness deadline far longer than the worker's crash: the call must end at the exit, and
    # say so, not at the deadline (a machine however slow fails this by the message, not a clock).
    variables = role_vars(demo_stack, nginx, state_dir, "v2", bluegreen_worker_ready_timeout=900)
    variables["bluegreen_compose_variables"] = dict(variables["bluegreen_compose_variables"],
                                                    DEMO_WORKER_CRASH_AT_START="1")
    with Timeline(nginx.url, period=0.05) as probe:
        result = deploy(variables)
    out = result.stdout
    assert result.returncode != 0 and "failed at step 'workers'" in out, out[-5000:]
    assert "not ready within ready_timeout" not in out, "the deploy waited out the deadline"
    assert "exited" in out or "keeps restarting" in out, out[-3000:]
    assert "DEMO_WORKER_CRASH_AT_START=1, exiting" in out, "the worker's last log lines are not shown"
    # Its beat was never created: the rescue drains what there is, it does not give up on the drain.
    assert "could not be drained" not in out, out[-3000:]
    assert probe.first("green") is not None, "traffic never reached the new web (the switch comes first)"
    assert probe.answers[-1][1:] == ("blue", "v1"), "traffic did not go back to the old color"
    assert probe.failures == [], probe.failures[:5]
    for svc, ids in old.items():
        assert project_containers(demo_stack.project("blue"), svc) == ids
        assert [container_state(cid)[0] for cid in ids] == ["running"], svc
    state = json.loads((state_dir / ("%s.json" % demo_stack.app)).read_text())
    assert (state["active_color"], state["release"]) == ("blue", "v1")
    uids = demo_stack.enqueue("blue", n=2, seconds=0.1)
    demo_stack.assert_each_ran_once(uids, timeout=30)


def test_a_web_that_exits_fails_at_once_with_its_last_log_lines(demo_stack, nginx, tmp_path):
    state_dir = tmp_path / "state"
    assert deploy(role_vars(demo_stack, nginx, state_dir, "v1")).returncode == 0
    override = tmp_path / "exiting-web.yml"
    override.write_text(EXITING_WEB)
    # A health deadline far longer than the web's life: the call must end at the exit, and say so.
    variables = role_vars(demo_stack, nginx, state_dir, "v2", bluegreen_health_deadline=900,
                          bluegreen_compose_files=["compose.yml", str(override)])
    with TrafficProbe(nginx.url) as probe:
        result = deploy(variables)
    out = result.stdout
    assert result.returncode != 0 and "failed at step 'web'" in out, out[-5000:]
    assert "not healthy within health.deadline" not in out, "the deploy waited for the health deadline"
    assert "exited (exit code 3)" in out or "keeps restarting" in out, out[-3000:]
    assert "demo web: cannot start, exiting" in out, "the web's last log lines are not shown"
    assert {a[1:] for a in probe.answers} == {("blue", "v1")} and probe.failures == []


def test_a_slow_worker_without_a_health_check_is_awaited(demo_stack, nginx, tmp_path):
    state_dir = tmp_path / "state"
    override = tmp_path / "no-healthcheck.yml"
    override.write_text(NO_HEALTHCHECK_WORKER)
    variables = role_vars(demo_stack, nginx, state_dir, "v1", bluegreen_compose_files=["compose.yml", str(override)],
                          bluegreen_worker_ready_timeout=120, bluegreen_progress_interval=3)
    # The worker burns 8 s of CPU before it consumes: a ping of a few seconds would miss it.
    variables["bluegreen_compose_variables"] = dict(variables["bluegreen_compose_variables"],
                                                    DEMO_WORKER_BOOT_CPU_S="8")
    result = deploy(variables)
    assert result.returncode == 0, result.stdout[-5000:]
    worker = project_containers(demo_stack.project("blue"), "worker")[0]
    assert container_state(worker) == ("running", "none", False), "the worker has a health check after all"
    ready = demo_stack.records.lrange("demo:worker_ready", 0, -1)
    assert ready, "the deploy ended before the worker was ready"
    # The wait was longer than a slice: Ansible showed its progress.
    assert "FAILED - RETRYING" in result.stdout and "workers" in result.stdout
    uids = demo_stack.enqueue("blue", n=2, seconds=0.1)
    demo_stack.assert_each_ran_once(uids, timeout=30)


def test_rollback_to_a_color_a_rescued_deploy_replaced_is_refused_before_anything(demo_stack, nginx, tmp_path):
    state_dir = tmp_path / "state"
    assert deploy(role_vars(demo_stack, nginx, state_dir, "v1")).returncode == 0
    assert deploy(role_vars(demo_stack, nginx, state_dir, "v2")).returncode == 0
    broken = deploy(role_vars(demo_stack, nginx, state_dir, "broken", bluegreen_health_deadline=8))
    assert broken.returncode != 0 and "failed at step 'web'" in broken.stdout, broken.stdout[-3000:]
    before = {cid: container_state(cid) for ids in project_containers(demo_stack.project("blue")).values()
              for cid in ids}
    with TrafficProbe(nginx.url) as probe:
        result = deploy(role_vars(demo_stack, nginx, state_dir, "v1"), playbook="rollback.yml")
    out = result.stdout
    assert result.returncode != 0, out[-3000:]
    assert "holds release broken, not v1" in out and "bluegreen_release=v1" in out, out[-3000:]
    assert "lowspec-demo:v1 is still here" in out, out[-3000:]
    after = {cid: container_state(cid) for ids in project_containers(demo_stack.project("blue")).values()
             for cid in ids}
    assert after == before, "the rollback touched the replaced color before refusing"
    assert {a[1:] for a in probe.answers} == {("green", "v2")} and probe.failures == []
