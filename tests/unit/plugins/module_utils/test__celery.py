# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Celery: argv builder and reply parsers against replies captured from the demo worker, the
orphan rule, and the transports' choice (open_control, CliControl) with exec and the agent faked."""

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


# -- argv of the CLI transport -------------------------------------------------------------------

def test_every_call_builds_an_addressed_json_argv():
    cmd = ["python3", "-m", "celery"]
    assert _celery.celery_argv(cmd, "tasks", "active", [NODE]) == [
        "python3", "-m", "celery", "-A", "tasks", "inspect", "active",
        "--destination", NODE, "--timeout", "2", "--json"]
    assert _celery.celery_argv(cmd, "tasks", "cancel_consumer", [NODE, "extra@x"], argument="celery",
                               timeout=1.5) == [
        "python3", "-m", "celery", "-A", "tasks", "control", "cancel_consumer", "celery",
        "--destination", NODE + ",extra@x", "--timeout", "1.5", "--json"]
    for call in _celery.INSPECT_CALLS + _celery.CONTROL_CALLS:
        argument = 1 if call.startswith("pool_") else ("q" if call in _celery.CONTROL_CALLS else None)
        argv = _celery.celery_argv(["celery"], "app", call, [NODE], argument=argument)
        assert "--destination" in argv and argv[-1] == "--json"


def test_a_ping_may_ask_every_node_nothing_else_may():
    assert _celery.celery_argv(["celery"], "tasks", "ping", timeout=0.5) == [
        "celery", "-A", "tasks", "inspect", "ping", "--timeout", "0.5", "--json"]
    with pytest.raises(ValueError, match="needs at least one destination"):
        _celery.celery_argv(["celery"], "tasks", "cancel_consumer", [], argument="celery")


def test_the_captured_commands_are_what_the_builder_makes():
    for name, call, argument in (("ping", "ping", None), ("active", "active", None),
                                 ("reserved-empty", "reserved", None), ("active-queues", "active_queues", None),
                                 ("cancel-consumer", "cancel_consumer", "celery"), ("stats", "stats", None),
                                 ("add-consumer", "add_consumer", "celery"), ("pool-shrink", "pool_shrink", 1),
                                 ("pool-grow", "pool_grow", 1)):
        built = _celery.celery_argv(["python3", "-m", "celery"], "tasks", call, [NODE], argument=argument)
        assert [a for a in built if a not in ("--timeout", "2")] == captured(name)["cmd"]


def test_shutdown_and_unknown_calls_cannot_be_built():
    with pytest.raises(ValueError):
        _celery.celery_argv(["celery"], "tasks", "shutdown", [NODE])
    with pytest.raises(ValueError, match="needs a queue"):
        _celery.celery_argv(["celery"], "tasks", "add_consumer", [NODE])
    assert "shutdown" not in _celery.INSPECT_CALLS + _celery.CONTROL_CALLS


@pytest.mark.parametrize("count", [0, -1, "1", None, True])
def test_pool_calls_need_a_positive_process_count(count):
    with pytest.raises(ValueError, match="positive number of processes"):
        _celery.celery_argv(["celery"], "tasks", "pool_shrink", [NODE], argument=count)
    with pytest.raises(ValueError, match="positive number of processes"):
        _celery.control_arguments("pool_grow", count)


def test_control_arguments_as_the_broadcast_takes_them():
    assert _celery.control_arguments("cancel_consumer", "celery") == {"queue": "celery"}
    assert _celery.control_arguments("add_consumer", "mail") == {"queue": "mail"}
    assert _celery.control_arguments("pool_shrink", 2) == {"n": 2}


@pytest.mark.parametrize("command, candidates", [
    (["celery"], ["python3", "python"]),
    (["python3", "-m", "celery"], ["python3"]),
    (["/opt/venv/bin/python3.11", "-m", "celery"], ["/opt/venv/bin/python3.11"]),
    (["/usr/local/bin/celery"], ["python3", "python"]),
])
def test_the_agent_runs_with_the_python_celery_runs_with(command, candidates):
    assert _celery.python_candidates(command) == candidates


def test_node_names():
    assert _celery.node_name("8296434d8e9e") == NODE
    nodes = ["celery@8296434d8e9e", "extra@8296434d8e9e", "celery@othercolor", "x@18296434d8e9e"]
    assert _celery.nodes_of_host(nodes, "8296434d8e9e") == ["celery@8296434d8e9e", "extra@8296434d8e9e"]


# -- replies ---------------------------------------------------------------------------------------

def test_parse_reply_takes_text_or_what_the_agent_already_parsed():
    text = captured("cancel-consumer")["stdout"]
    assert _celery.parse_reply(text) == _celery.parse_reply(json.loads(text)) == {
        NODE: {"ok": "no longer consuming from celery"}}
    assert _celery.parse_reply({NODE: []}) == {NODE: []}
    assert _celery.parse_reply(None) == {} and _celery.parse_reply("  \n") == {}


@pytest.mark.parametrize("reply", ["<html>", "[1]", "42", 42, [None]])
def test_parse_reply_refuses_what_is_not_a_reply(reply):
    with pytest.raises(_celery.CeleryReplyError):
        _celery.parse_reply(reply)


def test_parse_ping_of_one_and_of_several_nodes():
    assert _celery.parse_ping(captured("ping")["stdout"]) == [NODE]
    assert _celery.parse_ping(captured("ping-broadcast")["stdout"]) == ["celery@8296434d8e9e", "extra@8296434d8e9e"]
    assert _celery.parse_ping({NODE: {"error": "x"}, "b@h": {"ok": "pong"}}) == ["b@h"]
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
    ((node, tasks),) = list(reserved.items())
    assert node.startswith("extra@") and len(tasks) == 3 and all(t["time_start"] is None for t in tasks)
    assert _celery.parse_tasks(captured("active-empty")["stdout"]) == {NODE: []}
    assert _celery.parse_tasks(captured("reserved-empty")["stdout"]) == {NODE: []}


def test_parse_pool_sizes_counts_the_live_processes():
    assert _celery.parse_pool_sizes(captured("stats")["stdout"]) == {NODE: 2}
    shrunk = json.loads(captured("stats")["stdout"])
    shrunk[NODE]["pool"]["processes"] = shrunk[NODE]["pool"]["processes"][:1]
    # max-concurrency still says 2 after a shrink: only the process list counts.
    assert shrunk[NODE]["pool"]["max-concurrency"] == 2
    assert _celery.parse_pool_sizes(shrunk) == {NODE: 1}


def test_parse_pool_sizes_refuses_a_pool_without_processes():
    solo = {NODE: {"pool": {"implementation": "celery.concurrency.solo:TaskPool"}}}
    with pytest.raises(_celery.CeleryReplyError, match="prefork"):
        _celery.parse_pool_sizes(json.dumps(solo))


def test_parse_redelivery_needs_both_settings_and_never_echoes_the_reply():
    assert _celery.parse_redelivery(captured("conf")["stdout"]) == {NODE: True}
    conf = json.loads(captured("conf")["stdout"])[NODE]
    assert _celery.parse_redelivery({NODE: conf}) == {NODE: True}, "the agent's reply is already parsed"
    for missing in ("task_acks_late", "task_reject_on_worker_lost"):
        assert _celery.parse_redelivery({NODE: dict(conf, **{missing: None})}) == {NODE: False}
    assert _celery.parse_redelivery({NODE: dict(conf, task_acks_late="true")}) == {NODE: False}
    for bad in ("broker_url=redis://:s3cret@redis not json", '["redis://:s3cret@redis"]'):
        with pytest.raises(_celery.CeleryReplyError) as error:
            _celery.parse_redelivery(bad)
        assert "s3cret" not in str(error.value)


def test_parse_control_of_queue_and_pool_calls_and_the_busy_refusal():
    assert _celery.parse_control(captured("cancel-consumer")["stdout"]) == {
        NODE: (True, "no longer consuming from celery")}
    assert _celery.parse_control(captured("add-consumer")["stdout"]) == {NODE: (True, "add consumer celery")}
    assert _celery.parse_control(captured("pool-shrink")["stdout"]) == {NODE: (True, "pool will shrink")}
    assert _celery.parse_control(captured("pool-grow")["stdout"]) == {NODE: (True, "pool will grow")}
    ok, message = _celery.parse_control(captured("pool-shrink-busy")["stdout"])[NODE]
    assert not ok and _celery.POOL_BUSY in message
    assert _celery.parse_control('[{"n@h": {"error": "nope"}}]') == {"n@h": (False, "nope")}
    assert _celery.parse_control({"n@h": "garbled"}) == {"n@h": (False, "garbled")}


# -- orphans -------------------------------------------------------------------------------------------

def entry(tag, task_id, delivered_at):
    return {"tag": tag, "id": task_id, "task": "tasks.work", "routing_key": "celery", "delivered_at": delivered_at}


def test_an_orphan_was_delivered_before_the_stop_and_no_live_worker_holds_it():
    unacked = [entry("t-late", "late", 1010.0), entry("t-held", "held", 900.0), entry("t-b", "lost-b", 950.0),
               entry("t-a", "lost-a", 950.0), entry("t-edge", "edge", 1000.0), entry("t-none", "none", None)]
    found = _celery.orphaned(unacked, {"held"}, before=1000.0)
    assert [o["tag"] for o in found] == ["t-a", "t-b"], "oldest first, then by tag"
    assert _celery.orphaned([], {"x"}, 1000.0) == []
    assert _celery.orphaned([entry("s", "x", "999.5")], set(), 1000.0)[0]["tag"] == "s", "Redis scores as text"


# -- failures of the CLI transport ---------------------------------------------------------------------

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


# -- the transports ---------------------------------------------------------------------------------------

def container(service, name=None, cid=None):
    return {"id": cid or (service * 64)[:64], "name": name or "shop-blue-%s-1" % service, "service": service,
            "hostname": (cid or (service * 64))[:12]}


class ExecEngine:
    """Engine.exec_run answered with captured results: `answers` maps a call (argv word) to a fixture name."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def exec_run(self, ident, argv):
        self.calls.append((ident, list(argv)))
        name = self.answers.get(argv[argv.index("inspect" if "inspect" in argv else "control") + 1],
                                self.answers.get("*"))
        data = captured(name)
        return data["rc"], data["stdout"], data["stderr"]


def test_the_cli_transport_runs_one_celery_per_call_in_its_container():
    engine = ExecEngine({"ping": "ping", "active": "active", "pool_grow": "pool-grow", "conf": "conf"})
    web = container("web")
    cli = _celery.CliControl(engine, web, ["python3", "-m", "celery"], "tasks")
    assert cli.ping([NODE]) == {NODE: {"ok": "pong"}}
    assert list(cli.inspect("active", [NODE])) == [NODE]
    assert cli.control("pool_grow", 1, [NODE]) == {NODE: {"ok": "pool will grow"}}
    conf = cli.inspect("conf", [NODE], keys=["task_acks_late", "task_reject_on_worker_lost"])
    assert conf == {NODE: {"task_acks_late": True, "task_reject_on_worker_lost": True}}, "only the keys asked for"
    assert cli.calls == 4 and cli.transport == "cli" and all(ident == web["id"] for ident, _argv in engine.calls)
    assert engine.calls[2][1][-6:] == ["1", "--destination", NODE, "--timeout", "2", "--json"]


def test_the_cli_transport_reads_no_reply_as_an_empty_answer_and_fails_on_anything_else():
    cli = _celery.CliControl(ExecEngine({"*": "ping-no-reply"}), container("worker"), ["celery"], "tasks")
    assert cli.ping(["celery@gone"]) == {}
    cli = _celery.CliControl(ExecEngine({"*": "no-module"}), container("worker"), ["python3", "-m", "celeryx"],
                             "tasks")
    with pytest.raises(_celery.CeleryError) as err:
        cli.inspect("active", [NODE])
    assert err.value.kind == _celery.NO_CELERY
    assert str(err.value) == ("celery active in shop-blue-worker-1 (service worker) failed: /usr/bin/python3: No "
                              "module named celeryx")
    assert cli.unacked() is None and cli.restore(["t"]) == [] and cli.close() == {}


class Agents:
    """Stands in for AgentControl: what an agent does in each (container, python), in order of the attempts."""

    def __init__(self, outcomes):
        self.outcomes = outcomes  # (container name, python) -> CeleryError kind, or "ok"
        self.tried = []

    def __call__(self, docker_bin, container, python, app, environ=None):
        self.tried.append((container["name"], python))
        kind = self.outcomes.get((container["name"], python), _celery.NO_PYTHON)
        if kind != "ok":
            raise _celery.CeleryError("%s cannot start in %s" % (python, container["name"]), kind)
        agent = _celery.CeleryControl(container)
        agent.transport = "agent"
        return agent


def test_the_agent_is_tried_first_with_each_python(monkeypatch):
    agents = Agents({("shop-blue-web-1", "python"): "ok"})
    monkeypatch.setattr(_celery, "AgentControl", agents)
    engine = ExecEngine({})
    control = _celery.open_control(engine, "/usr/bin/docker", [container("web")], ["celery"], "tasks")
    assert control.transport == "agent" and control.container["name"] == "shop-blue-web-1"
    assert agents.tried == [("shop-blue-web-1", "python3"), ("shop-blue-web-1", "python")]
    assert engine.calls == []


def test_without_an_agent_the_cli_of_the_same_container_is_used_and_said(monkeypatch):
    monkeypatch.setattr(_celery, "AgentControl", Agents({}))
    notes = []
    engine = ExecEngine({"ping": "ping-no-reply"})
    control = _celery.open_control(engine, "/usr/bin/docker", [container("web"), container("worker")], ["celery"],
                                   "tasks", note=notes.append)
    assert control.transport == "cli" and control.container["service"] == "web"
    assert [argv[argv.index("--destination") + 1] for _i, argv in engine.calls] == ["lowspec-bluegreen-probe@nowhere"]
    (note,) = notes
    assert note.startswith("the Celery agent could not start (shop-blue-web-1: python3 cannot start")
    assert note.endswith("using one celery command per call in shop-blue-web-1 instead")


def test_a_container_without_celery_is_passed_over_for_the_next(monkeypatch):
    agents = Agents({("shop-blue-web-1", "python3"): _celery.NO_CELERY, ("shop-blue-worker-1", "python3"): "ok"})
    monkeypatch.setattr(_celery, "AgentControl", agents)
    engine = ExecEngine({"ping": "no-module"})
    control = _celery.open_control(engine, "/usr/bin/docker", [container("web"), container("worker")], ["celery"],
                                   "tasks")
    assert control.container["service"] == "worker" and control.transport == "agent"


def test_an_app_celery_cannot_load_fails_at_once(monkeypatch):
    agents = Agents({("shop-blue-web-1", "python3"): _celery.APP_ERROR})
    monkeypatch.setattr(_celery, "AgentControl", agents)
    with pytest.raises(_celery.CeleryError) as err:
        _celery.open_control(ExecEngine({}), "/usr/bin/docker", [container("web"), container("worker")], ["celery"],
                             "nosuchapp")
    assert err.value.kind == _celery.APP_ERROR and agents.tried == [("shop-blue-web-1", "python3")]
    assert str(err.value).startswith("celery_app=nosuchapp: Celery cannot load it in shop-blue-web-1 (service web)")


def test_an_app_the_cli_cannot_load_fails_at_once_with_celerys_message(monkeypatch):
    monkeypatch.setattr(_celery, "AgentControl", Agents({}))
    with pytest.raises(_celery.CeleryError) as err:
        _celery.open_control(ExecEngine({"ping": "app-not-found"}), "/usr/bin/docker",
                             [container("web"), container("worker")], ["celery"], "nosuchapp")
    assert err.value.kind == _celery.APP_ERROR and "The module nosuchapp was not found." in str(err.value)


def test_nothing_to_reach_celery_from_says_so(monkeypatch):
    monkeypatch.setattr(_celery, "AgentControl", Agents({}))
    with pytest.raises(_celery.CeleryError) as err:
        _celery.open_control(ExecEngine({}), "/usr/bin/docker", [], ["celery"], "tasks")
    assert str(err.value) == "Celery cannot be reached from no running container: nothing to try"
    with pytest.raises(_celery.CeleryError) as err:
        _celery.open_control(ExecEngine({"ping": "no-executable"}), "/usr/bin/docker", [container("web")],
                             ["celery"], "tasks")
    assert err.value.kind == _celery.NO_CELERY and "executable file not found" in str(err.value)


def test_the_agent_source_is_the_agent_module():
    source = _celery.agent_source()
    assert "class Agent" in source and "def main(" in source and source.rstrip().endswith("raise SystemExit(main())")
