# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to the collection: this file may change without notice.
#
# The quiesce and resume of a color's Celery beat and workers. celery_quiesce
# is this alone; compose_project_color runs the old color's quiesce at the
# start of the new web's call, so that no module start on the host sits
# between the first change to the old release and the new web's start.

from __future__ import annotations

import time

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.lowspec.bluegreen.plugins.module_utils._celery import (
    POOL_BUSY,
    REDELIVERY_KEYS,
    CeleryError,
    node_name,
    nodes_of_host,
    open_control,
    parse_control,
    parse_ping,
    parse_pool_sizes,
    parse_queues,
    parse_redelivery,
    parse_tasks,
    reclaim_orphans,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import (
    BlueGreenError,
    check_non_negative,
    other_color,
    project_name,
    seconds,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._docker import (
    Engine,
    iso_epoch,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._module import (
    COMMON_OPTIONS,
    Manager,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._pressure import (
    Gauge,
    pressure_option,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._state import (
    Journal,
    read_state,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._wait import (
    Wait,
)

TIMEOUT_OPTIONS = ("drain_timeout", "stop_timeout", "ready_timeout", "visibility_timeout", "max_pause", "wait_slice")
# A poll costs one broker round trip through the agent.
POLL_INTERVAL = 0.2
# Seconds to wait for billiard to drop an ended process from its list (its pool maintenance runs every 5 s).
POOL_SETTLE_TIMEOUT = 15
# Seconds a running worker gets to answer a call addressed to it; a node still silent is asked once more with
# LATE_REPLY_TIMEOUT (a worker on a loaded host, its pool busy, answers late; silence is not a refusal).
REPLY_TIMEOUT = 2.0
LATE_REPLY_TIMEOUT = 5.0
# Past the transport's fetch timeout, when the fetches cannot be seen: the worker's loop reads the reply.
FETCH_SETTLE = 0.5


class CeleryQuiesceManager(Manager):
    """One call of the module: resolve, validate, then quiesce or resume, phase by phase."""

    def __init__(self, module, engine=None, control_factory=None, clock=time.monotonic, sleep=time.sleep):
        super().__init__(module)
        params = self.params
        self.clock = clock
        self.sleep = sleep
        self.celery_command = list(params["celery_command"])
        self.celery_app = params["celery_app"]
        self.worker_services = list(params["worker_services"])
        self.beat_services = list(params["beat_services"])
        self.result.update(
            project=None, containers=[], queues={}, drained=True, still_active=[],
            beat_stopped={"containers": [], "exited": False}, resumed=[], from_journal=[], stopping=[],
            pools={}, restored=[], broker_checked=False, timings={}, actions=[], waiting=False,
        )
        self.validate_params()
        try:
            self.journal = Journal(params["journal"])
        except BlueGreenError as exc:
            if params["state"] != "resumed":
                raise
            # A rescue must not stop at a damaged journal: what it was given still comes back.
            self.warn("%s; only the given containers are brought back" % exc)
            self.journal = Journal(None)
        self.engine = engine or Engine(module, params["docker_host"])
        self.control_factory = control_factory or self._open_control
        self.control = None
        self.project = None
        # Ids of the containers this call stopped or froze, and when the last of them stopped.
        self.done = []
        self.stopped_at = None
        self.cancelled_at = None  # when the last cancel_consumer of this call was answered
        # Worker nodes that did not answer during the drain (each warned about once).
        self.silent = set()

    # -- inputs ---------------------------------------------------------------------

    def validate_params(self):
        params = self.params
        check_non_negative(params, TIMEOUT_OPTIONS)
        if not self.celery_command or not all(self.celery_command):
            raise BlueGreenError("celery_command must be a non-empty argv list, for example [python3, -m, celery]")
        if not self.celery_app:
            raise BlueGreenError("celery_app must not be empty")
        if params["keep_processes"] < 1:
            raise BlueGreenError(
                "keep_processes must be 1 or more (got %d): a pool of 0 processes consumes nothing, use mode=stop"
                % params["keep_processes"])
        if params["processes"] is not None and params["processes"] < 1:
            raise BlueGreenError("processes must be 1 or more (got %d)" % params["processes"])
        both = sorted(set(self.worker_services) & set(self.beat_services))
        if both:
            raise BlueGreenError("service %s is named in both worker_services and beat_services" % ", ".join(both))
        if params["state"] == "quiesced" and params["mode"] == "pause":
            drain, pause, vis = params["drain_timeout"], params["max_pause"], params["visibility_timeout"]
            if drain + pause >= vis:
                raise BlueGreenError(
                    "mode=pause refused: drain_timeout (%d s) + max_pause (%d s) = %d s is not below the broker's "
                    "visibility_timeout (%d s). A frozen worker keeps the messages it holds; after the visibility "
                    "timeout the broker hands them to another worker and unfreezing runs them twice. Use mode=stop, "
                    "or shorten the pause." % (drain, pause, drain + pause, vis))
        self.resume_targets = self._parse_containers_option()

    def _parse_containers_option(self):
        raw = self.params["containers"]
        if raw is None or self.params["state"] != "resumed":
            return None
        targets = []
        for index, item in enumerate(raw):
            if isinstance(item, str) and item.strip():
                targets.append({"id": item.strip(), "queues": None, "pool": None})
            elif isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"].strip():
                queues = item.get("queues")
                if queues is not None and (not isinstance(queues, list) or not all(isinstance(q, str) for q in queues)):
                    raise BlueGreenError("containers[%d].queues must be a list of queue names" % index)
                pool = item.get("pool")
                before = pool.get("before") if isinstance(pool, dict) else None
                if pool is not None and (isinstance(before, bool) or not isinstance(before, int) or before < 1):
                    raise BlueGreenError(
                        "containers[%d].pool must be a dict with 'before', the pool size to grow back to, got %r"
                        % (index, pool))
                targets.append({"id": item["id"].strip(), "queues": queues, "pool": before})
            else:
                raise BlueGreenError(
                    "containers[%d] must be a container id or a dict with an 'id' (as returned by state=quiesced), "
                    "got %r" % (index, item))
        return targets

    def resolve_project(self):
        if self.params["project"]:
            return self.params["project"]
        app, color = self.params["app"], self.params["color"]
        if color in ("active", "idle"):
            active = read_state(self.params["state_dir"], app).get("active_color")
            if not active:
                raise BlueGreenError(
                    "color=%s: no active color is recorded for app %s in %s; pass color=blue or color=green"
                    % (color, app, self.params["state_dir"]))
            color = active if color == "active" else other_color(active)
        return project_name(app, color)

    def load_project(self, project):
        """The project's containers, workers and beats; fails when the project or a service is missing."""
        containers = self.engine.containers(project)
        if not containers:
            raise BlueGreenError("compose project %s has no containers (no such project on this Docker host?)" % project)
        present = sorted({c["service"] for c in containers})
        for kind, names in (("worker_services", self.worker_services), ("beat_services", self.beat_services)):
            for name in names:
                if name not in present and self.params["missing_services"] == "fail":
                    raise BlueGreenError("%s: service %s not found in project %s (its services: %s)"
                                         % (kind, name, project, ", ".join(present)))
        workers = [c for c in containers if c["service"] in self.worker_services]
        beats = [c for c in containers if c["service"] in self.beat_services]
        return containers, workers, beats

    # -- celery ---------------------------------------------------------------------

    def _open_control(self, candidates):
        return open_control(self.engine, self.module.get_bin_path("docker", required=True), candidates,
                            self.celery_command, self.celery_app,
                            environ={"DOCKER_HOST": self.params["docker_host"]} if self.params["docker_host"] else {},
                            note=self.warn)

    def open_control(self, containers):
        """Celery's control from a running container that stays up (O(control_service)), else the workers."""
        if self.control is None:
            running = [c for c in containers if c["running"]]
            wanted = self.params["control_service"]
            if wanted:
                first = [c for c in running if c["service"] == wanted]
            else:
                first = [c for c in running if c["service"] not in self.worker_services + self.beat_services]
            workers = [c for c in running if c["service"] in self.worker_services]
            try:
                self.control = self.control_factory(first + workers)
            except CeleryError as exc:
                raise BlueGreenError(str(exc)) from exc
        return self.control

    def close(self):
        if getattr(self, "control", None) is not None:
            stats = self.control.close()
            self.result["celery"] = dict(transport=self.control.transport, container=self.control.container["name"],
                                         calls=self.control.calls, **stats)
            self.control = None

    def _release_control_in(self, containers):
        """An agent living in a container about to stop goes first (it would die with it)."""
        if self.control is not None and self.control.container["id"] in [c["id"] for c in containers]:
            self.close()

    @staticmethod
    def ask(request, nodes):
        """{node: reply} of `request(nodes, timeout)`, the nodes silent at REPLY_TIMEOUT asked again, longer."""
        replies = {}
        for timeout in (REPLY_TIMEOUT, LATE_REPLY_TIMEOUT):
            silent = [node for node in nodes if node not in replies]
            if not silent:
                break
            replies.update(request(silent, timeout))
        return replies

    def call(self, method, nodes, argument=None):
        """One control call to `nodes`: {node: (ok, message)}, a node that did not reply counting as refused."""
        control = self.control
        # Every command sent (cancel_consumer, add_consumer, pool_grow/shrink, shutdown) is idempotent but the
        # pool changes: those are sent once, a late reply reading as no reply.
        if method in ("pool_grow", "pool_shrink"):
            answers = parse_control(control.control(method, argument, nodes, timeout=REPLY_TIMEOUT))
        else:
            answers = self.ask(lambda silent, timeout: parse_control(control.control(method, argument, silent,
                                                                                     timeout=timeout)), nodes)
        self.engine.actions.append("celery control %s %s --destination %s" % (method, argument, ",".join(nodes)))
        return dict((node, answers.get(node, (False, "no reply from %s" % node))) for node in nodes)

    def find_nodes(self, workers, silent_ok=False):
        """{container id: Celery node names} of the running workers, confirmed by ping; fails for one that is none,
        or with `silent_ok` leaves it out, saying so."""
        nodes = {}
        defaults = dict((node_name(c["hostname"]), c) for c in workers)
        if not defaults:
            return nodes
        answered = self.ask(lambda silent, timeout: dict.fromkeys(
            parse_ping(self.control.ping(destination=silent, timeout=timeout)), "pong"), sorted(defaults))
        for node in answered:
            if node in defaults:
                nodes[defaults[node]["id"]] = [node]
        missing = [c for c in workers if c["id"] not in nodes]
        if missing:
            # Not the default node name: ask every node, keep the ones of each container.
            everyone = parse_ping(self.control.ping(timeout=LATE_REPLY_TIMEOUT))
            for c in missing:
                mine = nodes_of_host(everyone, c["hostname"])
                if not mine and silent_ok:
                    self.warn("service %s (container %s) answers no Celery ping (still booting, or crash-looping): "
                              "it is stopped without a drain" % (c["service"], c["name"]))
                    continue
                if not mine:
                    raise BlueGreenError(
                        "service %s (container %s) is not a Celery worker: no worker answered as %s or as any node "
                        "@%s. Is it listed in worker_services by mistake?"
                        % (c["service"], c["name"], node_name(c["hostname"]), c["hostname"]))
                nodes[c["id"]] = mine
        return nodes

    def held_tasks(self, workers, nodes):
        """Tasks the workers hold ([] when none), or None when a worker did not answer.

        `reserved` is read before `active`: a reserved task can only move to
        active, never back, and with the consumers cancelled nothing new is
        reserved; so two empty answers in this order mean drained.
        """
        every = sorted(n for c in workers for n in nodes[c["id"]])
        owner = dict((n, c) for c in workers for n in nodes[c["id"]])
        held, unknown = [], False
        for method in ("reserved", "active"):
            tasks = parse_tasks(self.control.inspect(method, every, timeout=REPLY_TIMEOUT))
            silent = [n for n in every if n not in tasks]
            if silent:
                # A node that did not reply (a loaded host answers late) holds an unknown set of tasks: never
                # read its silence as "drained".
                unknown = True
                for node in silent:
                    if node not in self.silent:
                        self.silent.add(node)
                        self.warn("celery inspect %s: no reply from %s; its tasks are unknown, the drain goes on"
                                  % (method, node))
            for node in sorted(tasks):
                for task in tasks[node]:
                    held.append({"id": task["id"], "name": task["name"], "state": method, "worker": node,
                                 "container": owner[node]["id"] if node in owner else None})
        held.sort(key=lambda t: (t["state"] != "active", t["worker"], t["id"]))
        if unknown:
            return held or None
        return held

    # -- quiesce ----------------------------------------------------------------------

    def quiesce(self, project):
        if self.params["mode"] == "shrink":
            self.shrink(project)
            return
        started = self.clock()
        timings = self.result["timings"]
        containers, workers, beats = self.load_project(project)
        # Containers an earlier call of this quiesce told to stop, still shutting down: awaited, not quiesced again.
        stopping = self.still_stopping(project, workers + beats)
        issued = set(c["id"] for c in stopping)
        running_workers = [c for c in workers if c["running"] and c["id"] not in issued]
        beats_up = [c for c in beats if (c["running"] or c["paused"]) and c["id"] not in issued]
        action = "paused" if self.params["mode"] == "pause" else "stopped"
        planned = [{"id": c["id"], "service": c["service"], "action": "stopped", "queues": []} for c in beats_up]
        planned += [{"id": c["id"], "service": c["service"], "action": action, "queues": []} for c in running_workers]
        self.planned = planned
        nodes = {}
        if running_workers:
            self.open_control(containers)
            nodes = self.find_nodes(running_workers, silent_ok=self.params["missing_services"] == "ignore")
        # The workers to drain; a silent one (missing_services=ignore) consumes nothing and is only stopped.
        answering = [c for c in running_workers if c["id"] in nodes]
        if self.check_mode:
            self.planned = []
            if planned:
                self.result.update(changed=True, containers=planned)
            self.result["beat_stopped"]["containers"] = [c["id"] for c in beats_up]
            still = self.held_tasks(answering, nodes) if answering else []
            self.result.update(still_active=still or [], drained=still == [])
            timings["total"] = seconds(self.clock() - started)
            self.project = None  # check mode reports what it would stop, not the journal
            return
        if planned or stopping:
            self.result["changed"] = True
        self.stop_beat(project, beats_up, planned)
        self.cancel_consumers(project, answering, nodes, planned)
        if not self.drain(project, answering, nodes):
            timings["total"] = seconds(self.clock() - started)
            return
        self.await_fetches(answering)
        self.take_off_cpu(project, running_workers, planned)
        self.result["stopping"] = [c["id"] for c in stopping + beats_up] + (
            [c["id"] for c in running_workers] if self.params["mode"] == "stop" else [])
        if self.params["wait_exited"]:
            if not self.await_exited(project, stopping + beats_up + (
                    running_workers if self.params["mode"] == "stop" else [])):
                timings["total"] = seconds(self.clock() - started)
                return
            self.result["stopping"] = []
            if any(e["service"] in self.worker_services for e in self.journal.of(project)) or self.done:
                self.check_broker(containers)
        self.report_stopped(project, planned)
        timings["total"] = seconds(self.clock() - started)

    def still_stopping(self, project, containers):
        """The containers a call told to stop that still run and have not been started again since."""
        issued = dict((e["id"], e["stop_issued_at"]) for e in self.journal.of(project) if e.get("stop_issued_at"))
        return [c for c in containers if c["id"] in issued and (c["running"] or c["restarting"])
                and (iso_epoch(c["started_at"]) or 0) < issued[c["id"]]]

    def report_stopped(self, project, planned):
        """RV(containers): what is stopped, frozen or shrunk, beat first; the journal's when there is one."""
        if self.journal.path:
            entries = [dict((k, v) for k, v in e.items() if k not in ("project", "stop_issued_at"))
                       for e in self.journal.of(project)]
        else:
            entries = [p for p in planned if p["id"] in self.done]
        entries.sort(key=lambda e: e["service"] not in self.beat_services)
        self.result["containers"] = entries

    def stop_beat(self, project, beats, planned):
        """Beat first: written down, then told to stop; it is seen exited (docker inspect) before this
        quiesce is over, so that the new beat never starts beside it."""
        if beats:
            entries = [p for p in planned if p["service"] in self.beat_services]
            self.journal.add(project, entries)
            self.engine.stop_in_background(self.docker_bin(), beats, self.params["stop_timeout"])
            # Only now is it stopping: a rescue waits for a container told to stop to exit before it starts it.
            self.journal.add(project, [dict(p, stop_issued_at=time.time()) for p in entries])
            self.result["beat_stopped"]["containers"] = [c["id"] for c in beats]
            self.done.extend(c["id"] for c in beats)

    def docker_bin(self):
        return self.module.get_bin_path("docker", required=True)

    def cancel_consumers(self, project, workers, nodes, planned):
        """Every queue every worker consumes, cancelled; each worker written down with its queues first."""
        mark = self.clock()
        earlier = dict((e["id"], e.get("queues") or []) for e in self.journal.of(project))
        for container in workers:
            entry = [p for p in planned if p["id"] == container["id"]][0]

            def note(queues, entry=entry, before=earlier.get(container["id"], [])):
                # A worker left consuming nothing gets exactly those back (an earlier call's queues kept).
                entry["queues"] = sorted(set(queues) | set(before))
                self.journal.add(project, [entry])

            self._cancel(container, nodes[container["id"]], before=note)
            self.result["queues"][container["id"]] = entry["queues"]
            # Its consumers are cancelled: what a rescue gives back (its queues) even if it is never stopped.
            self.done.append(container["id"])
        self.cancelled_at = self.clock()
        self.result["timings"]["cancel"] = seconds(self.cancelled_at - mark)

    def _cancel(self, container, nodes, before=None):
        """Cancel every queue the nodes consume; `before(queues)` is called first."""
        by_node = self.ask(
            lambda silent, timeout: parse_queues(self.control.inspect("active_queues", silent, timeout=timeout)), nodes)
        silent = [n for n in nodes if n not in by_node]
        if silent:
            raise BlueGreenError("celery inspect active_queues in %s: no reply from %s"
                                 % (container["name"], ", ".join(silent)))
        queues = sorted({q for node in nodes for q in by_node.get(node, [])})
        if before is not None:
            before(queues)
        for queue in queues:
            targets = [node for node in nodes if queue in by_node.get(node, [])]
            answers = self.call("cancel_consumer", targets, queue)
            failed = ["%s: %s" % (node, msg) for node, (ok, msg) in sorted(answers.items()) if not ok]
            if failed:
                raise BlueGreenError("cancel_consumer %s refused by %s" % (queue, "; ".join(failed)))
        return queues

    def drain(self, project, workers, nodes):
        """Reserved, then active, until both are empty or drain_timeout; False when this call's slice ended first."""
        mark = self.clock()
        with Wait("drain:%s" % project, self.params["drain_timeout"], self.journal, self.params["wait_slice"]) as wait:
            while True:
                still = self.held_tasks(workers, nodes) if workers else []
                self.result.update(drained=still == [], still_active=still or [])
                if still == [] or wait.expired():
                    break
                if wait.slice_over():
                    wait.pause()
                    self.result.update(waiting=True, progress=wait.progress(
                        "the old workers of %s draining (%d task(s) held: %s)" % (
                            project, len(still or []), ", ".join("%s[%s]" % (t["name"], t["id"]) for t in still or [])
                            or "a worker did not answer")))
                    self.result["timings"]["drain"] = seconds(self.clock() - mark)
                    return False
                self.sleep(min(POLL_INTERVAL, wait.remaining()))
            wait.done()
            self.result["timings"]["drain"] = seconds(self.clock() - mark)
            if self.result["still_active"]:
                self.warn(
                    "%d task(s) still held when drain_timeout (%s s) passed, left to %s: %s" % (
                        len(self.result["still_active"]), self.params["drain_timeout"],
                        "the pause (they resume with the worker)" if self.params["mode"] == "pause"
                        else "the warm shutdown (stop_timeout %s s), then to redelivery" % self.params["stop_timeout"],
                        ", ".join("%s[%s] %s" % (t["name"], t["id"], t["state"]) for t in self.result["still_active"])))
            return True

    def await_fetches(self, workers):
        """Until no cancelled worker waits in a fetch from a Redis broker: a message handed to a fetch whose worker
        has been told to stop is lost (it is off the queue, and never in the unacknowledged record)."""
        control = self.control
        if not workers or getattr(control, "broker_transport", None) not in (None, "redis"):
            return  # another broker gives a delivery back when the connection closes
        mark = self.clock()
        addresses = sorted(set(a for c in workers for a in c.get("addresses") or []))
        listing = control.fetching(addresses) if addresses else None
        if listing is None or not listing["seen"]:
            # The fetches cannot be seen: the last one has returned one fetch timeout after the cancel.
            timeout = listing["timeout"] if listing else 1.0
            self.sleep(max(0.0, (self.cancelled_at or mark) + timeout + FETCH_SETTLE - self.clock()))
        else:
            limit = 3 * listing["timeout"] + 5
            while listing["blocked"]:
                if self.clock() - mark >= limit:
                    raise BlueGreenError(
                        "%s still wait(s) in a fetch from the broker (%s) %d s after every queue of the workers was "
                        "cancelled: stopping them could lose the message that fetch takes. Does another consumer "
                        "run in the same container?" % (
                            ", ".join(c["name"] for c in workers),
                            ", ".join("%s %s" % (b["addr"], b["cmd"]) for b in listing["blocked"]), limit))
                self.sleep(0.05)
                listing = control.fetching(addresses)
        self.result["timings"]["fetch"] = seconds(self.clock() - mark)

    def take_off_cpu(self, project, workers, planned):
        """The drained workers told to stop (warm shutdown, stop_timeout of grace), or frozen."""
        mark = self.clock()
        if workers:
            self._release_control_in(workers)
            if self.params["mode"] == "pause":
                self.engine.pause(workers)
                self.stopped_at = time.time()
            else:
                ids = [c["id"] for c in workers]
                self.engine.stop_in_background(self.docker_bin(), workers, self.params["stop_timeout"])
                self.journal.add(project, [dict(p, stop_issued_at=time.time()) for p in planned if p["id"] in ids])
            self.done.extend(c["id"] for c in workers if c["id"] not in self.done)
        self.result["timings"]["stop"] = seconds(self.clock() - mark)

    def await_exited(self, project, containers):
        """Until every container told to stop has exited (docker stop SIGKILLs it at the end of its grace);
        False when this call's slice ended first."""
        mark = self.clock()
        with Wait("stop:%s" % project, self.params["stop_timeout"] + 15, self.journal, self.params["wait_slice"]) as wait:
            pending = list(containers)
            while pending:
                pending = [c for c in self.engine.inspect([c["id"] for c in pending]) if c["running"] or c["restarting"]]
                if not pending:
                    break
                if wait.expired():
                    raise BlueGreenError("container(s) %s still running %d s after docker stop"
                                         % (", ".join(c["name"] for c in pending), self.params["stop_timeout"] + 15))
                if wait.slice_over():
                    wait.pause()
                    self.result.update(waiting=True, stopping=[c["id"] for c in pending], progress=wait.progress(
                        "%s stopping (warm shutdown, up to stop_timeout=%s s)" % (
                            ", ".join(c["name"] for c in pending), self.params["stop_timeout"])))
                    self.result["timings"]["exit"] = seconds(self.clock() - mark)
                    return False
                self.sleep(0.1)
            wait.done()
            self.result["beat_stopped"]["exited"] = True
            self.stopped_at = time.time()
            self.result["timings"]["exit"] = seconds(self.clock() - mark)
            return True

    def check_broker(self, containers):
        """No message stays delivered-but-unacknowledged by a worker that is gone: each goes back to its queue once.

        The Redis transport keeps every message delivered to a consumer in its
        `unacked` record until the consumer acknowledges it or gives it back at
        a clean shutdown. A worker killed at the end of its grace period, or
        one whose consumer lost its broker connection and forgot what it had
        reserved, leaves its messages there, and the broker would hand them
        out again only after the visibility timeout (an hour by default). After
        the old workers have stopped, every message in that record that was
        delivered before and that no live worker holds is such an orphan. It is
        put back in one transaction (read and removed together), so that it is
        restored once even if the broker's own restore runs at the same time.
        """
        if not self.params["broker_check"]:
            return
        mark = self.clock()
        try:
            self.open_control(self.engine.inspect([c["id"] for c in containers]))
        except BlueGreenError as exc:
            self.warn("the broker's unacknowledged messages were not checked after the old workers stopped: no running "
                      "container of the project other than its workers can reach Celery (%s)" % exc)
            return
        held = set(t["id"] for t in self.result["still_active"]) if self.params["mode"] == "pause" else set()
        checked, back = reclaim_orphans(self.control, held, self.stopped_at, self.warn)
        self.result.update(broker_checked=checked, restored=back)
        self.result["timings"]["broker"] = seconds(self.clock() - mark)
        if back:
            self.result["changed"] = True

    # -- shrink -----------------------------------------------------------------------

    def shrink(self, project):
        """Shrink each running worker's pool to keep_processes; beat and consumers are left alone."""
        started = self.clock()
        keep = self.params["keep_processes"]
        containers, workers, _beats = self.load_project(project)
        running_workers = [c for c in workers if c["running"]]
        # The workers go on consuming: nothing is drained.
        self.result["drained"] = False
        if not running_workers:
            self.result["timings"]["total"] = seconds(self.clock() - started)
            return
        self.open_control(containers)
        nodes = self.find_nodes(running_workers)
        plans = []
        for container in running_workers:
            sizes = self.pool_sizes(container, nodes[container["id"]])
            before = sum(sizes.values())
            self.result["pools"][container["id"]] = {"before": before, "after": before}
            if any(size > keep for size in sizes.values()):
                plans.append((container, nodes[container["id"]], sizes))
                self.check_redelivery(container, nodes[container["id"]])
        if not plans:
            self.result["containers"] = [dict((k, v) for k, v in e.items() if k != "project")
                                         for e in self.journal.of(project) if e["action"] == "shrunk"]
            self.result["timings"]["total"] = seconds(self.clock() - started)
            return
        self.result["changed"] = True
        deadline = self.clock() + self.params["drain_timeout"]
        for container, _nodes, sizes in plans:
            entry = {"id": container["id"], "service": container["service"], "action": "shrunk", "queues": [],
                     "pool": {"before": sum(sizes.values()), "after": keep * len(sizes)}}
            # Listed before the first call: a failure midway still tells the rescue what to grow back.
            self.result["containers"].append(entry)
            if self.check_mode:
                self.result["pools"][container["id"]]["after"] = entry["pool"]["after"]
                continue
            self.journal.add(project, [entry])
            entry["at"] = [e["at"] for e in self.journal.of(project) if e["id"] == entry["id"]][0]
            for node in sorted(sizes):
                self._shrink_node(container, node, sizes[node], keep, deadline)
            self.result["pools"][container["id"]]["after"] = entry["pool"]["after"]
        self.result["timings"]["shrink"] = seconds(self.clock() - started)
        self.result["timings"]["total"] = seconds(self.clock() - started)

    def check_redelivery(self, container, nodes):
        """Warn when a task that pool_shrink ends as it starts would be lost rather than redelivered.

        billiard ends a process no job of its pool names; a job handed to it an
        instant before, whose start the process has not reported back yet, names
        none. Celery then sees that task's worker lost: with task_acks_late and
        task_reject_on_worker_lost it is put back in the queue, otherwise it is gone.
        """
        try:
            redelivered = parse_redelivery(self.control.inspect("conf", nodes, timeout=REPLY_TIMEOUT,
                                                                keys=list(REDELIVERY_KEYS)))
        except CeleryError as exc:
            self.warn("celery inspect conf in %s: %s; whether a task ended by pool_shrink is redelivered is unknown"
                      % (container["name"], exc))
            return
        unsafe = [node for node in nodes if not redelivered.get(node, False)]
        if unsafe:
            self.warn(
                "%s (%s): the Celery configuration does not set both task_acks_late and task_reject_on_worker_lost, "
                "so a task that pool_shrink ends at the instant it starts is lost, not redelivered; set both "
                "(or on every task) to use mode=shrink safely" % (", ".join(unsafe), container["name"]))

    def pool_sizes(self, container, nodes):
        sizes = self.ask(lambda silent, timeout: parse_pool_sizes(self.control.inspect("stats", silent, timeout=timeout)),
                         nodes)
        silent = [node for node in nodes if node not in sizes]
        if silent:
            raise BlueGreenError("celery inspect stats in %s: no reply from %s" % (container["name"], ", ".join(silent)))
        return dict((node, sizes[node]) for node in nodes)

    def _shrink_node(self, container, node, size, keep, deadline):
        """pool_shrink one process at a time down to `keep`, each seen gone before the next.

        billiard drops an ended process from its pool's list only at its next
        maintenance, up to 5 s later. Until then `inspect stats` still counts it,
        and another pool_shrink (ours, or a re-run's that read the stale count)
        ends one more: measured here, two quick pool_shrinks left a 2-process
        pool with none, its tasks reserved and never run.
        """
        while size > keep:
            self._shrink_one(container, node, keep, deadline)
            size -= 1
            self._wait_pool_size(container, node, size, max(deadline, self.clock() + POOL_SETTLE_TIMEOUT))

    def _shrink_one(self, container, node, keep, deadline):
        """End one idle pool process of `node`.

        billiard ends only idle processes ("All processes busy" otherwise). Under a
        backlog every process is re-fed the moment it finishes, so after a busy
        answer the node's consumers are cancelled until a process is idle, shrunk,
        and the consumers added back: the worker never stops consuming for longer
        than one task.
        """
        cancelled = []
        try:
            while True:
                ok, message = self.call("pool_shrink", [node], 1)[node]
                if ok:
                    return
                if POOL_BUSY not in message:
                    raise BlueGreenError("pool_shrink refused by %s: %s" % (node, message))
                if self.clock() >= deadline:
                    raise BlueGreenError(
                        "worker %s: no pool process became idle within drain_timeout (%d s) to shrink the pool to %d"
                        % (container["name"], self.params["drain_timeout"], keep))
                if not cancelled:
                    cancelled = self._cancel(container, [node])
                self.sleep(POLL_INTERVAL / 5)
        finally:
            if cancelled:
                self._add_consumers(container, cancelled, max(deadline, self.clock() + REPLY_TIMEOUT), [node])

    def _wait_pool_size(self, container, node, wanted, deadline):
        """Poll `inspect stats` until `node` has `wanted` processes."""
        while True:
            size = self.pool_sizes(container, [node])[node]
            if size == wanted:
                return size
            if self.clock() >= deadline:
                raise BlueGreenError("worker %s: pool has %d processes, %d expected, when the deadline passed"
                                     % (container["name"], size, wanted))
            self.sleep(POLL_INTERVAL)

    def _grow(self, container, nodes, sizes, wanted):
        """pool_grow each node of a running worker short of `wanted` processes; {before, after}."""
        short = dict((node, wanted - size) for node, size in sizes.items() if size < wanted)
        before = sum(sizes.values())
        pool = {"before": before, "after": before + sum(short.values())}
        if self.check_mode:
            return pool
        for node in sorted(short):
            ok, message = self.call("pool_grow", [node], short[node])[node]
            if not ok:
                raise BlueGreenError("pool_grow refused by %s: %s" % (node, message))
        # Not awaited: the new processes fork and import in the background (seconds
        # on a small host), and nothing here depends on them being up.
        return pool

    # -- resume -----------------------------------------------------------------------

    def journal_targets(self, project, containers):
        """This project's journal entries as resume targets, for containers that still exist."""
        targets = []
        for entry in self.journal.of(project):
            if not [c for c in containers if c["id"] == entry["id"]]:
                self.warn("journal: container %s (service %s) no longer exists; skipped"
                          % (entry["id"][:12], entry.get("service")))
                continue
            pool = entry.get("pool")
            targets.append({"id": entry["id"], "queues": entry.get("queues") or None,
                            "pool": pool.get("before") if isinstance(pool, dict) else None})
        return targets

    def resume_plan(self, project, containers, workers, beats):
        """(targets, queues to consume again, pool sizes to grow back to) of a resume.

        The targets are the given containers and the journal's of this project;
        with neither, every worker and beat container of the project.
        """
        from_journal = self.journal_targets(project, containers)
        given = self.resume_targets or []
        extra = [t for t in from_journal if not any(t["id"].startswith(g["id"]) for g in given)]
        if self.resume_targets is None and not extra:
            targets = workers + beats
        else:
            self.result["from_journal"] = [t["id"] for t in extra]
            targets = []
            for target in given + extra:
                matches = [c for c in containers if c["id"].startswith(target["id"])]
                if len(matches) != 1:
                    raise BlueGreenError(
                        "containers: %s is not a container of project %s" % (target["id"], project)
                        if not matches else "containers: %s matches several containers" % target["id"])
                if matches[0]["id"] not in [t["id"] for t in targets]:
                    targets.append(matches[0])
        queues_for, pool_for = {}, {}
        for target in given + from_journal:
            match = [c for c in containers if c["id"].startswith(target["id"])]
            if match and target["queues"] is not None:
                queues_for[match[0]["id"]] = target["queues"]
            if match and target["pool"] is not None:
                pool_for[match[0]["id"]] = target["pool"]
        for target in targets:
            if target["state"] not in ("running", "paused", "exited", "created"):
                raise BlueGreenError("container %s (service %s) is %s and cannot be resumed"
                                     % (target["name"], target["service"], target["state"]))
        return targets, queues_for, pool_for

    def resume(self, project):
        started = self.clock()
        timings = self.result["timings"]
        containers, workers, beats = self.load_project(project)
        # A container a quiesce told to stop may still be in its warm shutdown: it is brought back once it has
        # exited (started now, it would be stopped a moment later by that stop).
        stopping = self.still_stopping(project, containers)
        if stopping and not self.check_mode:
            if not self.await_exited(project, stopping):
                timings["total"] = seconds(self.clock() - started)
                return
            containers, workers, beats = self.load_project(project)
        targets, queues_for, pool_for = self.resume_plan(project, containers, workers, beats)
        first = [c for c in targets if c["service"] not in self.beat_services]
        last = [c for c in targets if c["service"] in self.beat_services]
        to_unpause = [c for c in first if c["paused"]]
        to_start = [c for c in first if not c["running"] and not c["paused"]]
        # Every running worker of the project, given or not: one left consuming
        # nothing by an interrupted quiesce gets its queues back.
        running_workers = [c for c in workers if c["running"]]
        beat_back = [c for c in last if not c["running"]]
        target_ids = set(c["id"] for c in targets)
        wanted_pool = dict((c["id"], self.params["processes"] or pool_for.get(c["id"])) for c in running_workers
                           if c["id"] in target_ids and (self.params["processes"] or pool_for.get(c["id"])))

        # Check before changing anything: every running worker answers as a Celery worker - but one of the
        # targets that an earlier call of this resume started may still be booting: it is waited for below.
        starving, to_grow, nodes, booting = [], [], {}, []
        if running_workers:
            self.open_control(containers)
            nodes = self.find_nodes([c for c in running_workers if c["id"] not in target_ids])
            for container in [c for c in running_workers if c["id"] in target_ids]:
                try:
                    nodes.update(self.find_nodes([container]))
                except BlueGreenError:
                    booting.append(container)
            for container in [c for c in running_workers if c["id"] in nodes]:
                by_node = parse_queues(self.control.inspect("active_queues", nodes[container["id"]],
                                                            timeout=REPLY_TIMEOUT))
                if not any(by_node.get(node) for node in nodes[container["id"]]):
                    starving.append(container)
                if container["id"] in wanted_pool:
                    sizes = self.pool_sizes(container, nodes[container["id"]])
                    if any(size < wanted_pool[container["id"]] for size in sizes.values()):
                        to_grow.append((container, sizes, wanted_pool[container["id"]]))

        self.result["resumed"] = [c["id"] for c in to_unpause + to_start + beat_back]
        if not (to_unpause or to_start or beat_back or starving or to_grow or booting):
            if not self.check_mode:
                self.journal.forget(project)
            timings["total"] = seconds(self.clock() - started)
            return
        self.result["changed"] = True
        if self.check_mode:
            for container, sizes, wanted in to_grow:
                self.result["pools"][container["id"]] = self._grow(container, nodes[container["id"]], sizes, wanted)
            timings["total"] = seconds(self.clock() - started)
            return

        mark = self.clock()
        self.engine.unpause([c["id"] for c in to_unpause])
        self.engine.start([c["id"] for c in to_start])
        timings["start"] = seconds(self.clock() - mark)

        mark = self.clock()
        with Wait("ready:%s" % project, self.params["ready_timeout"], self.journal, self.params["wait_slice"]) as wait:
            if any(c["service"] in self.worker_services for c in to_unpause + starving):
                self.open_control(self.engine.inspect([c["id"] for c in containers]))
            for container in to_unpause + starving:
                if container["service"] in self.worker_services:
                    self._add_consumers(container, queues_for.get(container["id"], self.params["queues"]), wait.deadline,
                                        nodes.get(container["id"]), wall=True)
            if not self._wait_ready([c for c in first if c["service"] in self.worker_services], wait, containers):
                timings["ready"] = seconds(self.clock() - mark)
                return
            timings["ready"] = seconds(self.clock() - mark)

            if to_grow and self.params["pressure"]:
                settled = self.host_settled()
                if settled is None:
                    return
                if not settled:
                    to_grow = []
            if to_grow:
                mark = self.clock()
                for container, sizes, wanted in to_grow:
                    self.result["pools"][container["id"]] = self._grow(container, nodes[container["id"]], sizes, wanted)
                timings["grow"] = seconds(self.clock() - mark)

            mark = self.clock()
            self.engine.unpause([c["id"] for c in beat_back if c["paused"]])
            self.engine.start([c["id"] for c in beat_back if not c["paused"]])
            if beat_back:
                down = [c["name"] for c in self.engine.inspect([c["id"] for c in beat_back]) if not c["running"]]
                if down:
                    raise BlueGreenError("beat container(s) %s did not stay running after start" % ", ".join(down))
            timings["beat"] = seconds(self.clock() - mark)
            self.journal.forget(project)
            timings["total"] = seconds(self.clock() - started)

    def host_settled(self):
        """Before pools grow: True once the host has settled, False (with a warning) if it did not within the
        wait, None when this call's slice ended first."""
        pressure = self.params["pressure"]
        with Wait("grow:%s" % self.project, pressure["wait_timeout"], self.journal, self.params["wait_slice"]) as wait:
            limits = dict((key, pressure[key])
                          for key in ("cpu_some_avg10_max", "memory_some_avg10_max", "mem_available_min_mb"))
            limits["disk_free_min_mb"] = 0
            outcome = Gauge(self.module).wait(limits, pressure["wait_timeout"], interval=1.0,
                                              until=time.monotonic() + wait.remaining())
            self.result["pressure"] = outcome["readings"]
            if outcome["settled"]:
                wait.done()
                return True
            if outcome["impossible"] or wait.expired():
                wait.done()
                self.warn("the host did not settle within %s s (%s): the pools of %s keep their size; grow them later "
                          "with state=resumed%s" % (pressure["wait_timeout"], "; ".join(outcome["exceeded"]),
                                                    self.project, " processes=%s" % self.params["processes"]
                                                    if self.params["processes"] else " and the same containers"))
                return False
            wait.pause()
            self.result.update(waiting=True, progress=wait.progress("host pressure before the pools of %s grow (%s)" % (
                self.project, "; ".join(outcome["exceeded"]))))
            return None

    def _add_consumers(self, container, queues, deadline, nodes=None, wall=False):
        """add_consumer for each queue; its reply is the worker's readiness answer."""
        now = time.time if wall else self.clock
        nodes = nodes or [node_name(container["hostname"])]
        for queue in queues:
            while True:
                try:
                    answers = self.call("add_consumer", nodes, queue)
                except CeleryError as exc:
                    answers = {nodes[0]: (False, str(exc))}
                if all(ok for ok, _msg in answers.values()):
                    break
                if now() >= deadline:
                    raise BlueGreenError("worker %s did not take back queue %s within ready_timeout (%d s): %s"
                                         % (container["name"], queue, self.params["ready_timeout"],
                                            "; ".join(msg for _ok, msg in answers.values())))
                self.sleep(POLL_INTERVAL)

    def _wait_ready(self, workers, wait, containers):
        """Until each started worker answers Celery's ping (asked from a container already up; a worker with
        another node name is found by a ping to all), or the deadline; False when this call's slice ended first.

        Docker's health is not taken for readiness: only a worker that answers is consuming.
        """
        pending = dict((c["id"], c) for c in workers)
        if not pending:
            return True
        # Read again: the workers just started are running now, and may be all there is to ask from.
        control = self.open_control(self.engine.inspect([c["id"] for c in containers]))
        last_broadcast = 0.0
        while pending:
            current = self.engine.inspect(list(pending))
            gone = [c for c in current if c["state"] in ("exited", "dead")]
            if gone:
                raise BlueGreenError("worker(s) exited while coming back: %s; last log lines: %s" % (
                    ", ".join("%s (exit code %s)" % (c["name"], c["exit_code"]) for c in gone),
                    " | ".join(self.engine.logs(gone[0]["id"], tail=5))))
            defaults = dict((node_name(c["hostname"]), c["id"]) for c in current if c["running"] and c["id"] in pending)
            if defaults:
                for node in parse_ping(control.ping(destination=sorted(defaults), timeout=0.5)):
                    pending.pop(defaults.get(node), None)
            if pending and self.clock() - last_broadcast > 3.0:
                # A worker started with another node name answers a ping to all, matched by hostname.
                last_broadcast = self.clock()
                everyone = parse_ping(control.ping(timeout=1.0))
                for c in current:
                    if nodes_of_host(everyone, c["hostname"]):
                        pending.pop(c["id"], None)
            if not pending:
                break
            if wait.expired():
                states = self.engine.inspect(list(pending))
                raise BlueGreenError("worker(s) not ready within ready_timeout (%d s): %s" % (
                    self.params["ready_timeout"],
                    ", ".join("%s (%s, health %s)" % (c["name"], c["state"], c["health"]) for c in states)))
            if wait.slice_over():
                wait.pause()
                self.result.update(waiting=True, progress=wait.progress("the workers of %s answering Celery's ping"
                                                                        % self.project))
                return False
            self.sleep(POLL_INTERVAL)
        return True

    # -- run --------------------------------------------------------------------------

    def run(self):
        self.project = self.resolve_project()
        self.result["project"] = self.project
        if self.params["state"] == "quiesced":
            self.quiesce(self.project)
        else:
            self.resume(self.project)

    def partial(self):
        if getattr(self, "project", None) and self.params["state"] == "quiesced" and self.params["mode"] != "shrink":
            self.report_stopped(self.project, getattr(self, "planned", []))
        engine = getattr(self, "engine", None)
        if engine is not None:
            self.result["actions"] = list(engine.actions)
        return dict(self.result)


QUIESCE_ARGUMENT_SPEC = dict(
    app=dict(type="str"),
    color=dict(type="str", choices=["blue", "green", "active", "idle"]),
    project=dict(type="str"),
    state_dir=dict(type="path", default="/var/lib/lowspec-bluegreen"),
    state=dict(type="str", choices=["quiesced", "resumed"], default="quiesced"),
    mode=dict(type="str", choices=["stop", "pause", "shrink"], default="stop"),
    keep_processes=dict(type="int", default=1),
    processes=dict(type="int"),
    worker_services=dict(type="list", elements="str", default=["worker"]),
    beat_services=dict(type="list", elements="str", default=["beat"]),
    control_service=dict(type="str", default=""),
    celery_app=dict(type="str", required=True),
    celery_command=dict(type="list", elements="str", default=["celery"]),
    drain_timeout=dict(type="int", default=300),
    stop_timeout=dict(type="int", default=60),
    ready_timeout=dict(type="int", default=120),
    visibility_timeout=dict(type="int", default=3600),
    max_pause=dict(type="int", default=600),
    wait_slice=dict(type="int", default=0),
    broker_check=dict(type="bool", default=True),
    wait_exited=dict(type="bool", default=True),
    containers=dict(type="list", elements="raw"),
    journal=dict(type="path"),
    queues=dict(type="list", elements="str", default=["celery"]),
    missing_services=dict(type="str", choices=["fail", "ignore"], default="fail"),
    pressure=pressure_option(),
)
QUIESCE_RULES = dict(
    mutually_exclusive=[("app", "project")],
    required_one_of=[("app", "project")],
    required_together=[("app", "color")],
)


class _ModuleView:
    """The calling module as a quiesce inside its call sees it: the quiesce's own parameters, the rest shared."""

    def __init__(self, module, params):
        self._module = module
        self.params = params

    def __getattr__(self, name):
        return getattr(self._module, name)


def quiesce_within(module, params, engine, journal):
    """A CeleryQuiesceManager for a quiesce inside another module's call: `params` as celery_quiesce takes
    them, checked against its argument spec (bad input fails here, before anything changes); it shares
    that call's Engine and journal, so that the two never write the journal over each other."""
    spec = dict(COMMON_OPTIONS)
    spec.update(QUIESCE_ARGUMENT_SPEC)
    checked = ArgumentSpecValidator(spec, **QUIESCE_RULES).validate(params)
    if checked.error_messages:
        raise BlueGreenError("quiesce: %s" % "; ".join(checked.error_messages))
    manager = CeleryQuiesceManager(_ModuleView(module, checked.validated_parameters), engine=engine,
                                   clock=time.monotonic, sleep=time.sleep)
    manager.journal = journal
    return manager
