# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""celery_quiesce: the real module (main(), AnsibleModule, CeleryQuiesceManager) on a fake host.

The manager gets a FakeEngine (`engine=`) and a control factory whose FakeControl
answers for a model of the workers and the broker (`control_factory=`), both from
tests/support/fakes.py. One Clock is the manager's clock and sleep, the wall clock of
its waits (Wait) and of the journal, so waits take no real time and deadlines are
exact. `world.log` lists every Docker and Celery call in order.
"""

from __future__ import annotations

import functools
import json
import os
import stat

import pytest

from ansible_collections.lowspec.bluegreen.plugins.module_utils import _quiesce, _state
from ansible_collections.lowspec.bluegreen.plugins.module_utils._celery import CeleryError
from ansible_collections.lowspec.bluegreen.plugins.module_utils._wait import Wait
from ansible_collections.lowspec.bluegreen.plugins.modules import celery_quiesce

from tests.support.fakes import CeleryWorld, Clock, FakeEngine, FakeGauge, container_id, inspected, task

PROJECT = "shop-blue"
WEB = container_id(PROJECT, "web")
WORKER = container_id(PROJECT, "worker")
BEAT = container_id(PROJECT, "beat")
NODE = "celery@" + WORKER[:12]
MANAGER = celery_quiesce.CeleryQuiesceManager
START = Clock().now  # every test's clock starts here


class Killed(BaseException):
    """The module process dies here (a lost host, SIGKILL): no rescue of its own runs."""


def demo(worker="running", beat="running", web="running", pool=2, queues=("celery",)):
    """shop-blue: a web (where the Celery agent runs), one worker, one beat."""
    world = CeleryWorld([inspected(PROJECT, "web", state=web, health="healthy"),
                         inspected(PROJECT, "worker", state=worker, health="healthy"),
                         inspected(PROJECT, "beat", state=beat)])
    world.worker(WORKER, pool=pool, queues=queues)
    return world


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(_quiesce, "time", clock)
    monkeypatch.setattr(_quiesce, "Wait", functools.partial(Wait, clock=clock.time))
    monkeypatch.setattr(_state, "time", clock)
    return clock


@pytest.fixture
def quiesce(run_main, monkeypatch, clock):
    """quiesce(world, check_mode=False, **params): one call of the module against `world`."""

    def run(world, check_mode=False, **params):
        world.clock = clock
        world.engine = FakeEngine(world)  # one Engine per module call, as the module makes

        class Injected(MANAGER):
            """The real manager, given the fakes through its parameters."""

            def __init__(self, module):
                super().__init__(module, engine=world.engine, control_factory=world.open_control,
                                 clock=clock.monotonic, sleep=clock.sleep)

        monkeypatch.setattr(celery_quiesce, "CeleryQuiesceManager", Injected)
        args = dict(project=PROJECT, celery_app="tasks")
        args.update(params)
        args = dict((k, v) for k, v in args.items() if v is not None)
        return run_main(celery_quiesce.main, args, check_mode=check_mode)

    return run


def ok(result):
    assert not result["failed"], result["msg"]
    return result


def polls(world, start=0, end=None):
    """The inspect methods the drain asked, in order."""
    return [e[2] for e in world.log[start:end] if e[:2] == ("celery", "inspect") and e[2] in ("reserved", "active")]


def entries(path):
    return json.loads(path.read_text())["entries"]


# -- quiesce: the order, and what it reports -----------------------------------------------

def test_quiesce_stops_beat_first_then_cancels_drains_and_stops_the_workers(quiesce):
    world = demo()
    world.workers[WORKER].tasks = [task("t-1", active_polls=2)]
    result = ok(quiesce(world, stop_timeout=90))

    assert world.changes() == [
        ("docker", "stop_in_background", ("beat",)),
        ("celery-change", "cancel_consumer", "celery", (NODE,)),
        ("docker", "stop_in_background", ("worker",)),
    ]
    cancel = world.log.index(("celery-change", "cancel_consumer", "celery", (NODE,)))
    stop = world.log.index(("docker", "stop_in_background", ("worker",)))
    assert polls(world, cancel, stop) == ["reserved", "active"] * 3, "two polls still show the task, the third none"
    assert world.stop_timeouts == [("beat", 90), ("worker", 90)]
    assert world.state(BEAT) == world.state(WORKER) == "exited" and world.state(WEB) == "running"

    assert result["changed"] and result["drained"] and result["still_active"] == []
    assert result["containers"] == [
        {"id": BEAT, "service": "beat", "action": "stopped", "queues": []},
        {"id": WORKER, "service": "worker", "action": "stopped", "queues": ["celery"]},
    ]
    assert result["queues"] == {WORKER: ["celery"]}
    assert result["beat_stopped"] == {"containers": [BEAT], "exited": True}
    assert result["stopping"] == [] and result["waiting"] is False
    assert result["timings"]["drain"] == 0.4, "polled every 0.2 s"
    assert result["actions"] == ORDERED_ACTIONS(90)
    assert result["celery"]["transport"] == "agent" and result["celery"]["container"] == "shop-blue-web-1"
    assert result["celery"]["calls"] > 0
    assert not [w for w in result["warnings"] if "drain_timeout" in w]


def ORDERED_ACTIONS(stop_timeout):  # noqa: N802 - a constant that takes the grace period
    return ["stop --time %d %s (in the background)" % (stop_timeout, BEAT),
            "celery control cancel_consumer celery --destination %s" % NODE,
            "stop --time %d %s (in the background)" % (stop_timeout, WORKER)]


def test_actions_are_listed_in_the_order_they_ran(quiesce):
    assert ok(quiesce(demo()))["actions"] == ORDERED_ACTIONS(60)


def test_a_restart_always_container_is_made_unless_stopped_before_it_is_stopped(quiesce):
    world = demo()
    world.items[BEAT]["HostConfig"]["RestartPolicy"]["Name"] = "always"
    result = ok(quiesce(world))
    assert result["actions"][:2] == ["update --restart unless-stopped %s" % BEAT,
                                     "stop --time 60 %s (in the background)" % BEAT]


def test_a_task_past_the_drain_deadline_is_reported_and_the_worker_still_stops(quiesce):
    world = demo()
    world.workers[WORKER].tasks = [task("fb2fa019", active_polls=10 ** 6)]
    result = ok(quiesce(world, drain_timeout=3, stop_timeout=90))
    assert result["drained"] is False
    assert result["still_active"] == [
        {"id": "fb2fa019", "name": "tasks.work", "state": "active", "worker": NODE, "container": WORKER}]
    assert result["timings"]["drain"] == 3.0
    assert world.changes()[-1] == ("docker", "stop_in_background", ("worker",))
    assert world.state(WORKER) == "exited"
    (warning,) = [w for w in result["warnings"] if "drain_timeout" in w]
    assert warning == ("1 task(s) still held when drain_timeout (3 s) passed, left to the warm shutdown "
                       "(stop_timeout 90 s), then to redelivery: tasks.work[fb2fa019] active")


def test_reserved_is_read_before_active_in_every_poll(quiesce):
    world = demo()
    world.workers[WORKER].tasks = [task("r-1", reserved_polls=2, active_polls=1)]
    result = ok(quiesce(world))
    assert polls(world) == ["reserved", "active"] * 3
    assert result["drained"]


def test_a_worker_that_answers_late_is_drained_only_once_it_answers_empty(quiesce):
    world = demo()
    world.workers[WORKER].silent = {"active": 2}
    result = ok(quiesce(world))
    assert polls(world).count("active") == 3
    assert result["drained"] is True


def test_a_worker_silent_once_on_a_loaded_host_is_asked_again_longer_not_taken_as_refusing(quiesce):
    world = demo()
    world.workers[WORKER].boot_pings = 1  # the first ping goes unanswered
    world.workers[WORKER].silent["active_queues"] = 1
    result = ok(quiesce(world))
    pings = [e for e in world.log if e[:2] == ("celery", "ping")]
    assert pings == [("celery", "ping", (NODE,))] * 2, "asked again, only the silent node, not everyone"
    assert [e for e in world.log if e[:3] == ("celery", "inspect", "active_queues")] == \
        [("celery", "inspect", "active_queues", (NODE,))] * 2
    assert result["containers"][-1] == {"id": WORKER, "service": "worker", "action": "stopped", "queues": ["celery"]}


def test_a_worker_silent_twice_on_its_queues_fails_the_call_naming_it(quiesce):
    world = demo()
    world.workers[WORKER].silent["active_queues"] = 2
    result = quiesce(world)
    assert result["failed"] and "active_queues" in result["msg"] and "no reply from %s" % NODE in result["msg"]
    assert world.state(WORKER) == "running", "nothing stopped that was not drained"


def test_a_worker_that_never_answers_is_never_taken_as_drained(quiesce):
    world = demo()
    world.workers[WORKER].silent = {"reserved": 10 ** 6}
    result = ok(quiesce(world, drain_timeout=3))
    assert result["drained"] is False and result["still_active"] == []
    assert result["timings"]["drain"] == 3.0, "waited out the whole drain_timeout"
    assert world.state(WORKER) == "exited"


def test_a_worker_that_never_answers_is_named_in_a_warning(quiesce):
    world = demo()
    world.workers[WORKER].silent = {"reserved": 10 ** 6}
    result = ok(quiesce(world, drain_timeout=3))
    assert any(NODE in w for w in result["warnings"]), result["warnings"]


# -- wait_exited=false: the stop goes on after the call ------------------------------------

def test_without_wait_exited_the_call_returns_at_the_stop_and_a_later_call_sees_them_exited(quiesce, tmp_path):
    journal = tmp_path / "shop.journal.json"
    world = demo()
    world.stop_polls = 10 ** 6  # the warm shutdown outlasts the call
    world.broker.unacked_entry("tag-1", "lost-1", delivered_at=START - 60)
    first = ok(quiesce(world, wait_exited=False, journal=str(journal)))
    assert first["changed"] and first["stopping"] == [BEAT, WORKER]
    assert first["beat_stopped"] == {"containers": [BEAT], "exited": False}
    assert first["broker_checked"] is False and not [e for e in world.log if e[:2] == ("celery", "unacked")]
    assert world.state(WORKER) == "running", "told to stop, in its warm shutdown"
    assert [e["id"] for e in entries(journal) if e.get("stop_issued_at")] == [BEAT, WORKER]

    world.finish_stops()
    changes = len(world.changes())
    second = ok(quiesce(world, journal=str(journal)))
    assert world.changes()[changes:] == [("celery-change", "restore", ("tag-1",))], "no stop issued again"
    assert second["stopping"] == [] and second["beat_stopped"]["exited"] is True
    assert second["broker_checked"] is True and [r["id"] for r in second["restored"]] == ["lost-1"]
    assert [c["id"] for c in second["containers"]] == [BEAT, WORKER]


def test_a_later_call_waits_for_the_containers_still_in_their_warm_shutdown(quiesce, tmp_path):
    journal = tmp_path / "shop.journal.json"
    world = demo()
    world.stop_polls = 10 ** 6
    ok(quiesce(world, wait_exited=False, journal=str(journal)))
    world.stop_polls = 5
    world.stopping = dict((cid, 5) for cid in world.stopping)
    changes = len(world.changes())
    second = ok(quiesce(world, journal=str(journal)))
    assert world.changes()[changes:] == [], "awaited, not stopped again"
    assert world.state(WORKER) == world.state(BEAT) == "exited"
    assert second["stopping"] == [] and second["beat_stopped"]["exited"] and second["broker_checked"]


# -- mode=pause ---------------------------------------------------------------------------

def test_pause_is_refused_when_it_could_outlast_the_visibility_timeout(quiesce):
    world = demo()
    result = quiesce(world, mode="pause", drain_timeout=300, max_pause=3300, visibility_timeout=3600)
    assert result["failed"]
    assert "300 s" in result["msg"] and "3300 s" in result["msg"] and "3600 s" in result["msg"]
    assert "mode=stop" in result["msg"]
    assert world.log == [] and world.control_opens == []


def test_pause_freezes_the_workers_but_stops_beat(quiesce):
    world = demo()
    result = ok(quiesce(world, mode="pause", drain_timeout=60, max_pause=600))
    assert world.changes() == [
        ("docker", "stop_in_background", ("beat",)),
        ("celery-change", "cancel_consumer", "celery", (NODE,)),
        ("docker", "pause", ("worker",)),
    ]
    assert world.state(WORKER) == "paused" and world.state(BEAT) == "exited"
    assert [(c["service"], c["action"]) for c in result["containers"]] == [("beat", "stopped"), ("worker", "paused")]
    assert result["beat_stopped"] == {"containers": [BEAT], "exited": True}


def test_a_frozen_workers_held_tasks_are_not_orphans_but_a_gone_consumers_are(quiesce):
    world = demo()
    world.workers[WORKER].tasks = [task("held-1", active_polls=10 ** 6)]
    before = START - 30
    world.broker.unacked_entry("tag-held", "held-1", delivered_at=before)
    world.broker.unacked_entry("tag-lost", "lost-1", delivered_at=before)
    result = ok(quiesce(world, mode="pause", drain_timeout=2, max_pause=600))
    assert [t["id"] for t in result["still_active"]] == ["held-1"]
    assert world.broker.requeued == ["tag-lost"]
    assert [e["tag"] for e in world.broker.entries] == ["tag-held"], "it finishes after the unpause"
    assert result["restored"] == [{"id": "lost-1", "task": "tasks.work", "queue": "celery", "delivered_at": before}]


# -- the broker: no worker is stopped while it waits in a fetch -------------------------------

def fetch_listings(world, start=0, end=None):
    return [i for i, e in enumerate(world.log[start:end], start) if e[:2] == ("celery", "fetching")]


def test_a_worker_is_stopped_only_once_its_last_fetch_has_returned(quiesce, clock):
    world = demo()
    world.broker.fetch_polls[WORKER] = 3  # its last BRPOP still waits for three listings after the cancel
    result = ok(quiesce(world))
    stop = world.log.index(("docker", "stop_in_background", ("worker",)))
    listings = fetch_listings(world)
    assert len(listings) == 4 and listings[-1] < stop
    address = world.engine.inspect([WORKER])[0]["addresses"]
    assert world.log[listings[0]] == ("celery", "fetching", tuple(address))
    assert result["timings"]["fetch"] == pytest.approx(0.15)


def test_a_worker_whose_fetch_is_over_is_stopped_after_one_listing(quiesce):
    world = demo()
    ok(quiesce(world))
    assert len(fetch_listings(world, end=world.log.index(("docker", "stop_in_background", ("worker",))))) == 1


class StampedLog(list):
    """world.log that also notes the clock's time of each entry."""

    def __init__(self, clock):
        super().__init__()
        self.clock = clock
        self.times = []

    def append(self, entry):
        self.times.append(self.clock.monotonic())
        super().append(entry)

    def time_of(self, entry):
        return self.times[self.index(entry)]


def test_without_a_view_of_the_fetches_the_stop_waits_one_fetch_timeout_after_the_cancel(quiesce, clock):
    world = demo()
    world.broker.visible = False  # the broker sees the workers through NAT
    world.log = StampedLog(clock)
    result = ok(quiesce(world))
    waited = (world.log.time_of(("docker", "stop_in_background", ("worker",)))
              - world.log.time_of(("celery-change", "cancel_consumer", "celery", (NODE,))))
    assert waited >= 1.5 - 1e-9, "stopped %.2f s after the cancel" % waited
    assert result["timings"]["fetch"] >= 1.0


def test_a_fetch_that_never_returns_fails_before_the_worker_is_stopped(quiesce):
    world = demo()
    world.broker.fetch_polls[WORKER] = 10 ** 6  # some other consumer in the worker's container
    result = quiesce(world)
    assert result["failed"]
    assert "still wait(s) in a fetch from the broker" in result["msg"] and "brpop" in result["msg"]
    assert world.state(WORKER) == "running"
    assert ("docker", "stop_in_background", ("worker",)) not in world.changes()


def test_another_broker_is_not_asked_for_fetches(quiesce):
    world = demo()
    world.broker.redis = False
    ok(quiesce(world))
    assert fetch_listings(world) == [] and world.state(WORKER) == "exited"


# -- the broker: messages a gone worker left unacknowledged -----------------------------------

def broker_world():
    world = demo()
    before = START - 60
    world.broker.unacked_entry("tag-gone", "gone-1", delivered_at=before)
    world.broker.unacked_entry("tag-green", "green-1", delivered_at=before)
    world.broker.unacked_entry("tag-eta", "eta-1", delivered_at=before)
    world.broker.after_stop = [{"tag": "tag-new", "id": "new-1", "task": "tasks.work", "exchange": "",
                                "routing_key": "celery"}]
    # The other color's worker is alive: what it holds, reserved or scheduled (an ETA task), is no orphan.
    world.foreign = {"celery@green0000001": {"reserved": ["green-1"], "scheduled": ["eta-1"]}}
    return world, before


def test_orphans_of_the_stopped_workers_are_restored_once_and_reported(quiesce):
    world, before = broker_world()
    result = ok(quiesce(world))
    assert result["broker_checked"] is True
    assert result["restored"] == [{"id": "gone-1", "task": "tasks.work", "queue": "celery", "delivered_at": before}]
    assert world.broker.requeued == ["tag-gone"]
    assert sorted(e["tag"] for e in world.broker.entries) == ["tag-eta", "tag-green", "tag-new"]
    assert any("gone-1" in w and "put back in their queue" in w for w in result["warnings"])
    unacked = world.log.index(("celery", "unacked"))
    asked = [e for e in world.log[unacked:] if e[0] == "celery"]
    assert ("celery", "ping", None) in asked
    assert [e[2] for e in asked if e[1] == "inspect"] == ["reserved", "active", "scheduled"]

    again = ok(quiesce(world))
    assert again["restored"] == [] and world.broker.requeued == ["tag-gone"], "restored exactly once"
    assert again["changed"] is False


def test_a_message_another_consumer_acks_meanwhile_is_not_reported_as_restored(quiesce):
    world, _before = broker_world()
    world.broker.vanish = {"tag-gone"}
    result = ok(quiesce(world))
    assert result["restored"] == [] and world.broker.requeued == []


def test_with_no_subscriber_left_the_broker_is_not_asked_who_holds_what(quiesce):
    world = demo()
    world.broker.unacked_entry("tag-gone", "gone-1", delivered_at=START - 60)
    result = ok(quiesce(world))
    unacked = world.log.index(("celery", "unacked"))
    assert [e for e in world.log[unacked:] if e[:2] in (("celery", "ping"), ("celery", "inspect"))] == []
    assert [r["id"] for r in result["restored"]] == ["gone-1"]


def test_a_live_worker_that_does_not_say_what_it_holds_leaves_the_broker_as_it_is(quiesce):
    world, _before = broker_world()
    world.foreign["celery@green0000001"]["silent"] = ["scheduled"]
    result = ok(quiesce(world))
    assert world.broker.requeued == [] and result["restored"] == []
    assert any("celery@green0000001" in w and "did not say what they hold" in w for w in result["warnings"])


@pytest.mark.parametrize("broker_check, redis, checked", [(False, True, False), (True, False, False),
                                                          (True, True, True)])
def test_the_broker_is_checked_only_when_asked_and_when_it_is_redis(quiesce, broker_check, redis, checked):
    world, _before = broker_world()
    world.broker.redis = redis
    result = ok(quiesce(world, broker_check=broker_check))
    assert result["broker_checked"] is checked
    assert world.broker.requeued == (["tag-gone"] if checked else [])
    assert (("celery", "unacked") in world.log) is broker_check


def test_without_a_container_that_stays_up_the_broker_check_is_skipped_with_a_warning(quiesce):
    world = CeleryWorld([inspected(PROJECT, "worker", health="healthy"), inspected(PROJECT, "beat")])
    world.worker(WORKER)
    result = ok(quiesce(world))
    assert world.control_opens[0] == ["worker"], "no other container: the agent runs in the worker"
    assert world.state(WORKER) == "exited"
    assert result["broker_checked"] is False
    assert any("were not checked" in w for w in result["warnings"])
    assert result["celery"]["container"] == "shop-blue-worker-1"


def test_control_service_names_where_the_agent_runs(quiesce):
    world = demo()
    world.add(inspected(PROJECT, "admin"))
    ok(quiesce(world, control_service="admin"))
    assert world.control_opens[0] == ["admin", "worker"]
    assert world.controls[0].container["service"] == "admin"


# -- check mode and idempotence -----------------------------------------------------------

def test_check_mode_reports_what_it_would_stop_and_changes_nothing(quiesce, tmp_path):
    journal = tmp_path / "shop.journal.json"
    world = demo()
    world.workers[WORKER].tasks = [task("t-1", active_polls=5)]
    result = ok(quiesce(world, check_mode=True, journal=str(journal)))
    assert world.changes() == [] and world.workers[WORKER].queues == ["celery"]
    assert world.state(WORKER) == world.state(BEAT) == "running"
    assert result["changed"] is True and result["actions"] == []
    assert [(c["service"], c["action"]) for c in result["containers"]] == [("beat", "stopped"), ("worker", "stopped")]
    assert [t["id"] for t in result["still_active"]] == ["t-1"] and result["drained"] is False
    assert not journal.exists()


@pytest.mark.parametrize("worker", ["exited", "paused"])
def test_quiescing_a_quiesced_project_changes_nothing(quiesce, worker):
    world = demo(worker=worker, beat="exited")
    result = ok(quiesce(world))
    assert not result["changed"] and result["containers"] == [] and world.changes() == []
    assert world.control_opens == [], "no worker runs: Celery is not asked"


def test_a_second_quiesce_changes_nothing(quiesce, tmp_path):
    journal = tmp_path / "shop.journal.json"
    world = demo()
    ok(quiesce(world, journal=str(journal)))
    changes = len(world.changes())
    again = ok(quiesce(world, journal=str(journal)))
    assert not again["changed"] and world.changes()[changes:] == []
    assert [c["id"] for c in again["containers"]] == [BEAT, WORKER], "the journal's record of the project"


# -- bad input fails before anything changes ---------------------------------------------------

@pytest.mark.parametrize("option", _quiesce.TIMEOUT_OPTIONS)
def test_negative_timeouts_fail_naming_the_option(quiesce, option):
    world = demo()
    result = quiesce(world, **{option: -1})
    assert result["failed"] and result["msg"] == "%s must be zero or more, got -1" % option
    assert world.log == [] and world.control_opens == []


@pytest.mark.parametrize("params, text", [
    ({"worker_services": ["worker", "celery-low"]}, "worker_services: service celery-low not found in project "
                                                    "shop-blue (its services: beat, web, worker)"),
    ({"beat_services": ["worker"]}, "service worker is named in both worker_services and beat_services"),
    ({"mode": "shrink", "keep_processes": 0}, "keep_processes must be 1 or more"),
    ({"state": "resumed", "processes": 0}, "processes must be 1 or more"),
    ({"state": "resumed", "containers": [{"id": WORKER, "pool": {"before": "2"}}]}, "containers[0].pool"),
    ({"state": "resumed", "containers": [{"service": "worker"}]}, "containers[0] must be a container id"),
    ({"state": "resumed", "containers": [3]}, "containers[0] must be a container id"),
    ({"state": "resumed", "containers": [""]}, "containers[0] must be a container id"),
    ({"state": "resumed", "containers": [{"id": "x", "queues": "celery"}]}, "containers[0].queues"),
    ({"state": "resumed", "containers": ["ffff"]}, "containers: ffff is not a container of project shop-blue"),
    ({"celery_command": []}, "celery_command must be a non-empty argv list"),
    ({"app": "shop", "color": "blue"}, "mutually exclusive: app|project"),
])
def test_bad_input_fails_naming_the_option_before_anything_changes(quiesce, params, text):
    world = demo(worker="exited", beat="exited") if params.get("state") == "resumed" else demo()
    result = quiesce(world, **params)
    assert result["failed"] and text in result["msg"]
    assert world.changes() == []


def without_beat(answering=True):
    """shop-blue as a failed start leaves it: its beat was never created (and its worker may answer no ping)."""
    world = CeleryWorld([inspected(PROJECT, "web", state="running", health="healthy"),
                         inspected(PROJECT, "worker", state="running", health="healthy")])
    if answering:
        world.worker(WORKER, pool=2, queues=("celery",))
    return world


def test_a_declared_beat_without_a_container_fails_before_anything_stops(quiesce):
    world = without_beat()
    result = quiesce(world)
    assert result["failed"] and "beat_services: service beat not found in project shop-blue" in result["msg"]
    assert world.changes() == []


def test_missing_services_ignore_drains_and_stops_the_workers_a_failed_start_left(quiesce):
    world = without_beat()
    result = ok(quiesce(world, missing_services="ignore"))
    assert world.changes() == [
        ("celery-change", "cancel_consumer", "celery", (NODE,)),
        ("docker", "stop_in_background", ("worker",)),
    ]
    assert world.state(WORKER) == "exited" and world.state(WEB) == "running"
    assert result["drained"] and [c["id"] for c in result["containers"]] == [WORKER]


def test_missing_services_ignore_stops_a_worker_that_answers_no_ping_without_a_drain(quiesce):
    world = without_beat(answering=False)
    result = ok(quiesce(world, missing_services="ignore"))
    assert world.changes() == [("docker", "stop_in_background", ("worker",))]
    assert world.state(WORKER) == "exited"
    assert [w for w in result["warnings"] if "answers no Celery ping" in w and "stopped without a drain" in w]


def test_a_worker_that_answers_no_ping_fails_by_default_before_anything_stops(quiesce):
    world = without_beat(answering=False)
    result = quiesce(world, beat_services=[])
    assert result["failed"] and "is not a Celery worker" in result["msg"]
    assert world.changes() == []


def test_a_beat_service_named_as_a_worker_fails_before_anything_stops(quiesce):
    world = demo()
    result = quiesce(world, worker_services=["worker", "beat"], beat_services=[])
    assert result["failed"]
    assert result["msg"].startswith("service beat (container shop-blue-beat-1) is not a Celery worker")
    assert world.changes() == []


def test_a_celery_app_celery_cannot_load_fails_with_celerys_message(quiesce):
    world = demo()
    world.app_error = ("celery_app=nosuchapp: Celery cannot load it in shop-blue-web-1 (service web): Error: "
                       "Invalid value for '-A' / '--app': Unable to load celery application. The module nosuchapp "
                       "was not found.")
    result = quiesce(world, celery_app="nosuchapp")
    assert result["failed"] and result["msg"] == world.app_error
    assert world.changes() == []


def test_a_project_without_containers_fails(quiesce):
    result = quiesce(CeleryWorld(), project="shop-green")
    assert result["failed"] and "compose project shop-green has no containers" in result["msg"]


def test_quiesce_refuses_a_damaged_journal_before_changing_anything(quiesce, tmp_path):
    journal = tmp_path / "shop.journal.json"
    journal.write_text("[]")
    world = demo()
    result = quiesce(world, journal=str(journal))
    assert result["failed"] and "journal %s" % journal in result["msg"]
    assert world.log == []


def test_color_active_and_idle_are_read_from_the_state_file(quiesce, tmp_path):
    _state.write_state(str(tmp_path), "shop", dict(_state.empty_state("shop"), active_color="green"))
    world = CeleryWorld([inspected("shop-blue", "web")])
    result = ok(quiesce(world, project=None, app="shop", color="idle", state_dir=str(tmp_path),
                        worker_services=[], beat_services=[]))
    assert result["project"] == "shop-blue"
    missing = quiesce(demo(), project=None, app="shop", color="active", state_dir=str(tmp_path / "none"))
    assert missing["failed"] and "color=active: no active color is recorded for app shop" in missing["msg"]


# -- the journal: written before each change ---------------------------------------------------

def test_each_container_is_written_down_before_it_is_changed(quiesce, tmp_path):
    journal = tmp_path / "shop.journal.json"
    world = demo()
    world.faults["stop_in_background"] = (("worker",), OSError(12, "Cannot allocate memory"))
    result = quiesce(world, journal=str(journal))
    assert result["failed"] and "Cannot allocate memory" in result["msg"]
    assert ("docker", "stop_in_background", ("beat",)) in world.log and world.workers[WORKER].queues == []
    assert [(e["service"], e["action"], e["queues"]) for e in entries(journal)] == [
        ("beat", "stopped", []), ("worker", "stopped", ["celery"])]
    assert stat.S_IMODE(os.stat(journal).st_mode) == 0o644


def test_a_failure_midway_still_returns_what_was_stopped(quiesce):
    world = demo()
    world.faults["stop_in_background"] = (("worker",), OSError(12, "Cannot allocate memory"))
    result = quiesce(world)
    assert result["failed"] and ("docker", "stop_in_background", ("beat",)) in world.log
    assert [c["id"] for c in result["containers"]] == [BEAT, WORKER]


def test_killed_midway_the_journal_still_lists_the_beat_and_the_worker_with_its_queues(quiesce, tmp_path):
    journal = tmp_path / "shop.journal.json"
    world = demo()
    world.faults["stop_in_background"] = (("worker",), Killed())
    with pytest.raises(Killed):
        quiesce(world, journal=str(journal))
    assert [(e["id"], e["queues"]) for e in entries(journal)] == [(BEAT, []), (WORKER, ["celery"])]


# -- wait_slice: a long wait over several calls, under one deadline ---------------------------

def test_a_drain_longer_than_a_slice_returns_waiting_and_keeps_its_deadline(quiesce, tmp_path):
    journal = tmp_path / "shop.journal.json"
    world = demo()
    world.workers[WORKER].tasks = [task("t-1", active_polls=10 ** 6)]
    params = dict(drain_timeout=30, wait_slice=10, journal=str(journal))

    first = ok(quiesce(world, **params))
    assert first["waiting"] is True and first["changed"] is True
    assert first["progress"] == ("the old workers of shop-blue draining (1 task(s) held: tasks.work[t-1]): "
                                 "10 s of 30 s waited, 20 s left")
    assert world.state(WORKER) == "running" and world.workers[WORKER].queues == []
    assert "drain:shop-blue" in json.loads(journal.read_text())["waits"]

    second = ok(quiesce(world, **params))
    assert second["waiting"] is True and second["progress"].endswith("20 s of 30 s waited, 10 s left")
    assert world.changes().count(("docker", "stop_in_background", ("beat",))) == 1

    third = ok(quiesce(world, **params))
    assert third["waiting"] is False and "progress" not in third
    assert third["drained"] is False and [t["id"] for t in third["still_active"]] == ["t-1"]
    assert world.state(WORKER) == "exited"
    assert json.loads(journal.read_text())["waits"] == {}
    assert [c["id"] for c in third["containers"]] == [BEAT, WORKER]


def test_a_drain_that_fails_midway_leaves_no_wait_behind(quiesce, tmp_path):
    journal = tmp_path / "shop.journal.json"
    world = demo()
    world.workers[WORKER].tasks = [task("t-1", active_polls=10 ** 6)]
    params = dict(drain_timeout=30, wait_slice=10, journal=str(journal))
    assert ok(quiesce(world, **params))["waiting"]
    world.celery_faults["reserved"] = CeleryError("the Celery agent in shop-blue-web-1 did not answer inspect")
    failed = quiesce(world, **params)
    assert failed["failed"] and failed["msg"] == "the Celery agent in shop-blue-web-1 did not answer inspect"
    assert json.loads(journal.read_text())["waits"] == {}, "the next quiesce waits its whole drain_timeout again"
    assert [e["id"] for e in entries(journal)] == [BEAT, WORKER], "what was stopped is still written down"


def test_without_a_journal_the_whole_wait_is_one_call(quiesce):
    world = demo()
    world.workers[WORKER].tasks = [task("t-1", active_polls=10 ** 6)]
    result = ok(quiesce(world, drain_timeout=30, wait_slice=10))
    assert result["waiting"] is False and result["timings"]["drain"] == 30.0


# -- mode=shrink -------------------------------------------------------------------------------

def pool_changes(world):
    return [e[1] for e in world.changes() if e[0] == "celery-change"]


def test_shrink_ends_one_process_at_a_time_and_keeps_beat_and_the_consumers(quiesce):
    world = demo(pool=3)
    world.workers[WORKER].stale_polls = 2
    result = ok(quiesce(world, mode="shrink"))
    assert pool_changes(world) == ["pool_shrink", "pool_shrink"]
    first, second = [i for i, e in enumerate(world.log) if e[:2] == ("celery-change", "pool_shrink")]
    between = [e for e in world.log[first:second] if e[:3] == ("celery", "inspect", "stats")]
    assert len(between) == 3, "stats polled until the ended process is no longer listed (2 stale replies)"
    assert world.workers[WORKER].pool == 1 and world.workers[WORKER].queues == ["celery"]
    assert world.state(BEAT) == "running" and [e for e in world.log if e[0] == "docker"] == []
    assert result["changed"] and result["drained"] is False
    # `at`: when it was written down, just before its first pool_shrink (the deploy's first change).
    assert result["containers"] == [{"id": WORKER, "service": "worker", "action": "shrunk", "queues": [],
                                     "pool": {"before": 3, "after": 1}, "at": 1800000000.0}]
    assert result["pools"] == {WORKER: {"before": 3, "after": 1}}
    assert result["beat_stopped"] == {"containers": [], "exited": False}


def test_a_shrink_right_after_a_shrink_does_not_end_the_last_process(quiesce):
    world = demo(pool=2)
    world.workers[WORKER].stale_polls = 3
    ok(quiesce(world, mode="shrink"))
    again = ok(quiesce(world, mode="shrink"))
    assert not again["changed"] and world.workers[WORKER].pool == 1
    assert again["pools"] == {WORKER: {"before": 1, "after": 1}} and again["containers"] == []


def test_a_busy_pool_stops_consuming_until_a_process_is_idle_then_consumes_again(quiesce):
    world = demo(pool=2)
    world.workers[WORKER].busy_shrinks = 5
    result = ok(quiesce(world, mode="shrink"))
    assert pool_changes(world) == ["pool_shrink", "cancel_consumer", "pool_shrink", "add_consumer"]
    assert world.workers[WORKER].pool == 1 and world.workers[WORKER].queues == ["celery"]
    assert result["pools"][WORKER] == {"before": 2, "after": 1}


def test_shrink_warns_when_a_task_it_ends_as_it_starts_would_be_lost(quiesce):
    world = demo(pool=2)
    world.workers[WORKER].conf = {"broker_url": "redis://:s3cret@redis:6379/0"}  # Celery's defaults otherwise
    result = ok(quiesce(world, mode="shrink"))
    (warning,) = result["warnings"]
    assert NODE in warning and "task_acks_late and task_reject_on_worker_lost" in warning
    assert "is lost, not redelivered" in warning
    assert "s3cret" not in json.dumps(result), "only the two settings leave the worker"
    assert world.workers[WORKER].pool == 1, "a warning, not a refusal: tasks may set both themselves"
    assert ok(quiesce(demo(pool=2), mode="shrink"))["warnings"] == [], "the demo sets both"


def test_shrink_of_a_shrunk_pool_changes_nothing(quiesce):
    world = demo(pool=1)
    result = ok(quiesce(world, mode="shrink"))
    assert pool_changes(world) == [] and not result["changed"] and result["containers"] == []


def test_shrink_in_check_mode_plans_and_changes_nothing(quiesce):
    world = demo(pool=2)
    result = ok(quiesce(world, check_mode=True, mode="shrink"))
    assert pool_changes(world) == [] and world.workers[WORKER].pool == 2
    assert result["changed"] and result["containers"][0]["pool"] == {"before": 2, "after": 1}


def test_shrink_in_check_mode_reports_the_pool_sizes_it_would_reach(quiesce):
    result = ok(quiesce(demo(pool=2), check_mode=True, mode="shrink"))
    assert result["pools"] == {WORKER: {"before": 2, "after": 1}}


def test_shrink_journals_the_pool_size_to_grow_back_to(quiesce, tmp_path):
    journal = tmp_path / "shop.journal.json"
    ok(quiesce(demo(pool=3), check_mode=True, mode="shrink", journal=str(journal)))
    assert not journal.exists()
    ok(quiesce(demo(pool=3), mode="shrink", journal=str(journal)))
    assert entries(journal) == [{"project": PROJECT, "id": WORKER, "service": "worker", "action": "shrunk",
                                 "queues": [], "pool": {"before": 3, "after": 1}, "at": 1800000000.0}]


# -- resume -------------------------------------------------------------------------------------

def started(world):
    return [e for e in world.log if e[0] == "docker" and e[1] in ("start", "unpause")]


def test_resume_after_stop_starts_the_same_containers_workers_first_and_beat_once_they_answer(quiesce):
    world = demo()
    quiesced = ok(quiesce(world))
    world.workers[WORKER].boot_pings_after_start = 3
    world.log = []
    result = ok(quiesce(world, state="resumed", containers=[c["id"] for c in quiesced["containers"]]))
    assert started(world) == [("docker", "start", ("worker",)), ("docker", "start", ("beat",))]
    pings = [i for i, e in enumerate(world.log) if e[:2] == ("celery", "ping")]
    assert len(pings) == 4 and pings[-1] < world.log.index(("docker", "start", ("beat",))), \
        "beat starts only after the worker answered"
    assert result["resumed"] == [WORKER, BEAT] and result["changed"]
    assert world.state(WORKER) == world.state(BEAT) == "running"
    assert world.workers[WORKER].started == 1, "started, never recreated"
    assert result["timings"]["ready"] > 0


def test_resume_after_pause_unfreezes_gives_the_queues_back_then_starts_beat(quiesce):
    world = demo()
    quiesced = ok(quiesce(world, mode="pause"))
    world.log = []
    containers = [dict(c, queues=["celery", "mail"]) if c["service"] == "worker" else c
                  for c in quiesced["containers"]]
    result = ok(quiesce(world, state="resumed", containers=containers))
    assert list(world.changes()) == [
        ("docker", "unpause", ("worker",)),
        ("celery-change", "add_consumer", "celery", (NODE,)),
        ("celery-change", "add_consumer", "mail", (NODE,)),
        ("docker", "start", ("beat",)),
    ]
    assert world.workers[WORKER].queues == ["celery", "mail"] and result["resumed"] == [WORKER, BEAT]


def test_resume_fails_when_a_worker_is_not_ready_in_time_and_beat_stays_down(quiesce):
    world = demo(worker="exited", beat="exited")
    world.workers[WORKER].boot_pings_after_start = 10 ** 6
    result = quiesce(world, state="resumed", ready_timeout=5)
    assert result["failed"] and "not ready within ready_timeout (5 s)" in result["msg"]
    assert "shop-blue-worker-1 (running, health healthy)" in result["msg"]
    assert ("docker", "start", ("beat",)) not in world.log


def test_resume_fails_at_once_when_a_worker_exits_while_it_comes_back(quiesce):
    world = demo(worker="exited", beat="exited")
    world.logs[WORKER] = ["Traceback (most recent call last):", "ModuleNotFoundError: No module named 'tasks'"]
    real_start = world.start
    world.start = lambda cid: (real_start(cid), world.exit(cid, 1) if cid == WORKER else None)
    result = quiesce(world, state="resumed")
    assert result["failed"]
    assert result["msg"].startswith("worker(s) exited while coming back: shop-blue-worker-1 (exit code 1); "
                                    "last log lines: Traceback")
    assert "No module named 'tasks'" in result["msg"]
    assert ("docker", "start", ("beat",)) not in world.log


def test_resume_brings_back_exactly_the_given_containers(quiesce):
    world = demo(worker="exited", beat="exited")
    result = ok(quiesce(world, state="resumed", containers=[BEAT[:12]]))
    assert started(world) == [("docker", "start", ("beat",))] and result["resumed"] == [BEAT]
    world = demo(worker="exited", beat="exited")
    result = ok(quiesce(world, state="resumed", containers=[]))
    assert started(world) == [] and not result["changed"]


def test_resume_of_a_running_project_changes_nothing(quiesce):
    world = demo()
    result = ok(quiesce(world, state="resumed"))
    assert world.changes() == [] and not result["changed"] and result["resumed"] == []


def test_resume_gives_queues_back_to_a_running_worker_left_consuming_nothing(quiesce):
    world = demo(beat="exited")
    world.workers[WORKER].queues = []
    result = ok(quiesce(world, state="resumed", containers=[BEAT]))
    assert world.changes() == [("celery-change", "add_consumer", "celery", (NODE,)), ("docker", "start", ("beat",))]
    assert world.workers[WORKER].queues == ["celery"] and result["changed"]


def test_resume_in_check_mode_reports_and_changes_nothing(quiesce):
    world = demo(worker="paused", beat="exited")
    result = ok(quiesce(world, state="resumed", check_mode=True))
    assert world.changes() == [] and result["resumed"] == [WORKER, BEAT] and result["changed"]


def test_resume_grows_a_shrunk_worker_back_to_its_recorded_size(quiesce):
    world = demo(pool=2)
    shrunk = ok(quiesce(world, mode="shrink"))
    world.log = []
    result = ok(quiesce(world, state="resumed", containers=shrunk["containers"]))
    assert world.changes() == [("celery-change", "pool_grow", 1, (NODE,))]
    assert world.workers[WORKER].pool == 2 and result["pools"] == {WORKER: {"before": 1, "after": 2}}
    assert "grow" in result["timings"]
    assert not ok(quiesce(world, state="resumed", containers=shrunk["containers"]))["changed"]


def test_resume_with_processes_grows_warm_up_workers_and_never_shrinks(quiesce):
    world = demo(pool=1)
    result = ok(quiesce(world, state="resumed", containers=[WORKER], beat_services=[], processes=3))
    assert world.workers[WORKER].pool == 3 and result["pools"] == {WORKER: {"before": 1, "after": 3}}
    assert not ok(quiesce(world, state="resumed", containers=[WORKER], beat_services=[], processes=2))["changed"]
    assert world.workers[WORKER].pool == 3


def test_pools_keep_their_size_when_the_host_does_not_settle(quiesce, monkeypatch):
    gauge = FakeGauge([{"settled": False, "exceeded": ["memory available 90 MB < 128 MB"],
                        "impossible": ["mem_available_min_mb=128 MB is more than all the memory of this host"]}])
    monkeypatch.setattr(_quiesce, "Gauge", gauge)
    world = demo(pool=1)
    result = ok(quiesce(world, state="resumed", containers=[WORKER], beat_services=[], processes=3,
                        pressure={"mem_available_min_mb": 128}))
    assert world.workers[WORKER].pool == 1 and world.changes() == []
    assert any("shop-blue keep their size" in w for w in result["warnings"])
    assert gauge.calls[0]["limits"]["mem_available_min_mb"] == 128


def test_pools_grow_once_the_host_has_settled(quiesce, monkeypatch):
    monkeypatch.setattr(_quiesce, "Gauge", FakeGauge([{"settled": True}]))
    world = demo(pool=1)
    result = ok(quiesce(world, state="resumed", containers=[WORKER], beat_services=[], processes=3, pressure={}))
    assert world.workers[WORKER].pool == 3 and result["pressure"] == {"cpu_some_avg10": 1.0}


# -- resume from the journal ----------------------------------------------------------------------

def test_a_rescue_brings_back_the_journals_containers_and_forgets_only_them(quiesce, tmp_path):
    journal = tmp_path / "shop.journal.json"
    world = demo()
    ok(quiesce(world, journal=str(journal)))
    other = {"project": "shop-green", "id": "f" * 64, "service": "worker", "action": "stopped", "queues": []}
    data = json.loads(journal.read_text())
    journal.write_text(json.dumps(dict(data, entries=data["entries"] + [other])))
    world.log = []
    result = ok(quiesce(world, state="resumed", containers=[], journal=str(journal)))
    assert started(world) == [("docker", "start", ("worker",)), ("docker", "start", ("beat",))]
    assert result["from_journal"] == [BEAT, WORKER] and result["resumed"] == [WORKER, BEAT]
    assert entries(journal) == [other]


def test_a_rescue_waits_for_a_worker_still_in_its_warm_shutdown_then_starts_it(quiesce, tmp_path):
    journal = tmp_path / "shop.journal.json"
    world = demo()
    world.stop_polls = 10 ** 6
    ok(quiesce(world, wait_exited=False, journal=str(journal)))
    world.stopping = dict((cid, 4) for cid in world.stopping)
    world.log = []
    result = ok(quiesce(world, state="resumed", journal=str(journal)))
    assert started(world) == [("docker", "start", ("worker",)), ("docker", "start", ("beat",))]
    assert world.workers[WORKER].started == 1 and world.state(WORKER) == "running"
    assert result["resumed"] == [WORKER, BEAT] and not journal.exists()


def test_a_rescue_grows_a_shrunk_worker_from_the_journal(quiesce, tmp_path):
    journal = tmp_path / "shop.journal.json"
    world = demo(pool=3)
    ok(quiesce(world, mode="shrink", journal=str(journal)))
    world.log = []
    result = ok(quiesce(world, state="resumed", containers=[], journal=str(journal)))
    assert world.changes() == [("celery-change", "pool_grow", 2, (NODE,))]
    assert result["pools"] == {WORKER: {"before": 1, "after": 3}} and not journal.exists()


def test_resume_skips_journal_entries_of_containers_that_are_gone(quiesce, tmp_path):
    journal = tmp_path / "shop.journal.json"
    gone = "e" * 64
    journal.write_text(json.dumps({"entries": [
        {"project": PROJECT, "id": gone, "service": "worker", "action": "stopped", "queues": ["celery"]}]}))
    world = demo()
    result = ok(quiesce(world, state="resumed", containers=[], journal=str(journal)))
    assert world.changes() == [] and not result["changed"] and result["from_journal"] == []
    assert any(gone[:12] in w and "no longer exists" in w for w in result["warnings"])
    assert not journal.exists()


def test_a_damaged_journal_does_not_stop_a_rescue(quiesce, tmp_path):
    journal = tmp_path / "shop.journal.json"
    journal.write_text("{not json")
    world = demo(beat="exited")
    result = ok(quiesce(world, state="resumed", containers=[BEAT], journal=str(journal)))
    assert started(world) == [("docker", "start", ("beat",))]
    assert any("not valid JSON" in w for w in result["warnings"])


def test_a_resume_that_waits_over_several_calls_finishes(quiesce, tmp_path):
    journal = tmp_path / "shop.journal.json"
    world = demo()
    ok(quiesce(world, journal=str(journal)))
    world.workers[WORKER].boot_pings_after_start = 60  # answers after about 12 s of pings every 0.2 s
    params = dict(state="resumed", journal=str(journal), wait_slice=5, ready_timeout=60)
    first = ok(quiesce(world, **params))
    assert first["waiting"] and first["progress"].startswith("the workers of shop-blue answering Celery's ping: 5 s")
    second = ok(quiesce(world, **params))
    assert "stopping" not in second.get("progress", ""), second["progress"]
    results = [second] + [ok(quiesce(world, **params)), ok(quiesce(world, **params))]
    assert not results[-1]["waiting"] and world.state(BEAT) == "running"
    assert world.workers[WORKER].started == 1


def test_a_rescue_after_a_stop_that_never_started_gives_the_worker_its_queues_back(quiesce, tmp_path):
    journal = tmp_path / "shop.journal.json"
    world = demo()
    world.faults["stop_in_background"] = (("worker",), OSError(12, "Cannot allocate memory"))
    assert quiesce(world, journal=str(journal))["failed"]
    del world.faults["stop_in_background"]
    result = ok(quiesce(world, state="resumed", containers=[], journal=str(journal)))
    assert world.workers[WORKER].queues == ["celery"] and world.state(BEAT) == "running"
    assert result["changed"]


def test_resume_of_a_project_of_workers_only(quiesce):
    world = CeleryWorld([inspected(PROJECT, "worker", health="healthy"), inspected(PROJECT, "beat")])
    world.worker(WORKER)
    ok(quiesce(world))
    result = ok(quiesce(world, state="resumed"))
    assert result["resumed"] == [WORKER, BEAT]


def test_a_healthy_worker_with_another_node_name_is_ready(quiesce):
    world = demo(worker="exited", beat="exited")
    world.workers[WORKER].nodes = ["worker1@" + WORKER[:12]]
    result = ok(quiesce(world, state="resumed", ready_timeout=10))
    assert result["resumed"] == [WORKER, BEAT]
