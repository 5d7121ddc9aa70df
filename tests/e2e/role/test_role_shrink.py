# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Quiesce mode `shrink` and worker warm-up, end to end on the real stack.

In shrink mode the old workers keep consuming with one pool process while the
new color starts, so tasks never stop completing; traffic moves once the new
web is healthy; the old beat stops (seen exited) only once the new workers are
ready, just before the new beat starts; then the old workers drain and stop.
The rescue grows the old pools back, or restarts what was already stopped.
"""

from __future__ import annotations

import json
import threading
import time

from tests.support.docker_cli import container_state, docker, project_containers
from tests.support.runner import deploy, module_tasks, timeline_env
from tests.support.stack import TrafficProbe, assert_deployed, role_vars, states

SHRINK = {
    "bluegreen_quiesce_mode": "shrink",
    "bluegreen_quiesce_keep_processes": 1,
    "bluegreen_worker_warmup_concurrency": 1,
    "bluegreen_worker_concurrency": 2,
    "bluegreen_worker_concurrency_variable": "DEMO_CONCURRENCY",
}


def app_vars(stack, nginx, state_dir, release, **overrides):
    """Role variables with a prefetch multiplier of 2 (see the role README: with 1, a
    one-process pool on Redis fetches the next message only after each ack)."""
    variables = role_vars(stack, nginx, state_dir, release, **overrides)
    variables["bluegreen_compose_variables"] = dict(variables["bluegreen_compose_variables"], DEMO_PREFETCH="2")
    return variables


def pool_processes(cid):
    """Celery pool processes in a worker container (the main process not counted)."""
    rows = docker("top", cid, "-eo", "pid,args").splitlines()[1:]
    return len([row for row in rows if "celery" in row and "worker" in row]) - 1


def wait_until(predicate, timeout, message):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, message
        time.sleep(0.5)


def completions(stack):
    """{uid: (time, color)} of every task completion."""
    return {item["uid"]: (item["t"], item["color"])
            for item in map(json.loads, stack.records.lrange("demo:done", 0, -1))}


class TaskStream:
    """Enqueues one short task every `period` seconds through the old web, in a thread.

    `enqueued` also holds the tasks queued before it started (`earlier`), so that
    their completions count as tasks completing.
    """

    def __init__(self, stack, color, period=0.5, seconds=0.1, earlier=None):
        self.stack, self.color, self.period, self.seconds = stack, color, period, seconds
        self.enqueued = dict(earlier or {})  # uid -> time it was enqueued
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for uid in self.stack.enqueue(self.color, n=1, seconds=self.seconds):
                self.enqueued[uid] = time.time()
            self._stop.wait(self.period)

    def longest_stall(self, done, start, end):
        """(seconds, from) of the longest stretch of [start, end] in which a task was waiting and none completed.

        A stretch counts only when some task was enqueued before it and completed
        after it: a web slowed down by a loaded host delays arrivals, not the workers.
        """
        times = sorted([start, end] + [done[uid][0] for uid in self.enqueued if uid in done
                                       and start <= done[uid][0] <= end])
        stalls = [(b - a, a) for a, b in zip(times, times[1:])
                  if any(queued <= a and done.get(uid, (float("inf"),))[0] >= b
                         for uid, queued in self.enqueued.items())]
        return max(stalls, default=(0.0, start))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)


def test_shrink_mode_keeps_tasks_flowing_one_beat_and_rescues_by_growing_back(demo_stack, nginx, tmp_path):
    stack, state_dir = demo_stack, tmp_path / "state"
    assert_deployed(deploy(app_vars(stack, nginx, state_dir, "v1")), stack, nginx, state_dir, "blue", "v1")
    blue = {svc: project_containers(stack.project("blue"), svc) for svc in ("web", "worker", "beat")}
    worker = blue["worker"][0]

    # 1. A broken release fails at 'health' while the old workers run shrunk:
    #    the rescue grows them back in place; beat was never stopped.
    beat_started = json.loads(docker("inspect", blue["beat"][0]))[0]["State"]["StartedAt"]
    with TrafficProbe(nginx.url) as probe:
        result = deploy(app_vars(stack, nginx, state_dir, "broken", bluegreen_health_deadline=8, **SHRINK))
    assert result.returncode != 0 and "failed at step 'web'" in result.stdout, result.stdout[-4000:]
    assert probe.failures == [] and {a[1:] for a in probe.answers} == {("blue", "v1")}
    for svc, ids in blue.items():
        assert project_containers(stack.project("blue"), svc) == ids
        assert [container_state(cid)[0] for cid in ids] == ["running"]
    assert json.loads(docker("inspect", blue["beat"][0]))[0]["State"]["StartedAt"] == beat_started
    wait_until(lambda: pool_processes(worker) == 2, 30, "the old worker's pool was not grown back")

    # 2. A switch that fails (nginx -t refuses) comes before the new workers and
    #    beat start: the old beat never stopped, the old pools grow back in place.
    result = deploy(app_vars(stack, nginx, state_dir, "v2", bluegreen_nginx_test_command=["false"], **SHRINK))
    assert result.returncode != 0 and "failed at step 'switch'" in result.stdout, result.stdout[-4000:]
    for svc, ids in blue.items():
        assert project_containers(stack.project("blue"), svc) == ids
        assert [container_state(cid)[0] for cid in ids] == ["running"]
    assert all(s != "running" for s in states(stack, "green", "worker") + states(stack, "green", "beat"))
    assert json.loads(docker("inspect", blue["beat"][0]))[0]["State"]["StartedAt"] == beat_started
    assert stack.beat_runs() == ["blue"], "a new beat sent although the deploy failed before the workers"
    wait_until(lambda: pool_processes(worker) == 2, 30, "the old worker's pool was not grown back")

    # 3. The real deploy, under a backlog and a steady task stream.
    backlog = dict.fromkeys(stack.enqueue("blue", n=8, seconds=0.5), time.time())
    with TrafficProbe(nginx.url) as probe, TaskStream(stack, "blue", earlier=backlog) as stream:
        time.sleep(1)
        start = time.time()
        timeline = tmp_path / "timeline.jsonl"
        result = deploy(app_vars(stack, nginx, state_dir, "v2", **SHRINK), env=timeline_env(timeline))
        end = time.time()
        time.sleep(1)
    state = assert_deployed(result, stack, nginx, state_dir, "green", "v2")
    assert probe.failures == [], "requests failed through the proxy during the deploy: %s" % probe.failures[:5]
    uids = list(stream.enqueued)
    stack.assert_each_ran_once(uids, timeout=90)
    done = completions(stack)
    stall, stall_at = stream.longest_stall(done, start, end)
    print("\nshrink deploy: %.1f s, %d tasks, longest stretch with a task waiting and none completing: %.2f s"
          % (end - start, len(uids), stall))
    around = sorted((round(t - start, 2), color) for t, color in done.values() if stall_at - 3 <= t <= stall_at + stall + 3)
    tasks = [(round(e["t"] - start, 2), e["event"], e["task"]) for e in map(json.loads, timeline.read_text().splitlines())
             if stall_at - 5 <= e["t"] <= stall_at + stall + 2]
    assert stall < 2.0, "tasks waited %.2f s with none completing at +%.1f s of the deploy; completions around " \
        "it: %s; role tasks around it: %s" % (stall, stall_at - start, around, tasks)
    # Never two schedulers: the runs of beat sends alternate colors, never interleave.
    assert stack.beat_runs() == ["blue", "green"], stack.beat_runs()
    # The old color retired (containers kept), the new workers grown from the warm-up pool of 1.
    assert states(stack, "blue", "worker") == ["exited"] and states(stack, "blue", "beat") == ["exited"]
    new_worker, = project_containers(stack.project("green"), "worker")
    wait_until(lambda: pool_processes(new_worker) == 2, 30, "the new worker did not grow from its warm-up pool")
    record = state["history"][0]
    assert record["quiesce_mode"] == "shrink"
    # What the deploy left stopped: the old beat (before the new one started) and the retired worker.
    assert {(c["service"], c["action"]) for c in record["stopped"]} == {("beat", "stopped"), ("worker", "stopped")}
    # The new workers' start, the old workers' retirement, the pools' growth, the record and (no gate) the
    # lock's release are one module call; the lock is taken by the prepare call.
    on_host = module_tasks(timeline)
    assert len(on_host) == 3, on_host
