# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""celery_quiesce flows with the Docker CLI replaced by an in-memory host (no real binary).

Celery's replies come from the captured fixtures of the demo worker; the fake
host keeps container states and each worker's consumed queues, so the tests
check what is called, in which order, and what the module reports.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import BlueGreenError
from ansible_collections.lowspec.bluegreen.plugins.module_utils._state import write_state
from ansible_collections.lowspec.bluegreen.plugins.modules import celery_quiesce

FIXTURES = Path(__file__).parents[1] / "module_utils" / "fixtures"
PROJECT = "shop-blue"


def captured(name):
    return json.loads((FIXTURES / ("celery-%s.json" % name)).read_text())


def container(service, index=1, state="running", health="none"):
    cid = ("%s%d" % (service, index)).ljust(64, "0")
    return {"id": cid, "name": "%s-%s-%d" % (PROJECT, service, index), "service": service, "project": PROJECT,
            "state": state, "running": state == "running", "paused": state == "paused", "health": health,
            "hostname": cid[:12], "oneoff": False}


class FakeHost:
    """Stands in for DockerCLI: containers in memory, celery answered from captured replies."""

    def __init__(self, containers, active_polls=0, ping=None, boot_polls=0, pool=2, busy_shrinks=0, conf=None,
                 stale_polls=0):
        self.containers = {c["id"]: copy.deepcopy(c) for c in containers}
        self.queues = {c["id"]: ["celery"] for c in containers if c["service"] == "worker" and c["running"]}
        self.pool = {c["id"]: pool for c in containers if c["service"] == "worker"}
        self.full_pool = pool
        self.busy_shrinks = busy_shrinks  # pool_shrink answers "busy" this often while consumers are on
        self.conf = conf  # the settings `inspect conf` answers; None: the demo's (acks late, reject on worker lost)
        # After a pool_shrink, `inspect stats` still lists the ended process this many times (billiard drops it
        # from its list only at its next pool maintenance); a pool_shrink meanwhile ends a second one.
        self.stale_polls = stale_polls
        self.stale = {}
        self.active_polls = active_polls  # polls of `inspect active` that still show a task
        self.ping = ping or {}  # container id -> fixture name of its ping reply
        self.boot_polls = boot_polls
        self.calls = []
        self.actions = []

    # DockerCLI's interface
    def info(self):
        return {}

    def project_containers(self, project, services=None):
        return [copy.deepcopy(c) for c in self.containers.values() if c["project"] == project]

    def inspect_containers(self, ids):
        self.calls.append(("inspect",))
        found = []
        for cid in ids:
            item = self.containers[cid]
            if item["state"] == "running" and item.get("booting"):
                item["booting"] -= 1
                if not item["booting"]:
                    item["health"] = "healthy"
            found.append(copy.deepcopy(item))
        return found

    def container_op(self, op, ids, timeout=None):
        if not ids:
            return
        self.calls.append((op, tuple(ids), timeout))
        self.actions.append("%s %s" % (op, " ".join(ids)))
        for cid in ids:
            item = self.containers[cid]
            state = {"stop": "exited", "start": "running", "pause": "paused", "unpause": "running"}[op]
            item.update(state=state, running=state == "running", paused=state == "paused")
            if op == "start" and item["service"] == "worker":
                self.queues[cid] = ["celery"]
                self.pool[cid] = self.full_pool
                item["health"] = "starting" if self.boot_polls else "healthy"
                item["booting"] = self.boot_polls

    def exec_in(self, cid, argv, check=True, env=None):
        item = self.containers[cid]
        if not item["running"]:
            return 1, "", "Error response from daemon: Container %s is not running" % cid
        if "celeryx" in argv:
            data = captured("no-module")
            return data["rc"], data["stdout"], data["stderr"]
        if "-A" in argv and argv[argv.index("-A") + 1] == "nosuchapp":
            data = captured("app-not-found")
            return data["rc"], data["stdout"], data["stderr"]
        kind = "inspect" if "inspect" in argv else "control"
        method = argv[argv.index(kind) + 1]
        node = "celery@" + item["hostname"]
        self.calls.append(("celery", cid[:12], method))
        if item["service"] != "worker":
            data = captured("ping-no-reply")
            return data["rc"], data["stdout"], data["stderr"]
        if method == "ping" and "--destination" not in argv:
            return 0, json.dumps({"celery@someone-else": {"ok": "pong"}}), ""
        if method == "ping" and item.get("booting"):
            data = captured("ping-no-reply")  # a booting worker does not answer yet
            return data["rc"], data["stdout"], data["stderr"]
        if method == "ping":
            return 0, json.dumps({node: {"ok": "pong"}}), ""
        if method == "active_queues":
            full = json.loads(captured("active-queues")["stdout"])
            template = list(full.values())[0][0]
            return 0, json.dumps({node: [dict(template, name=q) for q in self.queues[cid]]}), ""
        if method in ("cancel_consumer", "add_consumer"):
            queue = argv[argv.index(method) + 1]
            if method == "cancel_consumer":
                self.queues[cid].remove(queue)
                return 0, json.dumps([{node: {"ok": "no longer consuming from %s" % queue}}]), ""
            if queue not in self.queues[cid]:
                self.queues[cid].append(queue)
            return 0, json.dumps([{node: {"ok": "add consumer %s" % queue}}]), ""
        if method == "reserved":
            return 0, json.dumps({node: []}), ""
        if method == "conf":
            conf = list(json.loads(captured("conf")["stdout"]).values())[0] if self.conf is None else self.conf
            return 0, json.dumps({node: conf}), ""
        if method == "stats":
            stats = json.loads(captured("stats")["stdout"])
            reply = list(stats.values())[0]
            listed = self.pool[cid]
            if self.stale.get(cid):
                self.stale[cid] -= 1
                listed += 1
            reply["pool"]["processes"] = list(range(100, 100 + listed))
            return 0, json.dumps({node: reply}), ""
        if method in ("pool_shrink", "pool_grow"):
            count = int(argv[argv.index(method) + 1])
            if method == "pool_grow":
                self.pool[cid] += count
                return 0, captured("pool-grow")["stdout"].replace("celery@8296434d8e9e", node), ""
            if self.busy_shrinks and self.queues[cid]:
                self.busy_shrinks -= 1
                return 0, captured("pool-shrink-busy")["stdout"].replace("celery@8296434d8e9e", node), ""
            self.pool[cid] -= count
            self.stale[cid] = self.stale_polls
            return 0, captured("pool-shrink")["stdout"].replace("celery@8296434d8e9e", node), ""
        if method == "active":
            if self.active_polls:
                self.active_polls -= 1
                tasks = list(json.loads(captured("active")["stdout"]).values())[0]
                return 0, json.dumps({node: tasks}), ""
            return 0, json.dumps({node: []}), ""
        raise AssertionError("unexpected celery call %s" % argv)

    def ops(self):
        return [call for call in self.calls if call[0] in ("stop", "start", "pause", "unpause")
                or (call[0] == "celery" and call[2] in ("cancel_consumer", "add_consumer", "pool_shrink", "pool_grow"))]


class FakeModule:
    def __init__(self, params, check_mode=False):
        self.params = params
        self.check_mode = check_mode


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


DEFAULTS = dict(app=None, color=None, project=PROJECT, state_dir="/nonexistent", state="quiesced", mode="stop",
                worker_services=["worker"], beat_services=["beat"], celery_app="tasks",
                celery_command=["python3", "-m", "celery"], drain_timeout=300, stop_timeout=60,
                ready_timeout=120, visibility_timeout=3600, max_pause=600, containers=None,
                keep_processes=1, processes=None, journal=None,
                queues=["celery"], docker_host=None)


def run(host, check_mode=False, **params):
    args = dict(DEFAULTS, **params)
    clock = Clock()
    manager = celery_quiesce.CeleryQuiesceManager(FakeModule(args, check_mode), cli=host, clock=clock,
                                                  sleep=clock.sleep)
    return manager.run()


def fail(host, **params):
    with pytest.raises(BlueGreenError) as err:
        run(host, **params)
    return str(err.value)


def demo(**states):
    return [container("web"), container("worker", state=states.get("worker", "running"), health="healthy"),
            container("beat", state=states.get("beat", "running"))]


WORKER = container("worker")["id"]
BEAT = container("beat")["id"]


def test_quiesce_stops_beat_first_then_cancels_drains_and_stops_workers():
    host = FakeHost(demo(), active_polls=2)
    result = run(host)
    assert host.ops() == [
        ("stop", (BEAT,), 60),
        ("celery", WORKER[:12], "cancel_consumer"),
        ("stop", (WORKER,), 60),
    ]
    first_worker_call = next(i for i, c in enumerate(host.calls) if c[0] == "celery" and c[2] == "active_queues")
    assert ("inspect",) in host.calls[:first_worker_call]  # beat seen exited before workers were touched
    assert result["changed"] and result["drained"] and result["still_active"] == []
    assert result["containers"] == [
        {"id": BEAT, "service": "beat", "action": "stopped", "queues": []},
        {"id": WORKER, "service": "worker", "action": "stopped", "queues": ["celery"]},
    ]
    assert result["queues"] == {WORKER: ["celery"]}
    assert result["beat_stopped"] == {"containers": [BEAT], "exited_before_workers": True}
    assert set(result["timings"]) == {"beat", "cancel", "drain", "stop", "total"}
    assert result["timings"]["drain"] == 1.0  # two polls with a task, 0.5 s apart


def test_reserved_is_read_before_active_in_every_poll():
    host = FakeHost(demo())
    run(host)
    polls = [c[2] for c in host.calls if c[0] == "celery" and c[2] in ("reserved", "active")]
    assert polls == ["reserved", "active"]


def test_a_task_past_the_drain_deadline_is_reported_and_the_worker_still_stops():
    host = FakeHost(demo(), active_polls=1000)
    result = run(host, drain_timeout=3, stop_timeout=90)
    assert not result["drained"]
    (task,) = result["still_active"]
    assert task["name"] == "tasks.work" and task["state"] == "active"
    assert task["worker"] == "celery@" + WORKER[:12] and task["container"] == WORKER
    assert result["timings"]["drain"] == 3.0
    assert host.ops()[-1] == ("stop", (WORKER,), 90)
    (warning,) = [w for w in result["warnings"] if "drain_timeout" in w]
    assert warning.startswith("1 task(s) still held when drain_timeout (3 s) passed, left to the warm shutdown "
                              "(stop_timeout 90 s)") and task["id"] in warning


def test_a_drained_worker_gives_no_drain_warning():
    result = run(FakeHost(demo()))
    assert result["drained"] and not [w for w in result.get("warnings", []) if "drain_timeout" in w]


class SilentHost(FakeHost):
    """A loaded worker: `inspect active` exits 0 with a reply that lacks its node."""

    def __init__(self, containers, silent_polls):
        super().__init__(containers)
        self.silent_polls = silent_polls

    def exec_in(self, cid, argv, check=True, env=None):
        if "active" in argv and "inspect" in argv and self.silent_polls:
            self.silent_polls -= 1
            self.calls.append(("celery", cid[:12], "active"))
            return 0, "{}", ""
        return super().exec_in(cid, argv, check, env)


def test_a_worker_that_does_not_reply_is_never_taken_as_drained():
    result = run(SilentHost(demo(), silent_polls=1000), drain_timeout=3)
    assert result["drained"] is False
    assert any("no reply from celery@" in w for w in result["warnings"])


def test_a_late_reply_keeps_the_drain_going_until_the_worker_answers_empty():
    host = SilentHost(demo(), silent_polls=2)
    result = run(host, drain_timeout=30)
    assert result["drained"] is True
    assert [c[2] for c in host.calls if c[0] == "celery" and c[2] == "active"] == ["active"] * 3


def test_pause_mode_freezes_workers_but_stops_beat():
    host = FakeHost(demo())
    result = run(host, mode="pause", drain_timeout=60, max_pause=600)
    assert host.ops() == [("stop", (BEAT,), 60), ("celery", WORKER[:12], "cancel_consumer"), ("pause", (WORKER,), None)]
    assert [c["action"] for c in result["containers"]] == ["stopped", "paused"]


def test_quiescing_a_quiesced_project_changes_nothing():
    for worker_state in ("exited", "paused"):
        host = FakeHost(demo(worker=worker_state, beat="exited"))
        result = run(host)
        assert not result["changed"] and result["containers"] == [] and host.ops() == []


def test_check_mode_reports_what_it_would_stop_and_changes_nothing():
    host = FakeHost(demo(), active_polls=1)
    result = run(host, check_mode=True)
    assert host.ops() == []
    assert result["changed"]
    assert [(c["service"], c["action"]) for c in result["containers"]] == [("beat", "stopped"), ("worker", "stopped")]
    assert result["still_active"][0]["name"] == "tasks.work" and not result["drained"]


def test_pause_guard_refuses_with_the_figures():
    host = FakeHost(demo())
    message = fail(host, mode="pause", drain_timeout=300, max_pause=3300, visibility_timeout=3600)
    assert "300 s" in message and "3300 s" in message and "3600 s" in message and "mode=stop" in message
    assert host.calls == []


@pytest.mark.parametrize("option", celery_quiesce.TIMEOUT_OPTIONS)
def test_negative_timeouts_fail_naming_the_option(option):
    host = FakeHost(demo())
    assert option in fail(host, **{option: -1})
    assert host.calls == []


def test_an_unknown_service_fails_naming_it():
    host = FakeHost(demo())
    message = fail(host, worker_services=["worker", "celery-low"])
    assert "celery-low" in message and "beat, web, worker" in message
    assert host.ops() == []


def test_a_beat_service_named_as_a_worker_fails_before_anything_stops():
    host = FakeHost(demo())
    message = fail(host, worker_services=["worker", "beat"], beat_services=[])
    assert "service beat" in message and "not a Celery worker" in message and "No nodes replied" in message
    assert host.ops() == []


def test_a_celery_app_celery_cannot_load_shows_celerys_message():
    host = FakeHost(demo())
    message = fail(host, celery_app="nosuchapp")
    assert "celery_app=nosuchapp" in message and "The module nosuchapp was not found" in message
    assert host.ops() == []


def test_a_worker_without_celery_fails_quoting_the_message():
    host = FakeHost(demo())
    message = fail(host, celery_command=["python3", "-m", "celeryx"])
    assert "service worker" in message and "No module named celeryx" in message
    assert host.ops() == []


def test_no_such_project_fails():
    assert "has no containers" in fail(FakeHost([]))


def test_a_service_in_both_lists_is_refused():
    assert "both" in fail(FakeHost(demo()), beat_services=["worker"])


def test_resume_after_pause_unfreezes_readds_the_quiesced_queues_then_starts_beat():
    host = FakeHost(demo())
    quiesce = run(host, mode="pause")
    host.calls = []
    host.queues[WORKER] = []
    result = run(host, state="resumed", containers=[dict(c, queues=["celery", "mail"]) if c["service"] == "worker"
                                                    else c for c in quiesce["containers"]])
    assert host.ops() == [
        ("unpause", (WORKER,), None),
        ("celery", WORKER[:12], "add_consumer"),
        ("celery", WORKER[:12], "add_consumer"),
        ("start", (BEAT,), None),
    ]
    assert host.queues[WORKER] == ["celery", "mail"]
    assert result["resumed"] == [WORKER, BEAT] and result["changed"]
    assert set(result["timings"]) == {"start", "ready", "beat", "total"}


def test_resume_after_stop_starts_the_same_containers_and_waits_until_ready():
    host = FakeHost(demo(), boot_polls=3)
    quiesce = run(host)
    host.calls = []
    result = run(host, state="resumed", containers=[c["id"] for c in quiesce["containers"]])
    assert host.ops() == [("start", (WORKER,), None), ("start", (BEAT,), None)]
    assert result["resumed"] == [WORKER, BEAT]
    assert host.containers[WORKER]["health"] == "healthy"
    assert result["timings"]["ready"] > 0


def test_resume_fails_when_a_worker_is_not_ready_in_time():
    host = FakeHost(demo(worker="exited", beat="exited"), boot_polls=1000)
    message = fail(host, state="resumed", ready_timeout=5)
    assert "not ready within ready_timeout (5 s)" in message and "health starting" in message
    assert ("start", (BEAT,), None) not in host.ops()  # beat only comes back after the workers


def test_resume_brings_back_exactly_the_given_containers():
    host = FakeHost(demo(worker="exited", beat="exited"))
    result = run(host, state="resumed", containers=[BEAT[:12]])
    assert host.ops() == [("start", (BEAT,), None)] and result["resumed"] == [BEAT]
    host = FakeHost(demo(worker="exited", beat="exited"))
    result = run(host, state="resumed", containers=[])
    assert host.ops() == [] and not result["changed"]


def test_resume_refuses_a_container_of_another_project():
    host = FakeHost(demo(worker="exited"))
    assert "is not a container of project" in fail(host, state="resumed", containers=["ffff"])
    assert host.ops() == []


@pytest.mark.parametrize("bad", [[{"service": "worker"}], [3], [""], [{"id": "x", "queues": "celery"}]])
def test_resume_refuses_malformed_containers(bad):
    host = FakeHost(demo(worker="exited"))
    assert "containers[0]" in fail(host, state="resumed", containers=bad)
    assert host.calls == []


def test_resume_of_a_running_project_changes_nothing():
    host = FakeHost(demo())
    result = run(host, state="resumed")
    assert host.ops() == [] and not result["changed"] and result["resumed"] == []


def test_resume_gives_queues_back_to_a_running_worker_left_consuming_nothing():
    host = FakeHost(demo(beat="exited"))
    host.queues[WORKER] = []
    result = run(host, state="resumed", containers=[BEAT])
    assert host.ops() == [("celery", WORKER[:12], "add_consumer"), ("start", (BEAT,), None)]
    assert host.queues[WORKER] == ["celery"] and result["changed"]


def test_resume_in_check_mode_reports_and_changes_nothing():
    host = FakeHost(demo(worker="paused", beat="exited"))
    result = run(host, state="resumed", check_mode=True)
    assert host.ops() == [] and result["resumed"] == [WORKER, BEAT] and result["changed"]


def test_color_active_is_read_from_the_state_file(tmp_path):
    write_state(str(tmp_path), "shop", {"version": 1, "app": "shop", "active_color": "blue", "history": []})
    host = FakeHost(demo(worker="exited", beat="exited"))
    result = run(host, project=None, app="shop", color="active", state_dir=str(tmp_path))
    assert result["project"] == "shop-blue"
    assert "no active color" in fail(FakeHost(demo()), project=None, app="shop", color="idle",
                                     state_dir=str(tmp_path / "none"))


# -- mode=shrink, and growing pools back --------------------------------------

def test_shrink_keeps_beat_and_consumers_and_reports_pool_sizes():
    host = FakeHost(demo(), pool=3)
    result = run(host, mode="shrink")
    assert host.ops() == [("celery", WORKER[:12], "pool_shrink"), ("celery", WORKER[:12], "pool_shrink")]
    assert host.pool[WORKER] == 1 and host.queues[WORKER] == ["celery"]
    assert host.containers[BEAT]["state"] == "running"
    assert result["changed"] and result["drained"] is False
    assert result["containers"] == [
        {"id": WORKER, "service": "worker", "action": "shrunk", "queues": [], "pool": {"before": 3, "after": 1}}]
    assert result["pools"] == {WORKER: {"before": 3, "after": 1}}
    assert result["beat_stopped"] == {"containers": [], "exited_before_workers": False}


def test_shrink_warns_when_a_task_it_ends_as_it_starts_would_be_lost():
    # Celery's defaults: acks early, no reject on a lost worker.
    host = FakeHost(demo(), pool=2, conf={"broker_url": "redis://:s3cret@redis:6379/0"})
    result = run(host, mode="shrink")
    (warning,) = result["warnings"]
    assert "celery@%s" % WORKER[:12] in warning and "task_acks_late and task_reject_on_worker_lost" in warning
    assert "is lost, not redelivered" in warning
    assert "s3cret" not in json.dumps(result), "the worker's configuration carries the broker URL"
    assert host.pool[WORKER] == 1, "a warning, not a refusal: tasks may set both themselves"
    # The demo sets both: no warning.
    assert "warnings" not in run(FakeHost(demo(), pool=2), mode="shrink")


def test_shrink_waits_until_the_ended_process_is_gone_so_a_rerun_does_not_shrink_again():
    host = FakeHost(demo(), pool=2, stale_polls=3)
    result = run(host, mode="shrink")
    assert result["pools"][WORKER] == {"before": 2, "after": 1} and host.pool[WORKER] == 1
    stats = [c for c in host.calls if c[0] == "celery" and c[2] == "stats"]
    assert len(stats) == 1 + 4, "one read before, then polls until the ended process is no longer listed"
    again = run(host, mode="shrink")
    assert not again["changed"] and host.pool[WORKER] == 1, "a re-run right after must not end the last process"


def test_shrink_of_a_shrunk_pool_changes_nothing():
    host = FakeHost(demo(), pool=1)
    result = run(host, mode="shrink")
    assert host.ops() == [] and not result["changed"] and result["containers"] == []
    assert result["pools"] == {WORKER: {"before": 1, "after": 1}}


def test_shrink_of_a_busy_pool_starves_it_briefly_and_gives_the_queues_back():
    host = FakeHost(demo(), pool=2, busy_shrinks=5)
    result = run(host, mode="shrink")
    assert host.ops() == [
        ("celery", WORKER[:12], "pool_shrink"),
        ("celery", WORKER[:12], "cancel_consumer"),
        ("celery", WORKER[:12], "pool_shrink"),
        ("celery", WORKER[:12], "add_consumer"),
    ]
    assert host.pool[WORKER] == 1 and host.queues[WORKER] == ["celery"]
    assert result["pools"][WORKER] == {"before": 2, "after": 1}


def test_shrink_in_check_mode_plans_and_changes_nothing():
    host = FakeHost(demo(), pool=2)
    result = run(host, check_mode=True, mode="shrink")
    assert host.ops() == [] and host.pool[WORKER] == 2
    assert result["changed"] and result["containers"][0]["pool"] == {"before": 2, "after": 1}


@pytest.mark.parametrize("params, text", [
    (dict(mode="shrink", keep_processes=0), "keep_processes must be 1 or more"),
    (dict(state="resumed", processes=0), "processes must be 1 or more"),
    (dict(state="resumed", containers=[{"id": WORKER, "pool": {"before": "2"}}]), "containers[0].pool"),
])
def test_pool_options_are_checked_before_anything_changes(params, text):
    host = FakeHost(demo(), pool=2)
    assert text in fail(host, **params)
    assert host.ops() == [] and host.pool[WORKER] == 2


def test_resume_grows_a_shrunk_worker_back_and_starts_a_stopped_one_fresh():
    host = FakeHost(demo(), pool=2)
    shrunk = run(host, mode="shrink")
    assert host.pool[WORKER] == 1
    result = run(host, state="resumed", containers=shrunk["containers"])
    assert host.ops()[-1] == ("celery", WORKER[:12], "pool_grow")
    assert host.pool[WORKER] == 2 and result["changed"]
    assert result["pools"] == {WORKER: {"before": 1, "after": 2}}
    assert "grow" in result["timings"]
    again = run(host, state="resumed", containers=shrunk["containers"])
    assert not again["changed"]


def test_resume_with_processes_grows_warm_up_workers_only():
    host = FakeHost(demo(), pool=1)
    result = run(host, state="resumed", containers=[WORKER], beat_services=[], processes=3)
    assert host.pool[WORKER] == 3 and result["pools"] == {WORKER: {"before": 1, "after": 3}}
    assert run(host, state="resumed", containers=[WORKER], beat_services=[], processes=2)["changed"] is False


# -- the journal: what an interrupted run leaves behind to put back ---------

class InterruptedHost(FakeHost):
    """Dies (as a run killed midway would) at the first `op` of the workers."""

    def __init__(self, containers, op, **kwargs):
        super().__init__(containers, **kwargs)
        self.fatal_op = op

    def container_op(self, op, ids, timeout=None):
        if op == self.fatal_op and ids and self.containers[ids[0]]["service"] == "worker":
            raise KeyboardInterrupt
        super().container_op(op, ids, timeout)


def journal_of(path):
    return json.loads(path.read_text())["entries"]


def test_quiesce_writes_each_container_down_before_changing_it(tmp_path):
    journal = tmp_path / "shop.quiesced.json"
    host = InterruptedHost(demo(), "stop")
    with pytest.raises(KeyboardInterrupt):
        run(host, journal=str(journal))
    # Killed while stopping the workers: beat is stopped, the worker consumes nothing; both are written down.
    assert host.containers[BEAT]["state"] == "exited" and host.queues[WORKER] == []
    assert journal_of(journal) == [
        {"project": PROJECT, "id": BEAT, "service": "beat", "action": "stopped", "queues": []},
        {"project": PROJECT, "id": WORKER, "service": "worker", "action": "stopped", "queues": ["celery"]},
    ]
    assert oct(journal.stat().st_mode & 0o777) == "0o644"


def test_a_later_run_brings_back_what_an_interrupted_one_left_and_forgets_it(tmp_path):
    journal = tmp_path / "shop.quiesced.json"
    host = InterruptedHost(demo(), "stop")
    with pytest.raises(KeyboardInterrupt):
        run(host, journal=str(journal))
    other = {"project": "shop-green", "id": "f" * 64, "service": "worker", "action": "stopped", "queues": []}
    journal.write_text(json.dumps({"entries": journal_of(journal) + [other]}))
    host.calls = []
    # The later run stopped nothing itself (containers: []), yet both come back: the worker's queues, then beat.
    result = run(host, state="resumed", containers=[], journal=str(journal))
    assert host.ops() == [("celery", WORKER[:12], "add_consumer"), ("start", (BEAT,), None)]
    assert host.queues[WORKER] == ["celery"] and host.containers[BEAT]["state"] == "running"
    assert result["from_journal"] == [BEAT, WORKER] and result["changed"]
    assert journal_of(journal) == [other]


def test_resume_skips_journal_entries_of_containers_that_are_gone(tmp_path):
    journal = tmp_path / "shop.quiesced.json"
    gone = "e" * 64
    journal.write_text(json.dumps({"entries": [
        {"project": PROJECT, "id": gone, "service": "worker", "action": "stopped", "queues": ["celery"]}]}))
    host = FakeHost(demo())
    result = run(host, state="resumed", containers=[], journal=str(journal))
    assert host.ops() == [] and not result["changed"] and result["from_journal"] == []
    assert any(gone[:12] in w and "no longer exists" in w for w in result["warnings"])
    assert not journal.exists()


def test_a_damaged_journal_does_not_stop_a_rescue(tmp_path):
    journal = tmp_path / "shop.quiesced.json"
    journal.write_text("{not json")
    host = FakeHost(demo(beat="exited"))
    result = run(host, state="resumed", containers=[BEAT], journal=str(journal))
    assert host.ops() == [("start", (BEAT,), None)]
    assert any("not valid JSON" in w for w in result["warnings"])


def test_quiesce_refuses_a_damaged_journal_before_changing_anything(tmp_path):
    journal = tmp_path / "shop.quiesced.json"
    journal.write_text("[]")
    host = FakeHost(demo())
    message = fail(host, journal=str(journal))
    assert "journal" in message and str(journal) in message
    assert host.ops() == []


def test_check_mode_and_shrink_journal_as_expected(tmp_path):
    journal = tmp_path / "shop.quiesced.json"
    run(FakeHost(demo()), check_mode=True, journal=str(journal))
    assert not journal.exists()
    host = FakeHost(demo(), pool=3)
    run(host, mode="shrink", journal=str(journal))
    assert journal_of(journal) == [{"project": PROJECT, "id": WORKER, "service": "worker", "action": "shrunk",
                                    "queues": [], "pool": {"before": 3, "after": 1}}]
