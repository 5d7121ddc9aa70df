# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to the collection: this file may change without notice.
#
# The Celery agent: a small program the modules run INSIDE an app container
# (`docker exec -i <container> python3 -c <this source> <celery app>`), so that
# the host needs no Celery. It imports Celery and the app once, keeps one
# broker connection, and answers JSON-line requests on stdin until it is told
# to exit or stdin closes. One agent per module call replaces a
# `celery -A app inspect|control ...` process (and a boot of the whole app)
# per call and per poll; a poll then costs one broker round trip.
#
# Protocol (one JSON object per line each way):
#   first line out: {"ready": true, "boot_s", "celery", "kombu", "transport", "pid"}
#                   or {"ready": false, "kind": no_celery|app|broker, "error", "message"}
#   request:  {"id": N, "op": <op>, ...}          reply: {"id": N, "ok": true, "reply": ...}
#                                                 or     {"id": N, "ok": false, "error", "message"}
#   ops: ping {destination?, timeout}             -> {node: {"ok": "pong"}}
#        inspect {method, destination, timeout, keys?}
#                                                 -> {node: reply} (as `celery inspect --json` prints)
#        control {method, arguments, destination, timeout}
#                                                 -> {node: reply} (as `celery control --json` prints)
#        unacked {}     -> {entries: [{tag, id, task, exchange, routing_key, delivered_at}], subscribers}
#                          (Redis broker only)
#        restore {tags} -> [tags put back into their queue]                      (Redis broker only)
#        fetching {addresses} -> {seen, blocked: [{addr, cmd}], timeout}          (Redis broker only)
#        queue_length {queue} -> int
#        exit {}        -> {"cpu_s", "wall_s", "requests"}, then the agent ends
#
# `inspect conf` answers only the keys asked for: its full reply carries the
# broker URL and its password. Task arguments are never read from the broker.
# Written for any Python 3 an app image may have (3.6 and later).

import functools
import json
import os
import sys
import time

INSPECT_METHODS = ("active", "reserved", "stats", "conf", "active_queues", "scheduled")
CONTROL_METHODS = ("cancel_consumer", "add_consumer", "pool_shrink", "pool_grow")
# The commands a Redis consumer waits in for a message.
BLOCKING_FETCHES = ("brpop", "blpop", "brpoplpush", "blmove", "blmpop", "bzpopmin", "bzpopmax", "bzmpop")


def load_app(name):
    """The Celery app as `celery -A name` finds it (the container's working directory on sys.path)."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    from celery.app.utils import find_app  # pylint: disable=import-outside-toplevel,import-error
    return find_app(name)


def merge_replies(replies):
    """Celery's list of {node: reply} as one dict."""
    merged = {}
    for item in replies or []:
        if isinstance(item, dict):
            merged.update(item)
    return merged


class Agent:
    def __init__(self, app):
        self.app = app
        self.connection = app.connection_for_write()
        self.connection.ensure_connection(max_retries=3)
        self.requests = 0

    @property
    def channel(self):
        return self.connection.default_channel

    def is_redis(self):
        return getattr(self.connection.transport, "driver_type", "") == "redis"

    def handle(self, request):
        self.requests += 1
        op = request.get("op")
        destination = request.get("destination") or None
        timeout = float(request.get("timeout", 1.0))
        if op == "ping":
            return merge_replies(self.app.control.ping(destination=destination, timeout=timeout,
                                                       connection=self.connection))
        if op == "inspect":
            method = request.get("method")
            if method not in INSPECT_METHODS:
                raise ValueError("inspect %r is not allowed" % (method,))
            inspector = self.app.control.inspect(destination=destination, timeout=timeout,
                                                 connection=self.connection)
            reply = (inspector.conf(with_defaults=False) if method == "conf" else getattr(inspector, method)()) or {}
            if method == "conf":
                keys = request.get("keys") or []
                reply = dict((node, dict((k, (conf or {}).get(k)) for k in keys)) for node, conf in reply.items())
            return reply
        if op == "control":
            method = request.get("method")
            if method not in CONTROL_METHODS:
                raise ValueError("control %r is not allowed" % (method,))
            return merge_replies(self.app.control.broadcast(
                method, arguments=request.get("arguments") or {}, destination=destination, reply=True,
                timeout=timeout, connection=self.connection))
        if op == "unacked":
            return self.unacked()
        if op == "restore":
            return self.restore(request.get("tags") or [])
        if op == "queue_length":
            return self.queue_length(request["queue"])
        if op == "fetching":
            return self.fetching(request.get("addresses") or [])
        raise ValueError("unknown op %r" % (op,))

    # -- the broker's own record (Redis) ------------------------------------

    def unacked(self):
        """Messages delivered to a consumer and neither acknowledged nor given back, with their delivery time.

        `subscribers` counts the broker's clients that listen for remote-control
        broadcasts (every live worker does, a frozen one too): zero means no
        worker at all is connected.
        """
        if not self.is_redis():
            raise ValueError("the broker is not Redis: its unacknowledged messages cannot be read")
        channel = self.channel
        client = channel.client
        entries = []
        for tag, raw in (client.hgetall(channel.unacked_key) or {}).items():
            tag = tag.decode() if isinstance(tag, bytes) else tag
            try:
                payload, exchange, routing_key = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            except (ValueError, TypeError):
                continue
            headers = payload.get("headers") or {}
            entries.append({
                "tag": tag,
                "id": headers.get("id"),
                "task": headers.get("task"),
                "exchange": exchange,
                "routing_key": routing_key,
                "delivered_at": client.zscore(channel.unacked_index_key, tag),
            })
        topic = "%s%s.pidbox" % (getattr(channel, "keyprefix_fanout", ""), self.app.control.mailbox.namespace)
        numsub = client.execute_command("PUBSUB", "NUMSUB", topic)
        subscribers = int(client.execute_command("PUBSUB", "NUMPAT") or 0)
        if isinstance(numsub, (list, tuple)) and len(numsub) == 2:
            subscribers += int(numsub[1] or 0)
        return {"entries": entries, "subscribers": subscribers}

    def restore(self, tags):
        """Put each tag's message back into its queue, once: read and removed in one transaction.

        The same transaction kombu's own restore runs, but it tells which tags
        it found: a tag that another restore (or an ack) took first is skipped.
        """
        if not self.is_redis():
            raise ValueError("the broker is not Redis: its unacknowledged messages cannot be restored")
        channel = self.channel
        restored = []
        for tag in tags:
            found = {}
            with channel.conn_or_acquire() as client:
                client.transaction(functools.partial(self._restore_one, channel, tag, found), channel.unacked_key)
            if found.get("raw"):
                restored.append(tag)
        return restored

    @staticmethod
    def _restore_one(channel, tag, found, pipe):
        """One tag's restore, in a WATCHed transaction: the message read, removed and put back together."""
        raw = pipe.hget(channel.unacked_key, tag)
        pipe.multi()
        pipe.zrem(channel.unacked_index_key, tag)
        pipe.hdel(channel.unacked_key, tag)
        found["raw"] = raw
        if raw:
            payload, exchange, routing_key = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            channel._do_restore_message(payload, exchange, routing_key, pipe, False)  # pylint: disable=protected-access

    def fetching(self, addresses):
        """The broker's connections from `addresses` that wait in a fetch (a blocking pop) right now.

        `seen` counts every connection from those addresses (none: the broker
        sees them through NAT, or on another network), `timeout` is the
        transport's fetch timeout (`brpop_timeout`): the longest a fetch waits.
        """
        if not self.is_redis():
            raise ValueError("the broker is not Redis: its connections cannot be listed")
        wanted = set(addresses)
        seen, blocked = 0, []
        for client in self.channel.client.client_list():
            addr = str(client.get("addr", ""))
            if addr.rsplit(":", 1)[0].strip("[]") not in wanted:
                continue
            seen += 1
            if "b" in str(client.get("flags", "")) and str(client.get("cmd", "")) in BLOCKING_FETCHES:
                blocked.append({"addr": addr, "cmd": str(client.get("cmd"))})
        return {"seen": seen, "blocked": blocked, "timeout": float(getattr(self.channel, "brpop_timeout", 1) or 1)}

    def queue_length(self, queue):
        if self.is_redis():
            channel = self.channel
            client = channel.client
            return sum(client.llen(channel._q_for_pri(queue, pri)) for pri in channel.priority_steps)  # pylint: disable=protected-access
        return self.channel.queue_declare(queue=queue, passive=True).message_count


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    started = time.time()
    out = sys.stdout

    def say(obj):
        out.write(json.dumps(obj, default=str) + "\n")
        out.flush()

    # Each stage of the boot fails with its own kind: the module falls back to
    # another interpreter or container only when Celery itself is missing.
    stage = "no_celery"
    try:
        import celery  # pylint: disable=import-outside-toplevel,import-error
        import kombu  # pylint: disable=import-outside-toplevel,import-error
        stage = "app"
        app = load_app(argv[0])
        stage = "broker"
        agent = Agent(app)
        transport = getattr(agent.connection.transport, "driver_type", "")
    except BaseException as exc:  # pylint: disable=broad-except
        say({"ready": False, "kind": stage, "error": type(exc).__name__, "message": "%s: %s" % (type(exc).__name__, exc)})
        return 2
    say({"ready": True, "boot_s": round(time.time() - started, 3), "celery": celery.__version__,
         "kombu": kombu.__version__, "transport": transport, "pid": os.getpid()})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            request = json.loads(line)
        except ValueError:
            say({"id": None, "ok": False, "error": "ValueError", "message": "not a JSON request"})
            continue
        if request.get("op") == "exit":
            usage = os.times()
            say({"id": request.get("id"), "ok": True,
                 "reply": {"cpu_s": round(usage[0] + usage[1], 3), "wall_s": round(time.time() - started, 3),
                           "requests": agent.requests}})
            break
        try:
            say({"id": request.get("id"), "ok": True, "reply": agent.handle(request)})
        except Exception as exc:  # pylint: disable=broad-except
            say({"id": request.get("id"), "ok": False, "error": type(exc).__name__, "message": str(exc)})
    try:
        agent.connection.release()
    except Exception:  # pylint: disable=broad-except
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
