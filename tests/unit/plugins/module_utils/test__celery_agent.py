# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Celery agent (the program the modules run inside an app container), without Celery:
Agent.handle() and main()'s line protocol against a small fake Celery app whose broker
connection is a fake Redis channel (the calls kombu's Redis transport makes)."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import sys
import types

import pytest

from ansible_collections.lowspec.bluegreen.plugins.module_utils import _celery_agent

NODE = "celery@8296434d8e9e"
CONF = {"broker_url": "redis://:s3cret@redis:6379/0", "task_acks_late": True, "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1}


def message(task_id, queue="celery"):
    """What kombu's Redis transport keeps in its `unacked` hash: [payload, exchange, routing_key]."""
    return json.dumps([{"body": "e30=", "headers": {"id": task_id, "task": "tasks.work"},
                        "properties": {"delivery_tag": "tag-" + task_id}}, "", queue]).encode()


class FakeRedis:
    """The redis-py client calls the agent makes: hashes, sorted sets, lists, PUBSUB, transactions."""

    def __init__(self):
        self.hashes = {}
        self.zsets = {}
        self.lists = {}
        self.numsub = {}
        self.numpat = 0
        self.clients = []  # CLIENT LIST, as redis-py parses it

    def client_list(self):
        return list(self.clients)

    def hgetall(self, key):
        return dict((k.encode(), v) for k, v in self.hashes.get(key, {}).items())

    def hget(self, key, field):
        return self.hashes.get(key, {}).get(field)

    def zscore(self, key, member):
        return self.zsets.get(key, {}).get(member)

    def llen(self, key):
        return len(self.lists.get(key, []))

    def execute_command(self, *args):
        if args[:2] == ("PUBSUB", "NUMSUB"):
            return [args[2].encode(), self.numsub.get(args[2], 0)]
        if args == ("PUBSUB", "NUMPAT"):
            return self.numpat
        raise AssertionError(args)

    def transaction(self, func, *watches):
        pipe = FakePipe(self)
        func(pipe)
        pipe.execute()


class FakePipe:
    """A MULTI pipeline: reads before multi() are immediate, writes after it are queued until execute()."""

    def __init__(self, client):
        self.client = client
        self.queued = []
        self.in_multi = False

    def hget(self, key, field):
        assert not self.in_multi, "read after MULTI"
        return self.client.hget(key, field)

    def multi(self):
        self.in_multi = True

    def zrem(self, key, member):
        self.queued.append(lambda: self.client.zsets.get(key, {}).pop(member, None))

    def hdel(self, key, field):
        self.queued.append(lambda: self.client.hashes.get(key, {}).pop(field, None))

    def lpush(self, key, value):
        self.queued.append(lambda: self.client.lists.setdefault(key, []).insert(0, value))

    def execute(self):
        for step in self.queued:
            step()


class FakeChannel:
    unacked_key = "unacked"
    unacked_index_key = "unacked_index"
    keyprefix_fanout = "/0."
    priority_steps = [0, 3, 6, 9]

    def __init__(self):
        self.client = FakeRedis()

    @contextlib.contextmanager
    def conn_or_acquire(self):
        yield self.client

    def _do_restore_message(self, payload, exchange, routing_key, pipe, leftmost=False):
        pipe.lpush(routing_key, json.dumps(payload))

    def _q_for_pri(self, queue, pri):
        return "%s\x06\x16%s" % (queue, pri) if pri else queue

    def queue_declare(self, queue, passive=False):
        assert passive
        return types.SimpleNamespace(message_count=7)


class FakeConnection:
    def __init__(self, driver="redis", fail=None):
        self.transport = types.SimpleNamespace(driver_type=driver)
        self.default_channel = FakeChannel()
        self.fail = fail
        self.released = False

    def ensure_connection(self, max_retries=None):
        if self.fail:
            raise self.fail

    def release(self):
        self.released = True


class FakeInspector:
    def __init__(self, control, destination, timeout):
        self.control, self.destination, self.timeout = control, destination, timeout

    def _reply(self, name, **kwargs):
        self.control.asked.append((name, self.destination, self.timeout, kwargs))
        return self.control.replies.get(name)

    def __getattr__(self, name):
        if name in ("active", "reserved", "stats", "active_queues", "scheduled", "registered", "revoked"):
            return lambda **kwargs: self._reply(name, **kwargs)
        raise AttributeError(name)

    def conf(self, with_defaults=False):
        return self._reply("conf", with_defaults=with_defaults)


class FakeCeleryControl:
    mailbox = types.SimpleNamespace(namespace="celery")

    def __init__(self, app):
        self.app = app
        self.asked = []
        self.replies = {"active": {NODE: []}, "reserved": {NODE: []}, "conf": {NODE: dict(CONF)},
                        "stats": {NODE: {"pool": {"processes": [81, 161]}}}, "scheduled": {NODE: []}}

    def ping(self, destination=None, timeout=None, connection=None):
        assert connection is self.app.connection
        self.asked.append(("ping", destination, timeout, {}))
        return [{NODE: {"ok": "pong"}}, {"extra@8296434d8e9e": {"ok": "pong"}}]

    def inspect(self, destination=None, timeout=None, connection=None):
        assert connection is self.app.connection
        return FakeInspector(self, destination, timeout)

    def broadcast(self, command, arguments=None, destination=None, reply=False, timeout=None, connection=None):
        assert connection is self.app.connection
        self.asked.append((command, destination, timeout, dict(arguments=arguments, reply=reply)))
        return [{NODE: {"ok": "%s done" % command}}]


class FakeApp:
    def __init__(self, driver="redis", fail=None):
        self.connection = FakeConnection(driver, fail)
        self.control = FakeCeleryControl(self)

    def connection_for_write(self):
        return self.connection


@pytest.fixture
def app():
    return FakeApp()


@pytest.fixture
def agent(app):
    return _celery_agent.Agent(app)


def test_merge_replies():
    assert _celery_agent.merge_replies([{"a@h": 1}, {"b@h": 2}, "noise"]) == {"a@h": 1, "b@h": 2}
    assert _celery_agent.merge_replies(None) == {}


def test_ping_answers_every_node_as_one_reply_over_the_one_connection(agent, app):
    assert agent.handle({"op": "ping", "timeout": 0.5}) == {NODE: {"ok": "pong"}, "extra@8296434d8e9e": {"ok": "pong"}}
    assert agent.handle({"op": "ping", "destination": [NODE]})
    assert app.control.asked == [("ping", None, 0.5, {}), ("ping", [NODE], 1.0, {})]
    assert agent.requests == 2


def test_inspect_asks_the_named_nodes(agent, app):
    assert agent.handle({"op": "inspect", "method": "stats", "destination": [NODE], "timeout": 2}) == {
        NODE: {"pool": {"processes": [81, 161]}}}
    assert app.control.asked == [("stats", [NODE], 2.0, {})]
    app.control.replies["active"] = None  # no node answered
    assert agent.handle({"op": "inspect", "method": "active", "destination": [NODE]}) == {}


def test_conf_answers_only_the_keys_asked_for_so_the_broker_url_never_leaves(agent, app):
    reply = agent.handle({"op": "inspect", "method": "conf", "destination": [NODE],
                          "keys": ["task_acks_late", "task_reject_on_worker_lost", "unset_key"]})
    assert reply == {NODE: {"task_acks_late": True, "task_reject_on_worker_lost": True, "unset_key": None}}
    assert agent.handle({"op": "inspect", "method": "conf", "destination": [NODE]}) == {NODE: {}}
    assert app.control.asked[0] == ("conf", [NODE], 1.0, {"with_defaults": False})
    app.control.replies["conf"] = {NODE: None}
    assert agent.handle({"op": "inspect", "method": "conf", "destination": [NODE], "keys": ["task_acks_late"]}) == {
        NODE: {"task_acks_late": None}}


def test_control_broadcasts_to_the_destination_and_waits_for_replies(agent, app):
    reply = agent.handle({"op": "control", "method": "cancel_consumer", "arguments": {"queue": "celery"},
                          "destination": [NODE], "timeout": 2})
    assert reply == {NODE: {"ok": "cancel_consumer done"}}
    assert app.control.asked == [("cancel_consumer", [NODE], 2.0, {"arguments": {"queue": "celery"}, "reply": True})]


@pytest.mark.parametrize("request_", [
    {"op": "inspect", "method": "registered", "destination": [NODE]},
    {"op": "inspect", "method": "__class__", "destination": [NODE]},
    {"op": "control", "method": "shutdown", "destination": [NODE]},
    {"op": "control", "method": "revoke", "arguments": {"task_id": "x"}, "destination": [NODE]},
    {"op": "eval", "code": "import os"},
    {},
])
def test_what_is_not_on_the_list_is_refused(agent, app, request_):
    with pytest.raises(ValueError):
        agent.handle(request_)
    assert [a for a in app.control.asked if a[0] in ("shutdown", "revoke", "registered")] == []


def broker(app):
    channel = app.connection.default_channel
    client = channel.client
    client.hashes["unacked"] = {"tag-a": message("a"), "tag-b": message("b", "mail"), "tag-bad": b"not json"}
    client.zsets["unacked_index"] = {"tag-a": 1000.5, "tag-b": 1001.0}
    client.numsub["/0.celery.pidbox"] = 2
    client.numpat = 1
    return client


def test_unacked_reads_the_brokers_record_with_delivery_times(agent, app):
    broker(app)
    record = agent.handle({"op": "unacked"})
    assert sorted(record["entries"], key=lambda e: e["tag"]) == [
        {"tag": "tag-a", "id": "a", "task": "tasks.work", "exchange": "", "routing_key": "celery",
         "delivered_at": 1000.5},
        {"tag": "tag-b", "id": "b", "task": "tasks.work", "exchange": "", "routing_key": "mail",
         "delivered_at": 1001.0},
    ], "an entry that is not kombu's is skipped"
    assert record["subscribers"] == 3, "listeners of the pidbox broadcasts, by channel and by pattern"
    assert "e30=" not in json.dumps(record), "a task's body (its arguments) never leaves the broker"


def test_restore_puts_a_message_back_once(agent, app):
    client = broker(app)
    assert agent.handle({"op": "restore", "tags": ["tag-a", "tag-gone"]}) == ["tag-a"]
    assert json.loads(client.lists["celery"][0])["headers"]["id"] == "a"
    assert "tag-a" not in client.hashes["unacked"] and "tag-a" not in client.zsets["unacked_index"]
    assert agent.handle({"op": "restore", "tags": ["tag-a"]}) == [], "the second restore finds nothing"
    assert len(client.lists["celery"]) == 1
    assert agent.handle({"op": "restore", "tags": []}) == []


def test_queue_length_counts_every_priority_queue(agent, app):
    client = app.connection.default_channel.client
    client.lists = {"celery": [1, 2], "celery\x06\x163": [3], "mail": [4]}
    assert agent.handle({"op": "queue_length", "queue": "celery"}) == 3


def client(addr, flags="N", cmd="get"):
    """One CLIENT LIST entry of Redis 7 as redis-py gives it (strings)."""
    return {"id": "7", "addr": addr, "laddr": "172.22.0.2:6379", "fd": "9", "name": "", "age": "12", "idle": "0",
            "flags": flags, "db": "0", "sub": "0", "psub": "0", "multi": "-1", "cmd": cmd, "user": "default"}


def test_fetching_lists_the_connections_of_the_addresses_that_wait_in_a_blocking_pop(agent, app):
    channel = app.connection.default_channel
    channel.brpop_timeout = 2
    channel.client.clients = [
        client("172.22.0.5:42374", flags="b", cmd="brpop"),  # the worker's fetch, waiting
        client("172.22.0.5:42380", flags="P", cmd="psubscribe"),  # its remote-control listener
        client("172.22.0.6:40000", flags="b", cmd="brpop"),  # a worker of the other color
        client("[fd00::5]:5000", flags="b", cmd="blpop"),
        client("172.22.0.50:1", flags="N", cmd="brpop"),  # a fetch that has returned
    ]
    assert agent.handle({"op": "fetching", "addresses": ["172.22.0.5", "fd00::5", "172.22.0.50"]}) == {
        "seen": 4, "timeout": 2.0,
        "blocked": [{"addr": "172.22.0.5:42374", "cmd": "brpop"}, {"addr": "[fd00::5]:5000", "cmd": "blpop"}]}
    assert agent.handle({"op": "fetching", "addresses": ["10.0.0.9"]}) == {"seen": 0, "blocked": [], "timeout": 2.0}


def test_other_brokers_have_no_unacked_record_to_read():
    agent = _celery_agent.Agent(FakeApp(driver="amqp"))
    for request in ({"op": "unacked"}, {"op": "restore", "tags": ["t"]}, {"op": "fetching", "addresses": ["a"]}):
        with pytest.raises(ValueError, match="not Redis"):
            agent.handle(request)
    assert agent.handle({"op": "queue_length", "queue": "celery"}) == 7


# -- main(): the line protocol ------------------------------------------------------------------------

@pytest.fixture
def fake_celery(monkeypatch):
    """`import celery` and `import kombu` find modules with a version; load_app() gives `app`."""
    state = {"app": FakeApp(), "load_error": ImportError(), "fail_load": False, "loaded": []}
    monkeypatch.setitem(sys.modules, "celery", types.SimpleNamespace(__version__="5.4.0"))
    monkeypatch.setitem(sys.modules, "kombu", types.SimpleNamespace(__version__="5.4.2"))

    def load_app(name):
        state["loaded"].append(name)
        if state["fail_load"]:
            raise state["load_error"]
        return state["app"]

    monkeypatch.setattr(_celery_agent, "load_app", load_app)
    return state


def talk(monkeypatch, capsys, lines, argv=("tasks",)):
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(line + "\n" for line in lines)))
    rc = _celery_agent.main(list(argv))
    return rc, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_main_says_ready_then_answers_each_request_by_its_id(monkeypatch, capsys, fake_celery):
    rc, out = talk(monkeypatch, capsys, [
        json.dumps({"id": 1, "op": "ping", "timeout": 1}),
        "",
        "{not json",
        json.dumps({"id": 2, "op": "control", "method": "shutdown", "destination": [NODE]}),
        json.dumps({"id": 3, "op": "exit"}),
        json.dumps({"id": 4, "op": "ping"}),
    ])
    assert rc == 0 and fake_celery["loaded"] == ["tasks"]
    ready, ping, garbled, refused, bye = out
    assert ready["ready"] is True and ready["transport"] == "redis"
    assert ready["celery"] == "5.4.0" and ready["kombu"] == "5.4.2" and isinstance(ready["pid"], int)
    assert ping == {"id": 1, "ok": True, "reply": {NODE: {"ok": "pong"}, "extra@8296434d8e9e": {"ok": "pong"}}}
    assert garbled == {"id": None, "ok": False, "error": "ValueError", "message": "not a JSON request"}
    assert refused["id"] == 2 and refused["ok"] is False and "shutdown" in refused["message"]
    assert bye["id"] == 3 and bye["ok"] is True and bye["reply"]["requests"] == 2
    assert set(bye["reply"]) == {"cpu_s", "wall_s", "requests"}
    assert fake_celery["app"].connection.released, "the broker connection is let go"


def test_main_ends_when_its_stdin_closes(monkeypatch, capsys, fake_celery):
    rc, out = talk(monkeypatch, capsys, [])
    assert rc == 0 and [line.get("ready") for line in out] == [True]


def test_main_refuses_a_broker_url_leak_through_conf(monkeypatch, capsys, fake_celery):
    _rc, out = talk(monkeypatch, capsys, [json.dumps({"id": 1, "op": "inspect", "method": "conf",
                                                      "destination": [NODE], "keys": ["task_acks_late"]})])
    assert "s3cret" not in json.dumps(out) and out[1]["reply"] == {NODE: {"task_acks_late": True}}


@pytest.mark.parametrize("stage, kind", [("celery", "no_celery"), ("app", "app"), ("broker", "broker")])
def test_main_says_not_ready_with_the_stage_that_failed(monkeypatch, capsys, fake_celery, stage, kind):
    if stage == "celery":
        monkeypatch.setitem(sys.modules, "celery", None)  # `import celery` raises ImportError
    elif stage == "app":
        fake_celery.update(fail_load=True, load_error=ImportError("No module named 'tasks'"))
    else:
        fake_celery["app"] = FakeApp(fail=ConnectionRefusedError(111, "Connection refused"))
    rc, out = talk(monkeypatch, capsys, [json.dumps({"id": 1, "op": "ping"})])
    assert rc == 2
    ((line),) = out
    assert line["ready"] is False and line["kind"] == kind
    if stage == "app":
        assert line == {"ready": False, "kind": "app", "error": "ImportError",
                        "message": "ImportError: No module named 'tasks'"}


def test_load_app_finds_the_app_from_the_working_directory(monkeypatch, tmp_path):
    found = []
    utils = types.ModuleType("celery.app.utils")
    utils.find_app = lambda name: found.append((name, list(sys.path))) or "the app"
    monkeypatch.setitem(sys.modules, "celery", types.ModuleType("celery"))
    monkeypatch.setitem(sys.modules, "celery.app", types.ModuleType("celery.app"))
    monkeypatch.setitem(sys.modules, "celery.app.utils", utils)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert _celery_agent.load_app("proj.celery:app") == "the app"
    assert found[0][0] == "proj.celery:app" and found[0][1][0] == str(tmp_path)


def test_the_agent_runs_on_old_pythons_too():
    """It runs in app images with any Python 3 from 3.6: none of what came later."""
    tree = ast.parse(_celery_agent.__loader__.get_source(_celery_agent.__name__))
    later = [type(node).__name__ for node in ast.walk(tree)
             if isinstance(node, (ast.NamedExpr, ast.Match))
             or (isinstance(node, ast.arguments) and node.posonlyargs)
             or (isinstance(node, ast.ImportFrom) and node.module == "__future__")]
    assert later == []
