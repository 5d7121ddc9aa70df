# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fakes at the interfaces the modules use, shared by the module tests.

- Clock: the wall and monotonic clocks, moving only when the code under test sleeps.
- FakeEngine: module_utils._docker.Engine over an in-memory Docker host. It keeps
  `docker inspect`-shaped dicts and answers through the real summarize_container(),
  so the modules see exactly the summaries the real Engine gives; its `actions`
  read as the real Engine's do.
- CeleryWorld / FakeControl: Celery's remote control (module_utils._celery.CeleryControl)
  over a model of the workers (nodes, consumed queues, pool processes, held tasks) and of
  the Redis broker's unacknowledged messages. Replies have the shapes `celery --json`
  prints (templates from the captured fixtures).
- FakeGauge: module_utils._pressure.Gauge with scripted outcomes.

Every change the fakes see is appended to `world.log` as a tuple, in order, so that a
test can assert what happened before what across Docker and Celery.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from pathlib import Path

from ansible_collections.lowspec.bluegreen.plugins.module_utils._celery import (
    NO_CELERY,
    CeleryControl,
    CeleryError,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import BlueGreenError
from ansible_collections.lowspec.bluegreen.plugins.module_utils._docker import (
    LABEL_CONFIG_HASH,
    LABEL_ONEOFF,
    LABEL_PROJECT,
    LABEL_RELEASE,
    LABEL_SERVICE,
    summarize_container,
)

FIXTURES = Path(__file__).resolve().parents[1] / "unit" / "plugins" / "module_utils" / "fixtures"
DOCKER_BIN = "/usr/bin/docker"


def fixture_text(name):
    return (FIXTURES / name).read_text()


def captured_celery(name):
    """stdout of one captured `celery ... --json` call, parsed."""
    return json.loads(json.loads(fixture_text("celery-%s.json" % name))["stdout"])


# ---------------------------------------------------------------------------
# Time
# ---------------------------------------------------------------------------

class Clock:
    """time(), monotonic() and sleep() of one test. Only sleep() moves them."""

    MAX_SLEEPS = 200000  # a loop that never ends under test fails instead of hanging

    def __init__(self, start=1800000000.0):
        self.now = float(start)
        self.sleeps = 0

    def time(self):
        return self.now

    def monotonic(self):
        return self.now - 1700000000.0

    def sleep(self, seconds):
        assert seconds >= 0, "negative sleep %r" % seconds
        self.sleeps += 1
        if self.sleeps > self.MAX_SLEEPS:
            raise AssertionError("runaway wait loop under test")
        self.now += seconds

    def advance(self, seconds):
        self.now += seconds


# ---------------------------------------------------------------------------
# Docker
# ---------------------------------------------------------------------------

def container_id(project, service, index=1, generation=0):
    return hashlib.sha256(("%s/%s/%d/%d" % (project, service, index, generation)).encode()).hexdigest()


def inspected(project, service, index=1, state="running", health=None, release=None, config_hash="",
              image="shop:v1", image_id="sha256:" + "1" * 64, restart_policy="unless-stopped",
              created="2026-11-29T16:41:40.000000000Z", oneoff=False, generation=0):
    """A `docker inspect` object of one compose container, as the daemon returns it."""
    cid = container_id(project, service, index, generation)
    labels = {LABEL_PROJECT: project, LABEL_SERVICE: service, LABEL_ONEOFF: "True" if oneoff else "False",
              LABEL_CONFIG_HASH: config_hash, "com.docker.compose.container-number": str(index)}
    if release is not None:
        labels[LABEL_RELEASE] = release
    item = {
        "Id": cid, "Name": "/%s-%s-%d" % (project, service, index), "Created": created, "Image": image_id,
        "RestartCount": 0,
        "State": {"Status": "running", "Running": True, "Paused": False, "Restarting": False, "ExitCode": 0,
                  "StartedAt": created, "FinishedAt": "0001-01-01T00:00:00Z"},
        "Config": {"Labels": labels, "Image": image, "Hostname": cid[:12]},
        "HostConfig": {"RestartPolicy": {"Name": restart_policy, "MaximumRetryCount": 0}},
        "NetworkSettings": {"Networks": {"%s_default" % project.rsplit("-", 1)[0]: {
            "IPAddress": "172.22.0.%d" % (int(cid[:4], 16) % 250 + 2), "GlobalIPv6Address": ""}}},
    }
    if health:
        item["State"]["Health"] = {"Status": health}
    set_state(item, state)
    return item


def set_state(item, state, exit_code=None):
    """Docker's State of a container that is running, paused, exited, created, restarting or dead."""
    st = item["State"]
    st.update(Status=state, Running=state in ("running", "paused", "restarting"), Paused=state == "paused",
              Restarting=state == "restarting", Dead=state == "dead")
    if exit_code is not None:
        st["ExitCode"] = exit_code


class FakeEngine:
    """module_utils._docker.Engine over `world.items` (Id -> inspect dict)."""

    def __init__(self, world):
        self.world = world
        self.actions = []

    # -- reading -------------------------------------------------------------------

    def info(self):
        return copy.deepcopy(self.world.info)

    def architecture(self):
        return self.world.arch

    def _tick(self):
        """A `docker stop` running in the background ends after `world.stop_polls` looks at the host."""
        for cid, left in list(self.world.stopping.items()):
            if left <= 0:
                self.world.exit(cid)
            else:
                self.world.stopping[cid] = left - 1

    def containers(self, project, services=None):
        self._tick()
        found = [summarize_container(copy.deepcopy(item)) for item in self.world.items.values()
                 if item["Config"]["Labels"].get(LABEL_PROJECT) == project]
        found = [c for c in found if not c["oneoff"] and (not services or c["service"] in services)]
        return sorted(found, key=lambda c: (c["service"], c["name"]))

    def inspect(self, ids):
        self._tick()
        return [summarize_container(copy.deepcopy(self.world.items[i])) for i in ids if i in self.world.items]

    def image(self, reference):
        return copy.deepcopy(self.world.images.get(reference))

    def logs(self, ident, tail=30):
        return list(self.world.logs.get(ident, ["booting", "failed to boot"]))[-int(tail):]

    def labelled(self, kind, project):
        return sorted(self.world.labelled.get((kind, project), []))

    def exec_run(self, ident, argv):
        raise AssertionError("the manager ran a command in a container itself: %r" % (argv,))

    # -- changing --------------------------------------------------------------------

    def _record(self, op, ids, action):
        hook = self.world.before.get(op)
        if hook is not None:
            hook(ids)
        self.actions.append(action)
        self.world.log.append(("docker", op, tuple(self.world.service_of(i) for i in ids)))
        fault = self.world.faults.get(op)
        if fault is not None and any(self.world.service_of(i) in fault[0] for i in ids):
            raise fault[1]

    def keep_stopped(self, containers):
        for c in containers:
            if c.get("restart_policy") == "always":
                self._record("update", [c["id"]], "update --restart unless-stopped %s" % c["id"])
                self.world.items[c["id"]]["HostConfig"]["RestartPolicy"]["Name"] = "unless-stopped"

    def stop(self, containers, timeout):
        if not containers:
            return
        self.keep_stopped(containers)
        ids = [c["id"] for c in containers]
        self._record("stop", ids, "stop --time %d %s" % (timeout, " ".join(ids)))
        for cid in ids:
            self.world.exit(cid)

    def stop_in_background(self, docker_bin, containers, timeout):
        assert docker_bin == DOCKER_BIN
        if not containers:
            return
        self.keep_stopped(containers)
        ids = [c["id"] for c in containers]
        self._record("stop_in_background", ids,
                     "stop --time %d %s (in the background)" % (timeout, " ".join(ids)))
        self.world.stop_timeouts.extend((self.world.service_of(i), timeout) for i in ids)
        for cid in ids:
            self.world.stopping[cid] = self.world.stop_polls

    def pause(self, containers):
        if not containers:
            return
        self.keep_stopped(containers)
        ids = [c["id"] for c in containers]
        self._record("pause", ids, "pause %s" % " ".join(ids))
        for cid in ids:
            set_state(self.world.items[cid], "paused")

    def unpause(self, ids):
        if ids:
            self._record("unpause", ids, "unpause %s" % " ".join(ids))
            for cid in ids:
                set_state(self.world.items[cid], "running")

    def start(self, ids):
        if ids:
            self._record("start", ids, "start %s" % " ".join(ids))
            for cid in ids:
                self.world.start(cid)

    def kill(self, ids, signal="SIGKILL"):
        if ids:
            self._record("kill", ids, "kill --signal %s %s" % (signal, " ".join(ids)))
            for cid in ids:
                self.world.exit(cid, 137)

    def remove(self, ids, volumes=False):
        if ids:
            self._record("rm", ids, "rm %s%s" % ("--volumes " if volumes else "", " ".join(ids)))
            for cid in ids:
                del self.world.items[cid]

    def remove_labelled(self, kind, names):
        for name in names:
            self._record(kind + " rm", [], "%s rm %s" % (kind, name))
            for key, listed in self.world.labelled.items():
                if key[0] == kind and name in listed:
                    listed.remove(name)

    def wait_exited(self, containers, timeout, what):
        live = [c for c in self.inspect([c["id"] for c in containers]) if c["running"] or c["paused"]]
        if live:
            raise BlueGreenError("%s container(s) %s still running after docker stop"
                                 % (what, ", ".join(c["name"] for c in live)))


class DockerWorld:
    """The Docker host: containers, images, logs; shared by FakeEngine and the other fakes."""

    def __init__(self, items=(), images=None, info=None):
        self.items = dict((item["Id"], item) for item in copy.deepcopy(list(items)))
        self.images = dict(images or {})
        self.info = info if info is not None else {"Architecture": "x86_64", "DockerRootDir": "/var/lib/docker"}
        self.arch = "amd64"  # the daemon's own architecture, as `docker version` names it
        self.logs = {}
        self.labelled = {}
        self.log = []
        self.stopping = {}
        self.stop_polls = 1
        self.stop_timeouts = []
        self.faults = {}  # op -> (services, exception): raised when the op touches one of them
        self.before = {}  # op -> callback(ids), called just before the op
        self.engine = FakeEngine(self)

    def add(self, item):
        self.items[item["Id"]] = item
        return item["Id"]

    def service_of(self, cid):
        item = self.items.get(cid)
        return item["Config"]["Labels"][LABEL_SERVICE] if item else cid[:12]

    def id_of(self, service, project=None):
        (cid,) = [i for i, item in self.items.items() if item["Config"]["Labels"][LABEL_SERVICE] == service
                  and (project is None or item["Config"]["Labels"][LABEL_PROJECT] == project)]
        return cid

    def state(self, cid):
        return summarize_container(self.items[cid])["state"]

    def is_running(self, cid):
        item = self.items.get(cid)
        return bool(item) and summarize_container(item)["running"]

    def exit(self, cid, code=0):
        self.stopping.pop(cid, None)
        if cid in self.items:
            set_state(self.items[cid], "exited", exit_code=code)

    def start(self, cid):
        set_state(self.items[cid], "running")
        # As Docker does: the start time is now (the modules tell a container started again from one still
        # shutting down by it).
        now = self.clock.time() if getattr(self, "clock", None) else time.time()
        self.items[cid]["State"]["StartedAt"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".999Z"

    def finish_stops(self):
        """Every `docker stop` left running in the background has ended."""
        for cid in list(self.stopping):
            self.exit(cid)

    def changes(self, kinds=("docker", "celery-change")):
        return [entry for entry in self.log if entry[0] in kinds]


# ---------------------------------------------------------------------------
# Celery
# ---------------------------------------------------------------------------

ACTIVE_TASK = list(captured_celery("active").values())[0][0]
QUEUE_TEMPLATE = list(captured_celery("active-queues").values())[0][0]
STATS_TEMPLATE = list(captured_celery("stats").values())[0]
DEMO_CONF = list(captured_celery("conf").values())[0]
BUSY_REPLY = list(captured_celery("pool-shrink-busy")[0].values())[0]


def task(task_id, name="tasks.work", reserved_polls=0, active_polls=1):
    """A task a worker holds: shown by `inspect reserved` for `reserved_polls` polls, then by `inspect active`."""
    return {"id": task_id, "name": name, "reserved": reserved_polls, "active": active_polls}


class Worker:
    """One Celery worker process (node) living in a container."""

    def __init__(self, world, cid, queues=("celery",), pool=2, nodes=None):
        item = world.items[cid]
        self.cid = cid
        self.hostname = item["Config"]["Hostname"]
        self.nodes = list(nodes or ["celery@" + self.hostname])
        self.configured_queues = list(queues)
        self.queues = list(queues)
        self.full_pool = pool
        self.pool = pool
        self.tasks = []
        self.silent = {}  # inspect method -> number of replies that leave this worker out
        self.boot_pings = 0  # pings it leaves unanswered now
        self.boot_pings_after_start = 0  # ... and after each (re)start
        self.busy_shrinks = 0  # pool_shrink answers "busy" this often while it consumes a queue
        self.stale_polls = 0  # `inspect stats` still lists an ended process this often after a shrink
        self.stale = 0
        self.conf = dict(DEMO_CONF)
        self.started = 0

    def restart(self, boot_pings=0):
        self.queues = list(self.configured_queues)
        self.pool = self.full_pool
        self.stale = 0
        self.tasks = []
        self.boot_pings = boot_pings
        self.started += 1


class Broker:
    """The Redis broker's record of unacknowledged messages, and its remote-control subscribers."""

    def __init__(self, world, redis=True):
        self.world = world
        self.redis = redis
        self.entries = []  # {tag, id, task, exchange, routing_key, delivered_at}
        self.after_stop = []  # delivered (to a live consumer) between the stop and the check
        self.requeued = []  # tags put back into their queue, in order
        self.vanish = set()  # tags another consumer acks between the read and the restore
        self.subscribers = None  # None: every worker container up (running or frozen) + the foreign nodes
        self.fetch_polls = {}  # container id -> listings that still show its fetch waiting after its cancel
        self.visible = True  # False: the broker sees the workers through NAT (no connection from their address)

    def unacked_entry(self, tag, task_id, delivered_at, name="tasks.work", queue="celery"):
        entry = {"tag": tag, "id": task_id, "task": name, "exchange": "", "routing_key": queue,
                 "delivered_at": delivered_at}
        self.entries.append(entry)
        return entry


class CeleryWorld(DockerWorld):
    """A Docker host whose worker containers run Celery, with one shared broker."""

    def __init__(self, items=(), **kwargs):
        super().__init__(items, **kwargs)
        self.workers = {}  # container id -> Worker
        self.foreign = {}  # node -> {"reserved": [ids], "active": [ids], "scheduled": [ids]}: other colors
        self.broker = Broker(self)
        self.app_error = None  # message of a Celery app that cannot be loaded
        self.celery_faults = {}  # inspect method -> exception it raises
        self.control_opens = []  # the candidate containers of each open, by service
        self.controls = []
        self.clock = None

    def worker(self, cid, **kwargs):
        self.workers[cid] = Worker(self, cid, **kwargs)
        return self.workers[cid]

    def start(self, cid):
        super().start(cid)
        if cid in self.workers:
            self.workers[cid].restart(self.workers[cid].boot_pings_after_start)

    def live_workers(self):
        """Workers whose container runs (a frozen one answers nothing)."""
        return [w for cid, w in sorted(self.workers.items()) if self.is_running(cid)]

    def subscribers(self):
        if self.broker.subscribers is not None:
            return self.broker.subscribers
        up = [cid for cid in self.workers if cid in self.items and summarize_container(self.items[cid])["state"]
              in ("running", "paused")]
        return len(up) + len(self.foreign)

    def open_control(self, candidates):
        """The control_factory of celery_quiesce: what module_utils._celery.open_control does, in short."""
        self.control_opens.append([c["service"] for c in candidates])
        if self.app_error:
            raise CeleryError(self.app_error, "app")
        running = [c for c in candidates if self.is_running(c["id"])]
        if not running:
            raise CeleryError("Celery cannot be reached from %s: nothing to try"
                              % (", ".join(c["name"] for c in candidates) or "no running container"), NO_CELERY)
        control = FakeControl(self, running[0])
        self.controls.append(control)
        return control


class FakeControl(CeleryControl):
    """An agent in `container`: answers for the nodes of CeleryWorld while its container runs."""

    transport = "agent"

    def __init__(self, world, container):
        super().__init__(container)
        self.world = world
        self.closed = False

    @property
    def broker_transport(self):
        return "redis" if self.world.broker.redis else "amqp"

    def _call(self, *entry):
        if self.closed:
            raise AssertionError("the control was used after close()")
        if not self.world.is_running(self.container["id"]):
            raise CeleryError("the Celery agent in %s is gone (its container stopped?)" % self.container["name"])
        self.calls += 1
        self.world.log.append(entry)

    def _nodes(self, destination):
        assert destination, "a call that is not a ping names its destination"
        found = []
        for w in self.world.live_workers():
            found.extend((node, w) for node in w.nodes if node in destination)
        return found

    # -- inspect -----------------------------------------------------------------------------

    def ping(self, destination=None, timeout=2.0):
        self._call("celery", "ping", tuple(destination) if destination else None)
        reply = {}
        for w in self.world.live_workers():
            if w.boot_pings:
                w.boot_pings -= 1
                continue
            for node in w.nodes:
                if destination is None or node in destination:
                    reply[node] = {"ok": "pong"}
        if destination is None:
            reply.update((node, {"ok": "pong"}) for node in self.world.foreign)
        return reply

    def inspect(self, method, destination, timeout=2.0, keys=None):
        self._call("celery", "inspect", method, tuple(destination))
        if method in self.world.celery_faults:
            raise self.world.celery_faults[method]
        reply = {}
        for node, held in self.world.foreign.items():
            if node in destination and method in ("reserved", "active", "scheduled") \
                    and method not in held.get("silent", ()):
                reply[node] = [dict(ACTIVE_TASK, id=tid, hostname=node) for tid in held.get(method, [])]
        for node, w in self._nodes(destination):
            if w.silent.get(method):
                w.silent[method] -= 1
                continue
            reply[node] = self._answer(method, node, w, keys)
        return reply

    def _answer(self, method, node, w, keys):
        if method == "active_queues":
            return [dict(QUEUE_TEMPLATE, name=q) for q in w.queues] if node == w.nodes[0] else []
        if method in ("reserved", "active"):
            if node != w.nodes[0]:
                return []
            shown = []
            for t in w.tasks:
                phase = "reserved" if t["reserved"] > 0 else ("active" if t["active"] > 0 else None)
                if phase == method:
                    t[method] -= 1
                    shown.append(dict(ACTIVE_TASK, id=t["id"], name=t["name"], hostname=node,
                                      time_start=None if method == "reserved" else ACTIVE_TASK["time_start"]))
            w.tasks = [t for t in w.tasks if t["reserved"] > 0 or t["active"] > 0]
            return shown
        if method == "scheduled":
            return []
        if method == "stats":
            listed = w.pool + (1 if w.stale else 0)
            if w.stale:
                w.stale -= 1
            pool = dict(STATS_TEMPLATE["pool"], processes=list(range(100, 100 + listed)))
            return dict(copy.deepcopy(STATS_TEMPLATE), pool=pool)
        if method == "conf":
            # As the agent does: only the keys asked for leave the container.
            return dict((k, w.conf.get(k)) for k in keys or [])
        raise AssertionError("unexpected inspect %s" % method)

    # -- control ----------------------------------------------------------------------------

    def control(self, method, argument, destination, timeout=2.0):
        self._call("celery-change", method, argument, tuple(destination))
        return dict((node, self._change(method, argument, w)) for node, w in self._nodes(destination))

    def _change(self, method, argument, w):
        if method == "cancel_consumer":
            if argument in w.queues:
                w.queues.remove(argument)
            return {"ok": "no longer consuming from %s" % argument}
        if method == "add_consumer":
            if argument not in w.queues:
                w.queues.append(argument)
                return {"ok": "add consumer %s" % argument}
            return {"ok": "already consuming from %s" % argument}
        if method == "pool_shrink":
            if w.busy_shrinks and w.queues:
                w.busy_shrinks -= 1
                return dict(BUSY_REPLY)
            w.pool -= argument
            w.stale = w.stale_polls
            return {"ok": "pool will shrink"}
        if method == "pool_grow":
            w.pool += argument
            return {"ok": "pool will grow"}
        raise AssertionError("unexpected control %s" % method)

    # -- the broker ---------------------------------------------------------------------------

    def unacked(self):
        self._call("celery", "unacked")
        broker = self.world.broker
        if not broker.redis:
            return None
        for entry in broker.after_stop:
            broker.entries.append(dict(entry, delivered_at=self.world.clock.time()))
        broker.after_stop = []
        return {"entries": copy.deepcopy(broker.entries), "subscribers": self.world.subscribers()}

    def fetching(self, addresses):
        """A consuming worker always waits in a fetch; a cancelled one until its last fetch returns."""
        self._call("celery", "fetching", tuple(addresses))
        broker = self.world.broker
        if not broker.redis:
            return None
        seen, blocked = 0, []
        for cid, w in sorted(self.world.workers.items()):
            mine = summarize_container(self.world.items[cid])["addresses"] if cid in self.world.items else []
            if not broker.visible or not self.world.is_running(cid) or not set(mine) & set(addresses):
                continue
            seen += 2  # its fetch connection and its remote-control one
            if w.queues or broker.fetch_polls.get(cid, 0) > 0:
                broker.fetch_polls[cid] = broker.fetch_polls.get(cid, 0) - 1
                blocked.append({"addr": "%s:42374" % mine[0], "cmd": "brpop"})
        return {"seen": seen, "blocked": blocked, "timeout": 1.0}

    def restore(self, tags):
        self._call("celery-change", "restore", tuple(tags))
        broker = self.world.broker
        found = []
        for tag in tags:
            if tag in broker.vanish:
                broker.entries = [e for e in broker.entries if e["tag"] != tag]
                continue
            if any(e["tag"] == tag for e in broker.entries):
                broker.entries = [e for e in broker.entries if e["tag"] != tag]
                broker.requeued.append(tag)
                found.append(tag)
        return found

    def close(self):
        self.closed = True
        return {"cpu_s": 0.25, "wall_s": 1.5, "requests": self.calls}


# ---------------------------------------------------------------------------
# Host pressure
# ---------------------------------------------------------------------------

class FakeGauge:
    """Gauge(module, path) whose wait() answers from `outcomes` (the last one repeats)."""

    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.calls = []

    def __call__(self, module, path=None):
        self.path = path
        return self

    def wait(self, limits, wait_timeout, interval=1.0, fail_on_throttled=False, until=None, **_kwargs):
        self.calls.append({"limits": dict(limits), "wait_timeout": wait_timeout, "until": until})
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        return dict({"settled": True, "waited": 0.0, "readings": {"cpu_some_avg10": 1.0}, "exceeded": [],
                     "impossible": []}, **outcome)


# ---------------------------------------------------------------------------
# Compose
# ---------------------------------------------------------------------------

COMPOSE_VALUED = ("--ansi", "--project-name", "--project-directory", "--file", "--env-file", "--profile")


def compose_parts(argv):
    """({option: [values]}, [subcommand, args...]) of a Compose argv (plugin or standalone)."""
    rest = list(argv[2:] if argv[1:2] == ["compose"] else argv[1:])
    options = {}
    while rest and rest[0] in COMPOSE_VALUED:
        options.setdefault(rest[0], []).append(rest[1])
        rest = rest[2:]
    return options, rest


class ComposeWorld(CeleryWorld):
    """A Docker host with Compose v2, whose projects are all made from one configuration (the captured demo).

    `run_command(argv, environ_update, cwd)` answers as the Compose CLI would, and records every call in `calls`.
    A container that `up` creates carries the config hash Compose computes for its service and release
    label (the label comes from the generated override file the module lists in --file).
    """

    def __init__(self, items=(), **kwargs):
        super().__init__(items, **kwargs)
        self.config = json.loads(fixture_text("compose-config-demo-5.6.1.json"))
        self.shared_config = {"services": {"redis": {"image": "redis:7-alpine"}}}
        self.images.setdefault("redis:7-alpine", {"Id": "sha256:" + "7" * 64, "Architecture": "amd64"})
        self.registry = {}  # reference -> image that a pull finds
        self.buildable = {}  # reference -> image that a build makes
        self.calls = []  # (argv, environ, cwd)
        self.failing = {}  # subcommand -> (rc, stdout, stderr)
        self.programs = {}  # argv[0] of a command other than docker compose (nginx) -> (rc, stdout, stderr)
        self.hashes = {}  # (service, release label) -> hash, where it must equal a captured label
        self.start_health = "healthy"  # health of a new container whose service has a healthcheck
        self.crash = {}  # service -> exit code: its containers exit right after `up`
        self.celery_services = ("worker",)
        self.new_worker = {}  # Worker options of the workers `up` creates (their pool, say)
        self.version_output = fixture_text("compose-version-5.6.1.txt")
        self.generation = 0

    # -- what Compose computes ---------------------------------------------------------------

    def config_of(self, project):
        return self.shared_config if project.endswith("-shared") else self.config

    def config_hash(self, project, service, release):
        if (service, release) in self.hashes:
            return self.hashes[(service, release)]
        spec = self.config_of(project)["services"][service]
        return hashlib.sha256(json.dumps([service, release, spec], sort_keys=True).encode()).hexdigest()

    @staticmethod
    def release_labels(files):
        """{service: release} of the override files the module generated."""
        labels = {}
        for name in files:
            if "bluegreen-labels-" in name:
                with open(name, encoding="utf-8") as handle:
                    for service, spec in json.load(handle)["services"].items():
                        labels[service] = spec["labels"].get(LABEL_RELEASE)
        return labels

    # -- the CLI -------------------------------------------------------------------------------

    def run_command(self, argv, environ_update=None, cwd=None, **_kwargs):
        self.calls.append((list(argv), dict(environ_update or {}), cwd))
        if argv and argv[0] in self.programs:
            self.log.append(("program", tuple(argv)))
            return self.programs[argv[0]]
        options, words = compose_parts(argv)
        if words == ["version"]:
            return 0, self.version_output, ""
        if words and words[0] in self.failing:
            return self.failing[words[0]]
        project = options["--project-name"][0]
        config = self.config_of(project)
        files = options.get("--file", [])
        if words[:3] == ["config", "--format", "json"]:
            return 0, json.dumps(dict(config, name=project)), ""
        if words[:2] == ["config", "--hash"]:
            labels = self.release_labels(files)
            lines = ["%s %s" % (name, self.config_hash(project, name, labels.get(name)))
                     for name in words[2].split(",")]
            return 0, "\n".join(lines) + "\n", ""
        named = [w for w in words[1:] if w in config["services"]] or sorted(config["services"])
        if words[0] == "up":
            self.log.append(("compose", "up", tuple(named)))
            self.up(project, named, self.release_labels(files))
        elif words[0] == "pull":
            self.log.append(("compose", "pull", tuple(named)))
            for name in named:
                ref = config["services"][name].get("image")
                if ref in self.registry:
                    self.images[ref] = self.registry[ref]
        elif words[0] == "build":
            self.log.append(("compose", "build", tuple(named)))
            for name in named:
                ref = config["services"][name].get("image") or "%s-%s" % (project, name)
                self.images[ref] = self.buildable.get(ref, {"Id": "sha256:built-" + name, "Architecture": "amd64"})
        elif words[0] == "down":
            self.log.append(("compose", "down", tuple(words[1:])))
            for cid in [c["id"] for c in self.engine.containers(project)]:
                del self.items[cid]
            for key in list(self.labelled):
                if key[1] == project:
                    self.labelled[key] = []
        else:
            raise AssertionError("unexpected compose command %r" % (argv,))
        return 0, "", ""

    def up(self, project, names, labels):
        config = self.config_of(project)
        for name in names:
            spec = config["services"][name]
            ref = spec.get("image") or "%s-%s" % (project, name)
            image = self.images.get(ref)
            assert image is not None, "compose up --pull never of a missing image %s" % ref
            wanted = self.config_hash(project, name, labels.get(name))
            mine = [cid for cid, item in self.items.items() if item["Config"]["Labels"][LABEL_PROJECT] == project
                    and item["Config"]["Labels"][LABEL_SERVICE] == name]
            for cid in mine:
                item = self.items[cid]
                if item["Config"]["Labels"][LABEL_CONFIG_HASH] != wanted or item["Image"] != image["Id"]:
                    del self.items[cid]  # recreated
                elif not summarize_container(item)["running"]:
                    self.start(cid)
            if not [cid for cid in mine if cid in self.items]:
                self.generation += 1
                item = inspected(project, name, health=self.start_health if "healthcheck" in spec else None,
                                 release=labels.get(name), config_hash=wanted, image=ref, image_id=image["Id"],
                                 generation=self.generation)
                cid = self.add(item)
                if name in self.crash:
                    set_state(item, "exited", exit_code=self.crash[name])
                if name in self.celery_services:
                    self.worker(cid, **self.new_worker)


class FakeHealth:
    """module_utils._http.HealthChecker: check() answers from `answers` (the last one repeats).

    A failing check takes its whole deadline, as the real poll does (on `clock`).
    """

    def __init__(self, answers, clock=None):
        self.answers = list(answers)
        self.clock = clock
        self.settings = []

    def __call__(self, settings):
        self.settings.append(settings)
        return self

    def check(self, watch=None, deadline=None):
        if watch is not None:
            watch()
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        healthy, status, error = answer
        if not healthy and self.clock is not None:
            self.clock.advance(deadline if deadline is not None else self.settings[-1]["deadline"])
        facts = {"url": self.settings[-1]["url"], "status": status, "attempts": 3, "successes": 3 if healthy else 0,
                 "elapsed": 0.5, "latency_ms": None, "json": None, "last_error": error}
        return healthy, facts, None if healthy else "%s is not healthy: %s" % (facts["url"], error)
