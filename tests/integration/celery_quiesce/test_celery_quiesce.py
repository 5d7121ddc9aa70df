# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""celery_quiesce against the real daemon, the demo app, a real Redis broker and real Celery.

One demo instance serves the whole file (its set-up costs more than most tests);
each test starts from the blue color running and leaves it running.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.support.docker_cli import container_state, docker, project_containers
from tests.support.runner import run_module
from tests.support.stack import DemoStack

CELERY = {"celery_command": ["python3", "-m", "celery"], "celery_app": "tasks"}


@pytest.fixture(scope="module")
def stack():
    """One demo instance for this file, blue color up; torn down at the end."""
    demo = DemoStack("cq%s" % uuid.uuid4().hex[:8])
    try:
        demo.up_shared()
        demo.up_color("blue")
        yield demo
    finally:
        demo.teardown()


@pytest.fixture
def blue(stack):
    """The blue color running (whatever an earlier test left), its beat sending."""
    for cid in project_containers(stack.project("blue"), "worker") + project_containers(stack.project("blue"), "beat"):
        status, _health, paused = container_state(cid)
        if paused:
            docker("unpause", cid)
        elif status != "running":
            docker("start", cid)
    stack.up_color("blue")
    for cid in project_containers(stack.project("blue"), "worker"):  # consumers an earlier failure may have left cancelled
        node = "celery@" + json.loads(docker("inspect", cid))[0]["Config"]["Hostname"]
        docker("exec", cid, "python3", "-m", "celery", "-A", "tasks", "control", "add_consumer", "celery",
               "--destination", node, "--json")
    wait_for(lambda: stack.records.llen("demo:beat_sends") > 0, 30)
    return stack


def quiesce(stack, **args):
    return run_module("celery_quiesce", dict(CELERY, project=stack.project("blue"), **args))


def resume(stack, **args):
    return run_module("celery_quiesce", dict(CELERY, project=stack.project("blue"), state="resumed", **args))


def wait_for(predicate, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %s s" % timeout)
        time.sleep(interval)


def started(stack, uid):
    wait_for(lambda: stack.records.hexists("demo:started", uid), 30)


def snapshot(stack):
    """{id: (service, status, paused)} of the project's containers."""
    found = {}
    for service, ids in project_containers(stack.project("blue")).items():
        for cid in ids:
            status, _health, paused = container_state(cid)
            found[cid] = (service, status, paused)
    return found


def finished_at(cid):
    stamp = json.loads(docker("inspect", cid))[0]["State"]["FinishedAt"]
    head, _dot, frac = stamp.rstrip("Z").partition(".")
    moment = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return moment.timestamp() + float("0." + (frac or "0"))


def done_record(stack, uid):
    for raw in stack.records.lrange("demo:done", 0, -1):
        item = json.loads(raw)
        if item["uid"] == uid:
            return item
    return None


def beat_sends(stack):
    return [json.loads(raw) for raw in stack.records.lrange("demo:beat_sends", 0, -1)]


def cpu_ns(cid):
    """CPU time used by a container so far (cgroup v1, Docker's cgroupfs driver)."""
    return int(Path("/sys/fs/cgroup/cpuacct/docker/%s/cpuacct.usage" % cid).read_text())


def unacked_task_ids(stack):
    """Task ids of the messages the Redis broker holds as delivered but not acknowledged."""
    ids = set()
    for raw in stack.broker().hgetall("unacked").values():
        message = json.loads(raw)[0]
        ids.add(message["headers"]["id"])
    return ids


def test_stop_mode_drains_a_running_task_stops_beat_first_and_resumes_the_same_containers(blue):
    stack = blue
    before = snapshot(stack)
    worker, = project_containers(stack.project("blue"), "worker")
    beat, = project_containers(stack.project("blue"), "beat")

    planned = run_module("celery_quiesce", dict(CELERY, project=stack.project("blue")), check_mode=True)
    assert planned["rc"] == 0 and planned["changed"], planned
    assert [(c["id"], c["action"]) for c in planned["containers"]] == [(beat, "stopped"), (worker, "stopped")]
    assert snapshot(stack) == before

    uid, = stack.enqueue("blue", n=1, seconds=4)
    started(stack, uid)
    result = quiesce(stack, drain_timeout=30, stop_timeout=30)
    assert result["rc"] == 0, "%s\n%s" % (result.get("msg"), result)
    assert result["changed"] and result["drained"] is True and result["still_active"] == []
    # The task finished, successfully, before its worker stopped.
    assert stack.records.hget("demo:runs", uid) == "1"
    assert done_record(stack, uid)["t"] < finished_at(worker)
    assert result["containers"] == [
        {"id": beat, "service": "beat", "action": "stopped", "queues": []},
        {"id": worker, "service": "worker", "action": "stopped", "queues": ["celery"]},
    ]
    assert result["beat_stopped"] == {"containers": [beat], "exited": True}
    assert finished_at(beat) < finished_at(worker)
    assert {"cancel", "drain", "stop", "exit", "total"} <= set(result["timings"])
    assert result["broker_checked"] is True and result["restored"] == []
    print("\nstop mode timings:", result["timings"])
    assert container_state(worker)[0] == "exited" and container_state(beat)[0] == "exited"
    beat_stop = finished_at(beat)
    sends_at_stop = len(beat_sends(stack))

    again = quiesce(stack, drain_timeout=30, stop_timeout=30)
    assert again["rc"] == 0 and not again["changed"] and again["containers"] == [], again

    time.sleep(2.5)  # more than two beat periods with no beat running
    resume_start = time.time()
    back = resume(stack, containers=result["containers"], ready_timeout=60)
    assert back["rc"] == 0, back
    assert back["resumed"] == [worker, beat]
    print("resume after stop timings:", back["timings"])
    # No beat send between the old beat's stop and the resume.
    assert not [s for s in beat_sends(stack) if beat_stop < s["t"] < resume_start]
    assert len(beat_sends(stack)) >= sends_at_stop
    # The very same containers, running again, and consuming.
    after = snapshot(stack)
    assert set(after) == set(before) and all(state[1] == "running" for state in after.values())
    uid2, = stack.enqueue("blue", n=1, seconds=0.1)
    assert stack.wait_done([uid2], timeout=30) == {uid2: 1}
    wait_for(lambda: len(beat_sends(stack)) > sends_at_stop, 10)


def test_a_task_longer_than_the_drain_is_reported_and_not_lost(blue):
    stack = blue
    worker, = project_containers(stack.project("blue"), "worker")

    # Longer than drain_timeout, shorter than stop_timeout: warm shutdown lets it finish.
    uid, = stack.enqueue("blue", n=1, seconds=15)
    started(stack, uid)
    result = quiesce(stack, drain_timeout=1, stop_timeout=40)
    assert result["rc"] == 0, "%s\n%s" % (result.get("msg"), result)
    assert result["drained"] is False
    (task,) = [t for t in result["still_active"] if t["state"] == "active"]
    assert task["name"] == "tasks.work" and task["container"] == worker
    assert stack.records.hget("demo:runs", uid) == "1"
    assert done_record(stack, uid)["t"] < finished_at(worker)
    assert resume(stack, containers=result["containers"])["rc"] == 0

    # Longer than stop_timeout too: killed. Its message (acks_late) would stay unacknowledged in the broker
    # until the visibility timeout; the quiesce puts it back in its queue, and it runs once after the resume.
    uid, = stack.enqueue("blue", n=1, seconds=20)
    started(stack, uid)
    result = quiesce(stack, drain_timeout=1, stop_timeout=1)
    assert result["rc"] == 0, "%s\n%s" % (result.get("msg"), result)
    (task,) = [t for t in result["still_active"] if t["state"] == "active"]
    assert not stack.records.hexists("demo:runs", uid)
    assert [t["id"] for t in result["restored"]] == [task["id"]] and task["id"] not in unacked_task_ids(stack)
    assert resume(stack, containers=result["containers"])["rc"] == 0
    stack.assert_each_ran_once([uid], timeout=60, what="the killed task")


def test_pause_mode_frees_the_cpu_and_resumes_in_under_a_second(blue):
    stack = blue
    worker, = project_containers(stack.project("blue"), "worker")
    beat, = project_containers(stack.project("blue"), "beat")

    uid, = stack.enqueue("blue", n=1, seconds=15)  # burns a core
    started(stack, uid)
    result = quiesce(stack, mode="pause", drain_timeout=1, max_pause=120)
    assert result["rc"] == 0, "%s\n%s" % (result.get("msg"), result)
    assert result["containers"] == [
        {"id": beat, "service": "beat", "action": "stopped", "queues": []},
        {"id": worker, "service": "worker", "action": "paused", "queues": ["celery"]},
    ]
    assert [t["id"] for t in result["still_active"] if t["state"] == "active"]
    assert container_state(worker)[2] is True and container_state(beat)[0] == "exited"

    first = cpu_ns(worker)
    time.sleep(2)
    frozen_ns = cpu_ns(worker) - first
    print("\nCPU used by the frozen worker in 2 s: %d ns" % frozen_ns)
    assert frozen_ns == 0
    assert not stack.records.hexists("demo:runs", uid)

    again = quiesce(stack, mode="pause", drain_timeout=1, max_pause=120)
    assert again["rc"] == 0 and not again["changed"] and again["containers"] == []

    wall = time.monotonic()
    back = resume(stack, containers=result["containers"])
    wall = time.monotonic() - wall
    assert back["rc"] == 0, back
    assert back["resumed"] == [worker, beat]
    print("pause resume timings:", back["timings"], "module wall %.2f s" % wall)
    assert back["timings"]["start"] < 1.0  # unfrozen
    assert container_state(worker)[2] is False
    # The frozen task finishes after the resume, once; and the worker consumes again.
    assert stack.wait_done([uid], timeout=30) == {uid: 1}
    uid2, = stack.enqueue("blue", n=1, seconds=0.1)
    assert stack.wait_done([uid2], timeout=30) == {uid2: 1}


def test_bad_input_fails_and_changes_nothing(blue):
    stack = blue
    before = snapshot(stack)
    project = stack.project("blue")
    cases = [
        (dict(mode="pause", drain_timeout=300, max_pause=3300), "visibility_timeout (3600 s)"),
        (dict(project="%s-nope" % stack.app), "has no containers"),
        (dict(worker_services=["worker", "celery-low"]), "service celery-low not found"),
        (dict(worker_services=["worker", "beat"], beat_services=[]), "is not a Celery worker"),
        (dict(celery_app="nosuchapp"), "No module named 'nosuchapp'"),
        (dict(drain_timeout=-1), "drain_timeout"),
        (dict(stop_timeout=-5), "stop_timeout"),
        (dict(state="resumed", containers=["0123456789ab"]), "is not a container of project"),
    ]
    for args, expected in cases:
        params = dict(CELERY, project=project)
        params.update(args)
        result = run_module("celery_quiesce", params)
        assert result["rc"] != 0 and result.get("failed"), (args, result)
        assert expected in result["msg"], (args, result["msg"])
        assert not result.get("changed") and not result.get("containers"), (args, result)
        assert snapshot(stack) == before, args
    # Beat kept sending all along, and the worker still consumes.
    count = len(beat_sends(stack))
    wait_for(lambda: len(beat_sends(stack)) > count, 10)
    uid, = stack.enqueue("blue", n=1, seconds=0.1)
    assert stack.wait_done([uid], timeout=30) == {uid: 1}


def pool_processes(cid):
    """Celery processes in the worker container: the main process plus its pool."""
    rows = docker("top", cid, "-eo", "pid,args").splitlines()[1:]
    return len([row for row in rows if "celery" in row and "worker" in row]) - 1


def test_shrink_mode_keeps_tasks_and_beat_flowing_and_resume_grows_the_pool_back(blue):
    stack = blue
    worker, = project_containers(stack.project("blue"), "worker")
    beat, = project_containers(stack.project("blue"), "beat")
    wait_for(lambda: pool_processes(worker) == 2, 30)
    before = snapshot(stack)

    # A backlog keeps both pool processes busy: the shrink must still get through.
    backlog = stack.enqueue("blue", n=12, seconds=0.5)
    started(stack, backlog[0])
    result = quiesce(stack, mode="shrink", keep_processes=1, drain_timeout=60)
    assert result["rc"] == 0, "%s\n%s" % (result.get("msg"), result)
    print("\nshrink timings:", result["timings"], "actions:", len(result["actions"]))
    assert result["changed"] and result["drained"] is False
    shrunk, = result["containers"]
    # `at`: when it was written down, just before its first pool_shrink (the deploy's first change).
    assert shrunk.pop("at") <= time.time()
    assert shrunk == {"id": worker, "service": "worker", "action": "shrunk", "queues": [], "pool": {"before": 2, "after": 1}}
    assert result["beat_stopped"]["containers"] == []
    # The demo sets task_acks_late and task_reject_on_worker_lost: a task the shrink ends as it starts comes back.
    assert not [w for w in result.get("warnings", []) if "task_acks_late" in w], result["warnings"]
    wait_for(lambda: pool_processes(worker) == 1, 15)  # billiard ends the process once it is idle
    # Beat, web and worker containers all still run: nothing was stopped.
    assert snapshot(stack) == before

    # The old release keeps working at a trickle: the backlog completes, once each, and beat goes on.
    sends = len(beat_sends(stack))
    stack.assert_each_ran_once(backlog, timeout=60)
    wait_for(lambda: len(beat_sends(stack)) > sends, 10)
    again = quiesce(stack, mode="shrink", keep_processes=1)
    assert again["changed"] is False, (json.dumps({k: again.get(k) for k in ("pools", "timings", "warnings", "actions")}),
                                       pool_processes(worker), docker("top", worker, "-eo", "pid,ppid,lstart,args"))

    back = resume(stack, containers=result["containers"], ready_timeout=60)
    assert back["rc"] == 0, back
    assert back["pools"] == {worker: {"before": 1, "after": 2}}
    assert back["resumed"] == []  # grown in place, nothing restarted
    wait_for(lambda: pool_processes(worker) == 2, 30)  # the new process forks and imports
    assert snapshot(stack) == before
    uid, = stack.enqueue("blue", n=1, seconds=0.1)
    assert stack.wait_done([uid], timeout=30) == {uid: 1}


def restart_policy(cid):
    return json.loads(docker("inspect", cid))[0]["HostConfig"]["RestartPolicy"]["Name"]


def test_stopped_workers_and_beat_with_restart_always_will_not_come_back_on_a_reboot(blue):
    stack = blue
    worker, = project_containers(stack.project("blue"), "worker")
    beat, = project_containers(stack.project("blue"), "beat")
    docker("update", "--restart", "always", worker, beat)
    result = quiesce(stack, drain_timeout=30, stop_timeout=30)
    assert result["rc"] == 0, "%s\n%s" % (result.get("msg"), result)
    # `always` would start them again when the daemon starts, beside the new color's beat.
    assert restart_policy(worker) == restart_policy(beat) == "unless-stopped"
    assert "update --restart unless-stopped %s" % beat in result["actions"]
    back = resume(stack, containers=result["containers"], ready_timeout=60)
    assert back["rc"] == 0, back
    assert container_state(worker)[0] == container_state(beat)[0] == "running"


def test_no_task_pushed_while_the_workers_shut_down_is_lost(blue, tmp_path):
    """The Redis transport's last fetch (BRPOP, up to 1 s) outlives the cancel: a message the broker hands to it
    after the worker was told to stop would be read by no one. The quiesce stops a worker only once its fetch is
    over, so every task pushed during the warm shutdown waits in the queue for the next worker."""
    pushed, fetch_waits = [], []
    calls = dict(beat_services=[], drain_timeout=30, stop_timeout=60, journal=str(tmp_path / "journal.json"))
    for _cycle in range(4):
        time.sleep(0.5)
        told = quiesce(blue, wait_exited=False, **calls)
        assert told["rc"] == 0 and told["stopping"], told
        fetch_waits.append(told["timings"].get("fetch"))
        # The old web serves on: tasks arrive while the worker shuts down (SIGTERM sent, still connected).
        for _push in range(3):
            time.sleep(0.15)
            pushed.extend(blue.enqueue("blue", n=1, seconds=0.05))
        done = quiesce(blue, **calls)
        assert done["rc"] == 0 and not done["stopping"], done
        assert resume(blue, beat_services=[], journal=calls["journal"])["rc"] == 0
    blue.assert_each_ran_once(pushed, timeout=120, what="tasks pushed while the old worker shut down")
    assert all(wait is not None and wait < 5 for wait in fetch_waits), fetch_waits
