# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Celery argv builders and reply parsers, against replies captured from the demo worker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.lowspec.bluegreen.plugins.module_utils import _celery

FIXTURES = Path(__file__).parent / "fixtures"
NODE = "celery@8296434d8e9e"


def captured(name):
    """One captured `docker exec <worker> ...` result: cmd, rc, stdout, stderr."""
    return json.loads((FIXTURES / ("celery-%s.json" % name)).read_text())


def test_every_call_builds_an_addressed_json_argv():
    cmd = ["python3", "-m", "celery"]
    assert _celery.celery_argv(cmd, "tasks", "ping", [NODE]) == [
        "python3", "-m", "celery", "-A", "tasks", "inspect", "ping",
        "--destination", NODE, "--timeout", "5", "--json"]
    assert _celery.celery_argv(cmd, "tasks", "cancel_consumer", [NODE, "extra@x"], queue="celery", timeout=1.5) == [
        "python3", "-m", "celery", "-A", "tasks", "control", "cancel_consumer", "celery",
        "--destination", NODE + ",extra@x", "--timeout", "1.5", "--json"]
    for call in _celery.CELERY_CALLS:
        argv = _celery.celery_argv(["celery"], "app", call, [NODE], queue=1 if call.startswith("pool_") else "q")
        assert "--destination" in argv and argv[-1] == "--json"


def test_the_captured_commands_are_what_the_builder_makes():
    for name, call, queue in (("ping", "ping", None), ("active", "active", None), ("reserved-empty", "reserved", None),
                              ("active-queues", "active_queues", None), ("cancel-consumer", "cancel_consumer", "celery"),
                              ("add-consumer", "add_consumer", "celery"), ("stats", "stats", None),
                              ("pool-shrink", "pool_shrink", 1), ("pool-grow", "pool_grow", 1)):
        cmd = captured(name)["cmd"]
        built = _celery.celery_argv(["python3", "-m", "celery"], "tasks", call, [NODE], queue=queue)
        assert [a for a in built if a not in ("--timeout", "5")] == cmd


def test_shutdown_and_broadcasts_cannot_be_built():
    with pytest.raises(ValueError):
        _celery.celery_argv(["celery"], "tasks", "shutdown", [NODE])
    with pytest.raises(ValueError):
        _celery.celery_argv(["celery"], "tasks", "active", [])
    with pytest.raises(ValueError):
        _celery.celery_argv(["celery"], "tasks", "add_consumer", [NODE])
    assert "shutdown" not in json.dumps(_celery.CELERY_CALLS)


def test_control_calls_are_the_ones_that_change_something():
    assert [c for c in _celery.CELERY_CALLS if _celery.call_changes(c)] == [
        "cancel_consumer", "add_consumer", "pool_shrink", "pool_grow"]


@pytest.mark.parametrize("count", [0, -1, "1", None, True])
def test_pool_calls_need_a_positive_process_count(count):
    with pytest.raises(ValueError, match="positive number of processes"):
        _celery.celery_argv(["celery"], "tasks", "pool_shrink", [NODE], queue=count)


def test_parse_pool_sizes_counts_the_live_processes():
    assert _celery.parse_pool_sizes(captured("stats")["stdout"]) == {NODE: 2}
    shrunk = json.loads(captured("stats")["stdout"])
    shrunk[NODE]["pool"]["processes"] = shrunk[NODE]["pool"]["processes"][:1]
    # max-concurrency still says 2 after a shrink: only the process list counts.
    assert shrunk[NODE]["pool"]["max-concurrency"] == 2
    assert _celery.parse_pool_sizes(json.dumps(shrunk)) == {NODE: 1}


def test_parse_redelivery_needs_both_settings_and_never_echoes_the_reply():
    assert _celery.parse_redelivery(captured("conf")["stdout"]) == {NODE: True}
    conf = json.loads(captured("conf")["stdout"])[NODE]
    for missing in ("task_acks_late", "task_reject_on_worker_lost"):
        assert _celery.parse_redelivery(json.dumps({NODE: {k: v for k, v in conf.items() if k != missing}})) == {NODE: False}
    with pytest.raises(_celery.CeleryReplyError) as error:
        _celery.parse_redelivery("broker_url=redis://:s3cret@redis not json")
    assert "s3cret" not in str(error.value)


def test_parse_pool_sizes_refuses_a_pool_without_processes():
    solo = {NODE: {"pool": {"implementation": "celery.concurrency.solo:TaskPool"}}}
    with pytest.raises(_celery.CeleryReplyError, match="prefork"):
        _celery.parse_pool_sizes(json.dumps(solo))


def test_parse_control_of_pool_calls_and_the_busy_refusal():
    assert _celery.parse_control(captured("pool-shrink")["stdout"]) == {NODE: (True, "pool will shrink")}
    assert _celery.parse_control(captured("pool-grow")["stdout"]) == {NODE: (True, "pool will grow")}
    ok, message = _celery.parse_control(captured("pool-shrink-busy")["stdout"])[NODE]
    assert not ok and _celery.POOL_BUSY in message


def test_node_name_is_celery_at_hostname():
    assert _celery.node_name("8296434d8e9e") == NODE


def test_parse_ping_of_one_and_of_several_nodes():
    assert _celery.parse_ping(captured("ping")["stdout"]) == [NODE]
    both = _celery.parse_ping(captured("ping-broadcast")["stdout"])
    assert both == ["celery@8296434d8e9e", "extra@8296434d8e9e"]
    assert _celery.nodes_of_host(both + ["celery@othercolor"], "8296434d8e9e") == both
    assert _celery.parse_ping("") == []


def test_parse_queues_of_active_queues():
    assert _celery.parse_queues(captured("active-queues")["stdout"]) == {NODE: ["celery"]}
    assert _celery.parse_queues(captured("active-queues-cancelled")["stdout"]) == {NODE: []}


def test_parse_tasks_of_active_and_reserved():
    active = _celery.parse_tasks(captured("active")["stdout"])
    assert list(active) == [NODE]
    assert active[NODE][0]["name"] == "tasks.work" and active[NODE][0]["id"].count("-") == 4
    assert active[NODE][0]["time_start"] > 0
    reserved = _celery.parse_tasks(captured("reserved")["stdout"])
    node, tasks = list(reserved.items())[0]
    assert len(reserved) == 1
    assert node.startswith("extra@") and len(tasks) == 3 and all(t["time_start"] is None for t in tasks)
    assert _celery.parse_tasks(captured("active-empty")["stdout"]) == {NODE: []}
    assert _celery.parse_tasks(captured("reserved-empty")["stdout"]) == {NODE: []}


def test_parse_control_reads_the_list_form_of_control_replies():
    assert _celery.parse_control(captured("cancel-consumer")["stdout"]) == {
        NODE: (True, "no longer consuming from celery")}
    assert _celery.parse_control(captured("add-consumer")["stdout"]) == {NODE: (True, "add consumer celery")}
    assert _celery.parse_control('[{"n@h": {"error": "nope"}}]') == {"n@h": (False, "nope")}


def test_parse_reply_refuses_what_is_not_json():
    with pytest.raises(_celery.CeleryReplyError):
        _celery.parse_reply("<html>")
    with pytest.raises(_celery.CeleryReplyError):
        _celery.parse_reply("[1]")


@pytest.mark.parametrize("name, kind, message", [
    ("ping-no-reply", _celery.NO_REPLY, "Error: No nodes replied within time constraint"),
    ("app-not-found", _celery.APP_ERROR,
     "Error: Invalid value for '-A' / '--app': Unable to load celery application. The module nosuchapp was not found."),
    ("no-module", _celery.NO_CELERY, "/usr/bin/python3: No module named celeryx"),
    ("no-executable", _celery.NO_CELERY, None),
])
def test_failures_are_classified_with_celerys_own_message(name, kind, message):
    data = captured(name)
    assert data["rc"] != 0
    found_kind, found_message = _celery.classify_failure(data["rc"], data["stdout"], data["stderr"])
    assert found_kind == kind
    if message:
        assert found_message == message
    else:
        assert "executable file not found" in found_message


def test_an_unknown_failure_keeps_the_last_line():
    assert _celery.classify_failure(1, "", "boom\nError: broker down\n") == (_celery.OTHER_ERROR, "Error: broker down")
    assert _celery.classify_failure(3, "", "") == (_celery.OTHER_ERROR, "exit code 3")
