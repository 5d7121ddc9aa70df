# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to the collection: this file may change without notice.
#
# Celery's remote control, reached from inside an app container (the host
# needs no Celery), in two ways behind one interface:
#
# - AgentControl: one long-lived `docker exec -i <container> python3 -c <agent>`
#   per module call (the agent is _celery_agent.py). It imports Celery and the
#   app once and keeps one broker connection, so a poll costs one broker round
#   trip instead of a `celery` process that boots the whole app.
# - CliControl: the fallback when no agent can start (no Python found in the
#   image, say): one `celery -A app inspect|control ... --json` per call, run
#   with the Docker SDK's exec.
#
# Both answer in the shapes `celery ... --json` prints, so one set of pure
# parsers (unit-tested against replies captured from the demo worker) reads
# either. The broker is shared by both colors, so a call that changes a worker
# always names its destination node(s).

from __future__ import annotations

import inspect
import json
import os
import re
import select
import subprocess
import threading
import time

from ansible_collections.lowspec.bluegreen.plugins.module_utils import _celery_agent
from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import (
    BlueGreenError,
)

# name -> (celery subcommand, takes an argument)
# The argument is a queue name, or a number of pool processes for pool_*.
# Celery's remote `shutdown` is deliberately absent: a `restart: always`
# container comes straight back, and Docker's stop grace is what we want.
INSPECT_CALLS = ("ping", "active", "reserved", "active_queues", "stats", "conf")
CONTROL_CALLS = ("cancel_consumer", "add_consumer", "pool_shrink", "pool_grow")

# What billiard answers when pool_shrink finds no idle process to end.
POOL_BUSY = "All processes busy"
# The two settings that make a task whose worker process dies go back to the queue.
REDELIVERY_KEYS = ("task_acks_late", "task_reject_on_worker_lost")

# Seconds Celery waits for replies. With a destination it returns as soon as
# every named node answered, so this only bounds a silent node.
DEFAULT_REPLY_TIMEOUT = 2.0
# Seconds an agent gets to import Celery and the app (a Django app on a busy Pi: several).
AGENT_BOOT_TIMEOUT = 90.0
# Beyond Celery's own reply timeout, how long an agent may take to answer a request.
AGENT_MARGIN = 10.0

NO_REPLY = "no_reply"
APP_ERROR = "app"
NO_CELERY = "no_celery"
NO_PYTHON = "no_python"
OTHER_ERROR = "other"


class CeleryError(BlueGreenError):
    """Celery could not be reached, or answered something unusable; `kind` says which."""

    def __init__(self, msg, kind=OTHER_ERROR):
        super().__init__(msg)
        self.kind = kind


class CeleryReplyError(CeleryError):
    """A reply that is not the JSON we asked for."""


def node_name(hostname, prefix="celery"):
    """Celery's default node name in a container: `celery@<container hostname>`."""
    return "%s@%s" % (prefix, hostname)


def nodes_of_host(nodes, hostname):
    """The nodes whose name ends in `@<hostname>`: the ones living in that container."""
    suffix = "@%s" % hostname
    return sorted(node for node in nodes if node.endswith(suffix))


def python_candidates(celery_command):
    """Interpreters to try for the agent: the one `celery_command` runs, else python3, python."""
    first = os.path.basename(celery_command[0]) if celery_command else ""
    if first.startswith("python"):
        return [celery_command[0]]
    return ["python3", "python"]


# ---------------------------------------------------------------------------
# The argv of one celery CLI call (the fallback transport)
# ---------------------------------------------------------------------------

def celery_argv(celery_command, app, call, destinations=None, argument=None, timeout=DEFAULT_REPLY_TIMEOUT):
    """argv (run inside the container) of one call, addressed to `destinations` (None: every node, ping only)."""
    if call not in INSPECT_CALLS + CONTROL_CALLS:
        raise ValueError("unknown celery call %r" % (call,))
    if not destinations and call != "ping":
        raise ValueError("celery %s needs at least one destination node" % call)
    argv = list(celery_command) + ["-A", app, "control" if call in CONTROL_CALLS else "inspect", call]
    if call in CONTROL_CALLS:
        if call.startswith("pool_"):
            if isinstance(argument, bool) or not isinstance(argument, int) or argument < 1:
                raise ValueError("celery %s needs a positive number of processes, got %r" % (call, argument))
            argument = str(argument)
        if not argument:
            raise ValueError("celery %s needs a queue" % call)
        argv.append(argument)
    if destinations:
        argv += ["--destination", ",".join(destinations)]
    argv += ["--timeout", _seconds(timeout), "--json"]
    return argv


def control_arguments(call, argument):
    """The `arguments` of a control call as Celery's broadcast takes them."""
    if call in ("cancel_consumer", "add_consumer"):
        return {"queue": argument}
    if isinstance(argument, bool) or not isinstance(argument, int) or argument < 1:
        raise ValueError("celery %s needs a positive number of processes, got %r" % (call, argument))
    return {"n": argument}


def _seconds(value):
    text = "%.2f" % float(value)
    return text.rstrip("0").rstrip(".") if "." in text else text


# ---------------------------------------------------------------------------
# Replies (the same shapes from the agent and from the CLI)
# ---------------------------------------------------------------------------

def parse_reply(reply):
    """{node: reply} from `--json` output (text) or an agent's reply (already parsed).

    `inspect` prints one object keyed by node; `control` prints a list of such
    objects (one per reply). Both end up as one dict.
    """
    data = reply
    if isinstance(reply, str):
        text = reply.strip()
        if not text:
            return {}
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CeleryReplyError("celery printed no JSON reply: %s" % _shorten(text)) from exc
    if data is None:
        return {}
    if isinstance(data, dict):
        return data
    if isinstance(data, list):
        merged = {}
        for item in data:
            if not isinstance(item, dict):
                raise CeleryReplyError("unexpected celery reply element: %s" % _shorten(json.dumps(item)))
            merged.update(item)
        return merged
    raise CeleryReplyError("unexpected celery reply: %s" % _shorten(json.dumps(data)))


def parse_ping(reply):
    """Sorted node names that answered `pong`."""
    return sorted(node for node, answer in parse_reply(reply).items()
                  if isinstance(answer, dict) and answer.get("ok") == "pong")


def parse_queues(reply):
    """{node: [queue names]} from `inspect active_queues`."""
    queues = {}
    for node, answer in parse_reply(reply).items():
        queues[node] = [q.get("name") for q in (answer or []) if isinstance(q, dict) and q.get("name")]
    return queues


def parse_pool_sizes(reply):
    """{node: number of pool processes alive} from `inspect stats` (prefork pools only).

    `max-concurrency` keeps the configured size after a pool_shrink; the
    `processes` list is what really runs.
    """
    sizes = {}
    for node, answer in parse_reply(reply).items():
        pool = answer.get("pool") if isinstance(answer, dict) else None
        processes = pool.get("processes") if isinstance(pool, dict) else None
        if not isinstance(processes, list):
            raise CeleryReplyError(
                "%s reports no prefork pool processes (pool: %s); pool_shrink and pool_grow need the prefork pool"
                % (node, _shorten(json.dumps(pool)))
            )
        sizes[node] = len(processes)
    return sizes


def parse_redelivery(reply):
    """{node: True when the worker's configuration sets both task_acks_late and task_reject_on_worker_lost}.

    From `inspect conf`, which lists the settings that differ from Celery's
    defaults (both default to False). Only those two keys are read: the reply
    also carries the broker URL, so no part of it goes into a message.
    """
    if isinstance(reply, str):
        try:
            reply = json.loads(reply)
        except ValueError:
            raise CeleryReplyError("celery inspect conf answered something that is not JSON") from None
    if not isinstance(reply, dict):
        raise CeleryReplyError("celery inspect conf answered something that is not a JSON object")
    return {node: isinstance(conf, dict) and all(conf.get(key) is True for key in REDELIVERY_KEYS)
            for node, conf in reply.items()}


def parse_tasks(reply):
    """{node: [{id, name, time_start}]} from `inspect active` or `inspect reserved`."""
    tasks = {}
    for node, answer in parse_reply(reply).items():
        tasks[node] = [
            {
                "id": task.get("id", ""),
                "name": task.get("name") or task.get("type") or "",
                "time_start": task.get("time_start"),
            }
            for task in (answer or []) if isinstance(task, dict)
        ]
    return tasks


def parse_control(reply):
    """{node: (ok, message)} from a `control` call."""
    answers = {}
    for node, answer in parse_reply(reply).items():
        answer = answer if isinstance(answer, dict) else {"error": str(answer)}
        if "ok" in answer:
            answers[node] = (True, str(answer["ok"]))
        else:
            answers[node] = (False, str(answer.get("error", answer)))
    return answers


def orphaned(unacked, held_ids, before):
    """The unacknowledged messages that no live worker holds, delivered before `before` (epoch seconds).

    A message stays in the Redis transport's `unacked` record from its delivery
    to a consumer until that consumer acknowledges it or gives it back (at a
    clean shutdown). One whose consumer is gone (killed at the end of its
    grace period, or a consumer that lost its broker connection and forgot what
    it had reserved) is given back by the broker only after the visibility
    timeout, an hour by default. Delivered after `before` means a consumer
    that was alive then took it: it is not an orphan of the workers stopped.
    """
    found = []
    for entry in unacked:
        delivered = entry.get("delivered_at")
        if entry.get("id") in held_ids:
            continue
        if delivered is None or float(delivered) >= before:
            continue
        found.append(entry)
    return sorted(found, key=lambda e: (e.get("delivered_at") or 0, e.get("tag") or ""))


def reclaim_orphans(control, held_ids, before, warn):
    """Put back in its queue, once, every message of a Redis broker that is an orphan (see orphaned()).

    `held_ids`: tasks known to be held by a frozen worker (never orphans). Any
    worker that still listens on the broker's control channel is asked what it
    holds first. Returns (checked, restored): `checked` is False when the broker
    could not be read (not Redis) or a live worker did not say what it holds;
    `restored` lists {id, task, queue, delivered_at} of the messages put back.
    Each goes back in one transaction that reads and removes it together, so
    that it is restored once even if the broker's own restore runs at the same
    time.
    """
    record = control.unacked()
    if record is None:
        return False, []
    held = set(held_ids)
    if record["subscribers"]:
        # Some worker still listens on this broker: what it holds is not an orphan.
        live = parse_ping(control.ping(timeout=1.0))
        for method in ("reserved", "active", "scheduled") if live else ():
            answers = parse_tasks(control.inspect(method, live, timeout=DEFAULT_REPLY_TIMEOUT))
            if any(node not in answers for node in live):
                warn("the broker's unacknowledged messages were left as they are: live worker(s) %s did not say "
                     "what they hold" % ", ".join(n for n in live if n not in answers))
                return True, []
            held.update(t["id"] for tasks in answers.values() for t in tasks)
    orphans = orphaned(record["entries"], held, before)
    restored = control.restore([o["tag"] for o in orphans]) if orphans else []
    back = [dict(id=o["id"], task=o["task"], queue=o["routing_key"], delivered_at=o["delivered_at"])
            for o in orphans if o["tag"] in restored]
    if back:
        warn("%d message(s) were delivered to a worker that is gone and never acknowledged; put back in their "
             "queue: %s" % (len(back), ", ".join("%s[%s]" % (o["task"], o["id"]) for o in back)))
    return True, back


# ---------------------------------------------------------------------------
# Failures of the CLI transport
# ---------------------------------------------------------------------------

_NO_MODULE_RE = re.compile(r"No module named \S+")


def classify_failure(rc, stdout, stderr):
    """(kind, Celery's own message) of a failed celery command.

    kind is NO_REPLY (no node answered: not a worker, or not this node),
    APP_ERROR (`-A` could not be loaded), NO_CELERY (no celery in the
    container, or the command is not found) or OTHER_ERROR.
    """
    text = "\n".join(part for part in (stderr or "", stdout or "") if part.strip())
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "No nodes replied within time constraint" in text:
        return NO_REPLY, "Error: No nodes replied within time constraint"
    if "Unable to load celery application" in text or "Invalid value for '-A'" in text:
        return APP_ERROR, " ".join(_from_error_line(lines))
    match = _NO_MODULE_RE.search(text)
    if match:
        line = next(line for line in lines if match.group(0) in line)
        return NO_CELERY, line
    if "executable file not found" in text or rc in (126, 127):
        return NO_CELERY, lines[-1] if lines else "exit code %s" % rc
    error_lines = _from_error_line(lines)
    return OTHER_ERROR, " ".join(error_lines) if error_lines else "exit code %s" % rc


def _from_error_line(lines):
    """Lines from the first one starting with `Error` (click's message), else the last line."""
    for index, line in enumerate(lines):
        if line.startswith("Error"):
            return lines[index:]
    return lines[-1:]


def _shorten(text, limit=300):
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------------------
# The two transports
# ---------------------------------------------------------------------------

class CeleryControl:
    """What the modules ask of Celery. Every reply is {node: answer}, as `celery --json` prints."""

    transport = None

    def __init__(self, container):
        self.container = container
        self.calls = 0

    def ping(self, destination=None, timeout=DEFAULT_REPLY_TIMEOUT):
        raise NotImplementedError

    def inspect(self, method, destination, timeout=DEFAULT_REPLY_TIMEOUT, keys=None):
        raise NotImplementedError

    def control(self, method, argument, destination, timeout=DEFAULT_REPLY_TIMEOUT):
        raise NotImplementedError

    def unacked(self):
        """The broker's unacknowledged messages, or None when this transport cannot read them."""
        return None

    def restore(self, tags):
        return []

    def queue_length(self, queue):
        return None

    def fetching(self, addresses):
        """The broker's connections from `addresses` waiting in a fetch, or None when this transport cannot list them."""
        return None

    def close(self):
        """End the transport; {cpu_s, wall_s, requests} of an agent, {} otherwise."""
        return {}


def agent_source():
    """The agent program's source, sent to the container on the command line.

    Read through the module's loader, so it works from a file as from the
    AnsiballZ payload a module runs in.
    """
    try:
        return inspect.getsource(_celery_agent)
    except (OSError, TypeError) as exc:
        raise CeleryError("the Celery agent's source cannot be read from the collection: %s" % exc) from exc


class AgentControl(CeleryControl):
    """The agent in one running container, over `docker exec -i` (one process for the whole module call)."""

    transport = "agent"

    def __init__(self, docker_bin, container, python, app, environ=None, boot_timeout=AGENT_BOOT_TIMEOUT):
        super().__init__(container)
        self._buffer = b""
        self._next_id = 0
        self._stderr = []
        argv = [docker_bin, "exec", "-i", container["id"], python, "-u", "-c", agent_source(), app]
        env = dict(os.environ)
        env.update(environ or {})
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,  # pylint: disable=consider-using-with
                                     stderr=subprocess.PIPE, env=env)
        self._stderr_thread = threading.Thread(target=self._drain_stderr)
        self._stderr_thread.daemon = True
        self._stderr_thread.start()
        hello = self._read_line(boot_timeout)
        if hello is None:
            self._end()
            rc = self.proc.returncode
            tail = " ".join(self._stderr[-3:]).strip()
            kind = NO_PYTHON if ("executable file not found" in tail or rc in (126, 127)) else OTHER_ERROR
            if self.proc.returncode is None and not tail:
                tail = "no answer within %d s" % boot_timeout
            raise CeleryError("the Celery agent did not start in %s with %s: %s"
                              % (container["name"], python, tail or "exit code %s" % rc), kind)
        if not hello.get("ready"):
            self._end()
            raise CeleryError(hello.get("message") or hello.get("error") or "the agent did not start",
                              hello.get("kind") or OTHER_ERROR)
        self.boot_s = hello.get("boot_s")
        self.versions = {"celery": hello.get("celery"), "kombu": hello.get("kombu")}
        self.broker_transport = hello.get("transport")

    def _drain_stderr(self):
        for raw in iter(self.proc.stderr.readline, b""):
            self._stderr.append(raw.decode("utf-8", "replace").rstrip())
            del self._stderr[:-50]

    def _read_line(self, timeout):
        """The next JSON line from the agent, or None on EOF or timeout."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _w, _x = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            return json.loads(line.decode("utf-8", "replace"))
        except ValueError:
            return {"ok": False, "error": "ValueError", "message": "the agent printed %r" % line[:200]}

    def request(self, op, timeout=DEFAULT_REPLY_TIMEOUT, **fields):
        self._next_id += 1
        self.calls += 1
        fields.update(op=op, id=self._next_id, timeout=timeout)
        try:
            self.proc.stdin.write((json.dumps(fields) + "\n").encode("utf-8"))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise CeleryError("the Celery agent in %s is gone (%s)"
                              % (self.container["name"], " ".join(self._stderr[-2:]) or "its container stopped?"))
        while True:
            reply = self._read_line(timeout + AGENT_MARGIN)
            if reply is None:
                raise CeleryError("the Celery agent in %s did not answer %s (%s)"
                                  % (self.container["name"], op, " ".join(self._stderr[-2:]) or "no output"))
            if reply.get("id") == self._next_id:
                break
        if not reply.get("ok"):
            raise CeleryError("celery %s %s in %s failed: %s" % (
                op, fields.get("method", ""), self.container["name"], reply.get("message") or reply.get("error")))
        return reply.get("reply")

    def ping(self, destination=None, timeout=DEFAULT_REPLY_TIMEOUT):
        return parse_reply(self.request("ping", timeout=timeout, destination=destination))

    def inspect(self, method, destination, timeout=DEFAULT_REPLY_TIMEOUT, keys=None):
        return parse_reply(self.request("inspect", timeout=timeout, method=method, destination=destination,
                                        keys=keys))

    def control(self, method, argument, destination, timeout=DEFAULT_REPLY_TIMEOUT):
        return parse_reply(self.request("control", timeout=timeout, method=method, destination=destination,
                                        arguments=control_arguments(method, argument)))

    def unacked(self):
        if self.broker_transport != "redis":
            return None
        return self.request("unacked", timeout=5.0)

    def restore(self, tags):
        return self.request("restore", timeout=5.0, tags=list(tags)) if tags else []

    def queue_length(self, queue):
        return self.request("queue_length", timeout=5.0, queue=queue)

    def fetching(self, addresses):
        if self.broker_transport != "redis":
            return None
        return self.request("fetching", timeout=5.0, addresses=list(addresses))

    def close(self):
        stats = {}
        if self.proc.poll() is None:
            try:
                stats = self.request("exit", timeout=1.0) or {}
            except CeleryError:
                stats = {}
        self._end()
        stats["boot_s"] = self.boot_s
        stats.update(self.versions)
        return stats

    def _end(self):
        for stream in (self.proc.stdin,):
            try:
                stream.close()
            except OSError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr_thread.join(1)


class CliControl(CeleryControl):
    """The fallback: one `celery ... --json` process per call, through the SDK's exec, in one container."""

    transport = "cli"

    def __init__(self, engine, container, celery_command, app):
        super().__init__(container)
        self.engine = engine
        self.celery_command = list(celery_command)
        self.app = app

    def _run(self, call, destination, argument=None, timeout=DEFAULT_REPLY_TIMEOUT):
        self.calls += 1
        argv = celery_argv(self.celery_command, self.app, call, destination, argument=argument, timeout=timeout)
        rc, out, err = self.engine.exec_run(self.container["id"], argv)
        if rc != 0:
            kind, message = classify_failure(rc, out, err)
            if kind == NO_REPLY:
                return {}
            raise CeleryError("celery %s in %s (service %s) failed: %s"
                              % (call, self.container["name"], self.container["service"], message), kind)
        return out

    def ping(self, destination=None, timeout=DEFAULT_REPLY_TIMEOUT):
        return parse_reply(self._run("ping", destination, timeout=timeout))

    def inspect(self, method, destination, timeout=DEFAULT_REPLY_TIMEOUT, keys=None):
        reply = parse_reply(self._run(method, destination, timeout=timeout))
        if keys is not None:
            reply = {node: {k: (conf or {}).get(k) for k in keys} for node, conf in reply.items()}
        return reply

    def control(self, method, argument, destination, timeout=DEFAULT_REPLY_TIMEOUT):
        return parse_reply(self._run(method, destination, argument=argument, timeout=timeout))


def open_control(engine, docker_bin, containers, celery_command, app, environ=None, note=None):
    """The first transport that works, trying an agent then the CLI in each container in turn.

    `note(message)` is told when a fallback is taken. An app that Celery
    cannot load fails at once (another container would not load it either).
    """
    problems = []
    for container in containers:
        for python in python_candidates(celery_command):
            try:
                return AgentControl(docker_bin, container, python, app, environ=environ)
            except CeleryError as exc:
                if exc.kind == APP_ERROR:
                    raise CeleryError("celery_app=%s: Celery cannot load it in %s (service %s): %s"
                                      % (app, container["name"], container["service"], exc), APP_ERROR) from exc
                problems.append("%s: %s" % (container["name"], exc))
        cli = CliControl(engine, container, celery_command, app)
        try:
            cli.ping(destination=["lowspec-bluegreen-probe@nowhere"], timeout=0.5)
        except CeleryError as exc:
            if exc.kind == APP_ERROR:
                raise CeleryError("celery_app=%s: Celery cannot load it in %s (service %s): %s"
                                  % (app, container["name"], container["service"], exc), APP_ERROR) from exc
            problems.append("%s: %s" % (container["name"], exc))
            continue
        if note:
            note("the Celery agent could not start (%s); using one celery command per call in %s instead"
                 % ("; ".join(problems), container["name"]))
        return cli
    raise CeleryError("Celery cannot be reached from %s: %s"
                      % (", ".join(c["name"] for c in containers) or "no running container",
                         "; ".join(problems) or "nothing to try"), NO_CELERY)
