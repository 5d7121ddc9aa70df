# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to the collection: this file may change without notice.
#
# Celery's command line, as reached through `docker exec` into a worker
# container: one table of the remote-control calls we use and one argv
# builder for all of them, plus pure parsers of their `--json` replies and of
# their failures. Unit-tested against replies captured from the demo worker
# (tests/unit/plugins/module_utils/fixtures/celery-*.json).
#
# The broker is shared by both colors, so a broadcast would reach the other
# color's workers too: every call names its destination node(s).

from __future__ import annotations

import json
import re

from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import (
    BlueGreenError,
)

# name -> (celery subcommand, method, takes an argument, changes the worker)
# The argument is a queue name, or a number of pool processes for pool_*.
# Celery's remote `shutdown` is deliberately absent: a `restart: always`
# container comes straight back, and Docker's stop grace is what we want.
CELERY_CALLS = {
    "ping": ("inspect", "ping", False, False),
    "active": ("inspect", "active", False, False),
    "reserved": ("inspect", "reserved", False, False),
    "active_queues": ("inspect", "active_queues", False, False),
    "stats": ("inspect", "stats", False, False),
    "conf": ("inspect", "conf", False, False),
    "cancel_consumer": ("control", "cancel_consumer", True, True),
    "add_consumer": ("control", "add_consumer", True, True),
    "pool_shrink": ("control", "pool_shrink", True, True),
    "pool_grow": ("control", "pool_grow", True, True),
}

# What billiard answers when pool_shrink finds no idle process to end.
POOL_BUSY = "All processes busy"

# Seconds Celery waits for replies. With --destination it returns as soon as
# every named node answered, so this only bounds a silent node.
DEFAULT_REPLY_TIMEOUT = 5.0

NO_REPLY = "no_reply"
APP_ERROR = "app"
NO_CELERY = "no_celery"
OTHER_ERROR = "other"


class CeleryReplyError(BlueGreenError):
    """A celery command answered something that is not the JSON we asked for."""


def node_name(hostname, prefix="celery"):
    """Celery's default node name in a container: `celery@<container hostname>`."""
    return "%s@%s" % (prefix, hostname)


def celery_argv(celery_command, app, call, destinations, queue=None, timeout=DEFAULT_REPLY_TIMEOUT):
    """argv (run inside the container) of one call of CELERY_CALLS, addressed to `destinations`.

    `queue` is the call's argument: a queue name, or for pool_shrink/pool_grow a process count.
    """
    if call not in CELERY_CALLS:
        raise ValueError("unknown celery call %r" % (call,))
    subcommand, method, takes_argument, _changes = CELERY_CALLS[call]
    if not destinations:
        raise ValueError("celery %s needs at least one destination node" % call)
    argv = list(celery_command) + ["-A", app, subcommand, method]
    if takes_argument:
        if call.startswith("pool_"):
            if isinstance(queue, bool) or not isinstance(queue, int) or queue < 1:
                raise ValueError("celery %s needs a positive number of processes, got %r" % (call, queue))
            queue = str(queue)
        if not queue:
            raise ValueError("celery %s needs a queue" % call)
        argv.append(queue)
    argv += ["--destination", ",".join(destinations), "--timeout", _seconds(timeout), "--json"]
    return argv


def broadcast_ping_argv(celery_command, app, timeout=DEFAULT_REPLY_TIMEOUT):
    """A ping every node answers: only to find a container's node when its name is not the default."""
    return list(celery_command) + ["-A", app, "inspect", "ping", "--timeout", _seconds(timeout), "--json"]


def call_changes(call):
    return CELERY_CALLS[call][3]


def _seconds(value):
    text = "%.2f" % float(value)
    return text.rstrip("0").rstrip(".") if "." in text else text


# ---------------------------------------------------------------------------
# Replies
# ---------------------------------------------------------------------------

def parse_reply(stdout):
    """{node: reply} from `--json` output.

    `inspect` prints one object keyed by node; `control` prints a list of such
    objects (one per reply). Both end up as one dict.
    """
    text = (stdout or "").strip()
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CeleryReplyError("celery printed no JSON reply: %s" % _shorten(text)) from exc
    if isinstance(data, dict):
        return data
    if isinstance(data, list):
        merged = {}
        for item in data:
            if not isinstance(item, dict):
                raise CeleryReplyError("unexpected celery reply element: %s" % _shorten(json.dumps(item)))
            merged.update(item)
        return merged
    raise CeleryReplyError("unexpected celery reply: %s" % _shorten(text))


def parse_ping(stdout):
    """Sorted node names that answered `pong`."""
    return sorted(node for node, reply in parse_reply(stdout).items()
                  if isinstance(reply, dict) and reply.get("ok") == "pong")


def nodes_of_host(nodes, hostname):
    """The nodes whose name ends in `@<hostname>`: the ones living in that container."""
    suffix = "@%s" % hostname
    return sorted(node for node in nodes if node.endswith(suffix))


def parse_queues(stdout):
    """{node: [queue names]} from `inspect active_queues`."""
    queues = {}
    for node, reply in parse_reply(stdout).items():
        queues[node] = [q.get("name") for q in (reply or []) if isinstance(q, dict) and q.get("name")]
    return queues


def parse_pool_sizes(stdout):
    """{node: number of pool processes alive} from `inspect stats` (prefork pools only).

    `max-concurrency` keeps the configured size after a pool_shrink; the
    `processes` list is what really runs.
    """
    sizes = {}
    for node, reply in parse_reply(stdout).items():
        pool = reply.get("pool") if isinstance(reply, dict) else None
        processes = pool.get("processes") if isinstance(pool, dict) else None
        if not isinstance(processes, list):
            raise CeleryReplyError(
                "%s reports no prefork pool processes (pool: %s); pool_shrink and pool_grow need the prefork pool"
                % (node, _shorten(json.dumps(pool)))
            )
        sizes[node] = len(processes)
    return sizes


def parse_redelivery(stdout):
    """{node: True when the worker's configuration sets both task_acks_late and task_reject_on_worker_lost}.

    From `inspect conf`, which lists the settings that differ from Celery's
    defaults (both default to False). Only those two keys are read: the reply
    also carries the broker URL, so no part of it goes into a message.
    """
    try:
        replies = json.loads(stdout)
    except ValueError:
        raise CeleryReplyError("celery inspect conf answered something that is not JSON") from None
    if not isinstance(replies, dict):
        raise CeleryReplyError("celery inspect conf answered something that is not a JSON object")
    return {node: isinstance(conf, dict) and conf.get("task_acks_late") is True
            and conf.get("task_reject_on_worker_lost") is True
            for node, conf in replies.items()}


def parse_tasks(stdout):
    """{node: [{id, name, args, time_start}]} from `inspect active` or `inspect reserved`."""
    tasks = {}
    for node, reply in parse_reply(stdout).items():
        tasks[node] = [
            {
                "id": task.get("id", ""),
                "name": task.get("name") or task.get("type") or "",
                "args": task.get("args"),
                "time_start": task.get("time_start"),
            }
            for task in (reply or []) if isinstance(task, dict)
        ]
    return tasks


def parse_control(stdout):
    """{node: (ok, message)} from a `control` call."""
    answers = {}
    for node, reply in parse_reply(stdout).items():
        reply = reply if isinstance(reply, dict) else {"error": str(reply)}
        if "ok" in reply:
            answers[node] = (True, str(reply["ok"]))
        else:
            answers[node] = (False, str(reply.get("error", reply)))
    return answers


# ---------------------------------------------------------------------------
# Failures
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
