#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: celery_quiesce
short_description: Drain and stop (or freeze) the Celery workers and beat of one color, and bring them back
version_added: 0.1.0
description:
  - Quiesces the Celery background work of one compose project (one color of an app) before a
    blue-green deploy starts the other color, so that a small host never runs two sets of workers,
    and never two schedulers.
  - With O(state=quiesced), beat is stopped first and the module checks with C(docker inspect) that
    its container has exited. Then, for every queue each worker consumes (read with
    C(celery inspect active_queues)), C(celery control cancel_consumer) makes the worker take no new
    work; C(celery inspect reserved) and C(celery inspect active) are polled until both are empty or
    O(drain_timeout) passes; and the workers are stopped with C(docker stop) and a grace period of
    O(stop_timeout) (O(mode=stop)), or frozen with C(docker pause) (O(mode=pause)).
  - With O(state=quiesced) and O(mode=shrink), only the workers' prefork pools are shrunk to
    O(keep_processes) each (C(celery control pool_shrink), no restart); beat and the consumers are left
    as they are, so the old release keeps working at a trickle while the new one starts. A later call
    with O(mode=stop) completes the drain and stop. After each C(pool_shrink) the module waits until
    C(celery inspect stats) no longer lists the ended process (billiard drops it at its next pool
    maintenance, up to 5 s later), so that no later call counts it and ends one process too many.
  - "billiard's C(pool_shrink) ends a process that no job of its pool names. A task handed to that
    process an instant before, whose start the process has not reported back yet, names none: it is
    ended as it starts, and Celery sees its worker lost. With C(task_acks_late) and
    C(task_reject_on_worker_lost) the task goes back to the queue and runs again; without them it is
    lost. O(mode=shrink) reads each worker's configuration (C(celery inspect conf)) before shrinking
    and warns when it does not set both."
  - With O(state=resumed), exactly the given containers are started (C(docker start)) or unfrozen
    (C(docker unpause)), never recreated; frozen workers consume their queues again
    (C(celery control add_consumer)); the module waits until each worker is ready, grows shrunk pools
    back (C(celery control pool_grow)) to the size a shrink recorded or to O(processes), then brings beat back.
  - Celery is reached with C(docker exec) into the worker containers, so the host needs no Celery.
    The broker is shared by both colors, so every Celery call names its destination node, found from
    the container's hostname (C(celery@<hostname>)) and confirmed with C(celery inspect ping); a worker
    started with another node name is found by a ping to all nodes, matched on C(@<hostname>).
  - Celery's remote C(shutdown) is never used (a C(restart) policy would bring the worker straight back).
  - Every input is checked before anything changes; no such project or service, a worker service in
    which no Celery worker answers, a O(celery_app) Celery cannot load (Celery's own message is shown),
    a negative timeout, and a pause that could outlast the broker's visibility timeout all fail with
    nothing stopped.
  - "Tasks still running when O(drain_timeout) passes are reported in RV(still_active) and in a warning. With
    O(mode=stop), C(docker stop) sends SIGTERM: Celery's warm shutdown lets those tasks finish for up to
    O(stop_timeout) seconds. A task still running after that is killed (SIGKILL). With
    C(task_acks_late) (as in the demo app) its message stays unacknowledged in the broker, and the broker
    redelivers it once its visibility timeout passes (Redis: one hour by default); without
    C(task_acks_late) such a task is lost. Set O(stop_timeout) above your longest task. With
    O(mode=pause), a task still running is frozen with its worker and finishes after O(state=resumed)."
extends_documentation_fragment:
  - lowspec.bluegreen._docker
  - lowspec.bluegreen._attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is stopped, cancelled or started; RV(containers) (or RV(resumed)) lists
        what would be stopped or frozen (or brought back), and RV(still_active) lists the tasks the
        workers run right now.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - Quiescing a project whose workers and beat are already stopped or frozen reports no change and
        an empty RV(containers); resuming containers that already run reports no change.
options:
  app:
    description:
      - The app, whose color O(color) is the compose project C(<app>-<color>).
      - Mutually exclusive with O(project); one of them is required.
    type: str
  color:
    description:
      - Which color of O(app) to act on. V(active) and V(idle) are read from the app's state file in
        O(state_dir).
      - Required with O(app).
    type: str
    choices: [blue, green, active, idle]
  project:
    description:
      - The compose project name, instead of O(app) and O(color).
    type: str
  state_dir:
    description:
      - Directory of the per-app state files, read to resolve O(color=active) and O(color=idle).
    type: path
    default: /var/lib/lowspec-bluegreen
  state:
    description:
      - V(quiesced) stops beat, drains the workers and stops or freezes them.
      - V(resumed) brings back the workers, then beat.
    type: str
    choices: [quiesced, resumed]
    default: quiesced
  mode:
    description:
      - How the workers are taken off the CPU with O(state=quiesced).
      - V(stop) stops them with C(docker stop) (SIGTERM, Celery's warm shutdown, SIGKILL after
        O(stop_timeout)). Their memory is freed.
      - V(pause) freezes them with C(docker pause) (cgroup freezer). It frees the CPU but B(holds all
        their memory) while frozen, and resumes in about a second. Consumers are cancelled and tasks
        drained first, as with V(stop), because a frozen worker keeps the messages it reserved. It is
        refused when O(drain_timeout) + O(max_pause) is not below O(visibility_timeout), because after the
        visibility timeout the broker gives a frozen worker's unacknowledged messages to another
        worker, and unfreezing would run them twice.
      - V(shrink) keeps the workers consuming with O(keep_processes) pool processes each (prefork pool
        only), so CPU and memory drop to a trickle while the task flow goes on. Beat keeps running. Each
        process is ended only when idle; under a backlog the worker's consumers are cancelled until one
        process is idle and added back right after. RV(containers) lists the shrunk workers with their
        pool sizes; pass it to O(state=resumed) to grow them back.
      - With V(stop) and V(pause), beat is always stopped (never frozen), so that a later beat only starts
        once it has exited.
    type: str
    choices: [stop, pause, shrink]
    default: stop
  keep_processes:
    description:
      - With O(mode=shrink), the pool processes each worker keeps. At least 1.
      - The shrink waits up to O(drain_timeout) for busy processes to become idle.
    type: int
    default: 1
  processes:
    description:
      - With O(state=resumed), grow each given worker that is running to this many pool processes
        (C(celery control pool_grow)) once it is ready; for example new workers started with a small warm-up
        concurrency. Never shrinks a pool.
      - When not given, a worker whose entry in O(containers) carries C(pool.before) (from a O(mode=shrink)
        call) is grown back to that size.
      - Pool sizes count the processes of each Celery node; the usual one node per container.
    type: int
  worker_services:
    description:
      - Compose services that run Celery workers.
    type: list
    elements: str
    default: [worker]
  beat_services:
    description:
      - Compose services that run Celery beat. Use V([]) for an app without beat.
    type: list
    elements: str
    default: [beat]
  celery_app:
    description:
      - The Celery app, as given to C(celery -A) inside the worker containers.
    type: str
    required: true
  celery_command:
    description:
      - The argv that runs Celery inside a worker container, for example V([python3, -m, celery]) when the
        image has no C(celery) executable (Debian's C(python3-celery)).
    type: list
    elements: str
    default: [celery]
  drain_timeout:
    description:
      - Seconds to wait, after the consumers are cancelled, for the workers' running and reserved tasks
        to finish. Past it the workers are stopped (or frozen) anyway, and the tasks still running are
        reported in RV(still_active).
    type: int
    default: 300
  stop_timeout:
    description:
      - Seconds C(docker stop) waits after SIGTERM before SIGKILL, for beat and for the workers (Celery's
        warm shutdown lets running tasks finish in that time). Never Docker's 10 second default.
    type: int
    default: 60
  ready_timeout:
    description:
      - With O(state=resumed), seconds to wait until each worker is ready, that is its Docker health
        check reports healthy or it answers C(celery inspect ping). A worker that was frozen is ready once
        it answered C(celery control add_consumer).
    type: int
    default: 120
  visibility_timeout:
    description:
      - The broker's visibility timeout in seconds (Celery's C(broker_transport_options)), for the
        O(mode=pause) guard. Redis's default is one hour.
    type: int
    default: 3600
  max_pause:
    description:
      - With O(mode=pause), the longest the workers are expected to stay frozen, in seconds (the caller's
        deploy and verify time). See O(mode).
    type: int
    default: 600
  containers:
    description:
      - With O(state=resumed), exactly the containers to bring back, all of the project. Either a list of
        container ids, or the list of dicts RV(containers) of an earlier O(state=quiesced) call (pass
        C({{ quiesce.containers }}) as it is); the dicts' C(queues) tell which queues a frozen
        worker consumes again.
      - Entries with C(pool) (from O(mode=shrink)) of a worker still running are grown back to C(pool.before).
      - When not given, the project's worker and beat containers. An empty list brings back nothing.
      - Ignored with O(state=quiesced).
    type: list
    elements: raw
  journal:
    description:
      - A JSON file on the host where each container is written down (with the project, its queues and its pool
        size) before this module stops, freezes or shrinks it. A run that never reaches its rescue (Ctrl-C, a
        controller or host lost midway, even while this module runs) so leaves behind what to put back.
      - With O(state=resumed), the journal's containers of this project are brought back too, beside
        O(containers), and are then taken out of it (the file is removed once empty). Those that no longer
        exist are skipped with a warning.
      - Not written in check mode. The role passes C(<state_dir>/<app>.quiesced.json) and removes it once a
        deploy or rollback has recorded its new color.
    type: path
  queues:
    description:
      - With O(state=resumed), the queues a frozen worker consumes again after C(docker unpause)
        (C(celery control add_consumer)), when O(containers) does not carry them (plain ids, or not given).
        A running worker that consumes no queue at all (left so by an interrupted quiesce) gets them too.
      - A worker started from scratch (it was stopped) consumes its configured queues by itself.
    type: list
    elements: str
    default: [celery]
notes:
  - On failure after something was changed, the result still carries RV(containers) (what was stopped
    or frozen so far) and RV(project), so a rescue can bring exactly those back.
  - A worker that is already stopped or frozen is left as it is by O(state=quiesced).
author:
  - lowspec.bluegreen developers (@lowspec)
seealso:
  - name: Celery workers guide, stopping the worker
    description: Warm shutdown, and what happens to tasks that are still running.
    link: https://docs.celeryq.dev/en/stable/userguide/workers.html#stopping-the-worker
  - name: Celery, Redis visibility timeout
    description: Why a frozen worker's unacknowledged messages are redelivered after it.
    link: https://docs.celeryq.dev/en/stable/getting-started/backends-and-brokers/redis.html#visibility-timeout
"""

EXAMPLES = r"""
---
- name: Quiesce the active color's Celery work before starting the new color
  lowspec.bluegreen.celery_quiesce:
    app: shop
    color: active
    celery_app: shop
    celery_command: [python3, -m, celery]
    drain_timeout: 120
    stop_timeout: 300
  register: quiesce

- name: Freeze the workers instead (frees CPU, keeps memory; resumes in about a second)
  lowspec.bluegreen.celery_quiesce:
    project: shop-blue
    celery_app: shop
    mode: pause
    max_pause: 900
    visibility_timeout: 3600

- name: Deploy, and bring back exactly what was quiesced if anything fails
  block:
    - name: Quiesce the old color
      lowspec.bluegreen.celery_quiesce:
        app: shop
        color: active
        celery_app: shop
        state: quiesced
      register: quiesce

    - name: Start the new color (any task that can fail)
      ansible.builtin.command: /usr/local/bin/start-new-color
      changed_when: true
  rescue:
    - name: Restart exactly the containers the quiesce stopped or froze, never recreate them
      lowspec.bluegreen.celery_quiesce:
        project: "{{ quiesce.project }}"
        celery_app: shop
        state: resumed
        containers: "{{ quiesce.containers | default([]) }}"
      when: quiesce.project is defined

    - name: Fail the play, naming the step
      ansible.builtin.fail:
        msg: "Deploy failed; the old color's workers and beat are back"

- name: Keep the old workers at one pool process each while the new color starts
  lowspec.bluegreen.celery_quiesce:
    project: shop-blue
    celery_app: shop
    mode: shrink
    keep_processes: 1
  register: shrink

- name: Grow new workers, started with a warm-up concurrency of 1, to their full pool
  lowspec.bluegreen.celery_quiesce:
    project: shop-green
    celery_app: shop
    state: resumed
    beat_services: []
    processes: 4

- name: Bring back every worker and beat container of a project
  lowspec.bluegreen.celery_quiesce:
    project: shop-blue
    celery_app: shop
    state: resumed
    ready_timeout: 180
"""

RETURN = r"""
changed:
  description: Whether any container was stopped, frozen, started or unfrozen, or any consumer cancelled or added.
  returned: always
  type: bool
  sample: true
project:
  description: The compose project acted on (resolved from O(app) and O(color) when given).
  returned: always
  type: str
  sample: shop-blue
containers:
  description:
    - The containers this call stopped or froze (with O(state=quiesced)), only those that were running,
      beat first. In check mode, those it would stop or freeze.
    - Pass it back as O(containers) with O(state=resumed) to restore exactly these.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Full container id.
      type: str
      sample: 8296434d8e9e2b1c0d5f7a3e6c4b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b
    service:
      description: Compose service of the container.
      type: str
      sample: worker
    action:
      description: V(stopped), V(paused) or V(shrunk).
      type: str
      sample: stopped
    pool:
      description: With O(mode=shrink), the worker's pool processes before and after the shrink.
      type: dict
      returned: when O(mode=shrink)
      sample: {before: 2, after: 1}
    queues:
      description: Queues whose consumers were cancelled in this worker (empty for beat).
      type: list
      elements: str
      sample: [celery]
  sample:
    - {id: 0c4e..., service: beat, action: stopped, queues: []}
    - {id: 8296..., service: worker, action: stopped, queues: [celery]}
queues:
  description: Per worker container id, the queues whose consumers were cancelled.
  returned: always
  type: dict
  sample: {8296434d8e9e2b1c0d5f7a3e6c4b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b: [celery]}
drained:
  description:
    - Whether the workers' active and reserved task lists were both empty before O(drain_timeout) passed.
    - V(true) when no worker needed draining. In check mode, whether the workers are idle right now.
    - Always V(false) with O(mode=shrink), because the workers go on consuming.
  returned: always
  type: bool
  sample: true
still_active:
  description:
    - Tasks the workers still held when O(drain_timeout) passed (in check mode, the tasks they hold now).
    - C(active) ones are running, see the module description for what happens to them; C(reserved) ones
      were prefetched but not started, and Celery's warm shutdown gives them back to the broker.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Celery task id.
      type: str
      sample: fb2fa019-40b2-4f4e-bdff-53b0cd20a24a
    name:
      description: Task name.
      type: str
      sample: tasks.work
    state:
      description: V(active) or V(reserved).
      type: str
      sample: active
    worker:
      description: Celery node name of the worker holding it.
      type: str
      sample: celery@8296434d8e9e
    container:
      description: Id of the worker's container.
      type: str
      sample: 8296434d8e9e2b1c0d5f7a3e6c4b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b
beat_stopped:
  description: The beat containers this call stopped, and whether all of them had exited (checked with
    C(docker inspect)) before any worker was touched.
  returned: always
  type: dict
  contains:
    containers:
      description: Ids of the beat containers stopped.
      type: list
      elements: str
    exited_before_workers:
      description: V(true) once every beat container was seen exited before the first worker call.
      type: bool
  sample: {containers: [0c4e5d6f...], exited_before_workers: true}
pools:
  description:
    - Per worker container id, its pool processes before and after this call, for the workers whose pool was
      read (O(mode=shrink)) or grown (O(state=resumed)). In check mode, the sizes it would reach.
  returned: always
  type: dict
  sample: {8296434d8e9e2b1c0d5f7a3e6c4b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b: {before: 2, after: 1}}
resumed:
  description: With O(state=resumed), ids of the containers started or unfrozen (or that would be, in check mode),
    workers first, then beat.
  returned: always
  type: list
  elements: str
  sample: [8296434d8e9e2b1c0d5f7a3e6c4b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b]
from_journal:
  description: With O(state=resumed) and O(journal), ids of the journal's containers of this project that were
    brought back beside O(containers) (written down by an earlier run that did not finish).
  returned: always
  type: list
  elements: str
  sample: [0c4e5d6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d]
timings:
  description:
    - Seconds spent per phase, rounded to 0.01.
    - With O(state=quiesced) C(beat), C(cancel), C(drain), C(stop) (stop or freeze) and C(total).
    - With O(mode=shrink) C(shrink) and C(total).
    - With O(state=resumed) C(start) (start and unfreeze the workers), C(ready) (until the workers are ready),
      C(grow) (when a pool was grown), C(beat) and C(total).
  returned: always
  type: dict
  sample: {beat: 0.52, cancel: 1.63, drain: 4.1, stop: 0.61, total: 8.9}
actions:
  description: The commands (docker and celery) that changed something, in order.
  returned: always
  type: list
  elements: str
  sample: ["stop --time 60 0c4e...", "exec 8296... python3 -m celery -A shop control cancel_consumer celery ..."]
warnings:
  description: Tasks still held when O(drain_timeout) passed, workers that did not answer while draining, workers
    whose configuration would lose a task that O(mode=shrink) ends as it starts, and similar conditions that
    did not stop the module.
  returned: when any
  type: list
  elements: str
"""

import time
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lowspec.bluegreen.plugins.module_utils._celery import (
    APP_ERROR,
    DEFAULT_REPLY_TIMEOUT,
    NO_REPLY,
    POOL_BUSY,
    broadcast_ping_argv,
    celery_argv,
    call_changes,
    classify_failure,
    node_name,
    nodes_of_host,
    parse_control,
    parse_ping,
    parse_pool_sizes,
    parse_queues,
    parse_redelivery,
    parse_tasks,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import (
    BlueGreenError,
    check_non_negative,
    other_color,
    project_name,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._compose import (
    DockerCLI,
    DockerCLIError,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._state import (
    journal_add,
    journal_without,
    read_journal,
    read_state,
    write_journal,
)

TIMEOUT_OPTIONS = ("drain_timeout", "stop_timeout", "ready_timeout", "visibility_timeout", "max_pause")
POLL_INTERVAL = 0.5
# Seconds to wait for billiard to drop an ended process from its list (its pool maintenance runs every 5 s).
POOL_SETTLE_TIMEOUT = 15


def _round(seconds):
    return round(seconds, 2)


class CeleryQuiesceManager:
    """One call of the module: resolve, validate, then quiesce or resume."""

    def __init__(self, module, cli=None, clock=time.monotonic, sleep=time.sleep):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.cli = cli or DockerCLI(module, docker_host=self.params["docker_host"])
        self.clock = clock
        self.sleep = sleep
        self.celery_command = list(self.params["celery_command"])
        self.celery_app = self.params["celery_app"]
        self.worker_services = list(self.params["worker_services"])
        self.beat_services = list(self.params["beat_services"])
        self.warnings = []
        self.result = {
            "changed": False,
            "project": None,
            "containers": [],
            "queues": {},
            "drained": True,
            "still_active": [],
            "beat_stopped": {"containers": [], "exited_before_workers": False},
            "resumed": [],
            "from_journal": [],
            "pools": {},
            "timings": {},
            "actions": [],
        }

    # -- inputs -----------------------------------------------------------

    def validate_params(self):
        check_non_negative(self.params, TIMEOUT_OPTIONS)
        if not self.celery_command or not all(self.celery_command):
            raise BlueGreenError("celery_command must be a non-empty argv list, for example [python3, -m, celery]")
        if not self.celery_app:
            raise BlueGreenError("celery_app must not be empty")
        if self.params["keep_processes"] < 1:
            raise BlueGreenError(
                "keep_processes must be 1 or more (got %d): a pool of 0 processes consumes nothing, use mode=stop"
                % self.params["keep_processes"]
            )
        if self.params["processes"] is not None and self.params["processes"] < 1:
            raise BlueGreenError("processes must be 1 or more (got %d)" % self.params["processes"])
        both = sorted(set(self.worker_services) & set(self.beat_services))
        if both:
            raise BlueGreenError("service %s is named in both worker_services and beat_services" % ", ".join(both))
        if self.params["state"] == "quiesced" and self.params["mode"] == "pause":
            drain, pause, vis = self.params["drain_timeout"], self.params["max_pause"], self.params["visibility_timeout"]
            if drain + pause >= vis:
                raise BlueGreenError(
                    "mode=pause refused: drain_timeout (%d s) + max_pause (%d s) = %d s is not below the broker's "
                    "visibility_timeout (%d s). A frozen worker keeps the messages it holds; after the visibility "
                    "timeout the broker hands them to another worker and unfreezing runs them twice. Use mode=stop, "
                    "or shorten the pause." % (drain, pause, drain + pause, vis)
                )
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
                        % (index, pool)
                    )
                targets.append({"id": item["id"].strip(), "queues": queues, "pool": before})
            else:
                raise BlueGreenError(
                    "containers[%d] must be a container id or a dict with an 'id' (as returned by state=quiesced), "
                    "got %r" % (index, item)
                )
        return targets

    def resolve_project(self):
        if self.params["project"]:
            return self.params["project"]
        app, color = self.params["app"], self.params["color"]
        if color in ("active", "idle"):
            state = read_state(self.params["state_dir"], app)
            active = state.get("active_color")
            if not active:
                raise BlueGreenError(
                    "color=%s: no active color is recorded for app %s in %s; pass color=blue or color=green"
                    % (color, app, self.params["state_dir"])
                )
            color = active if color == "active" else other_color(active)
        return project_name(app, color)

    def load_project(self, project):
        """The project's worker and beat containers; fails when the project or a service is missing."""
        containers = self.cli.project_containers(project)
        if not containers:
            raise BlueGreenError("compose project %s has no containers (no such project on this Docker host?)" % project)
        present = sorted({c["service"] for c in containers})
        for kind, names in (("worker_services", self.worker_services), ("beat_services", self.beat_services)):
            for name in names:
                if name not in present:
                    raise BlueGreenError(
                        "%s: service %s not found in project %s (its services: %s)"
                        % (kind, name, project, ", ".join(present))
                    )
        workers = [c for c in containers if c["service"] in self.worker_services]
        beats = [c for c in containers if c["service"] in self.beat_services]
        return containers, workers, beats

    # -- celery -----------------------------------------------------------

    def celery(self, container, call, nodes, queue=None, timeout=DEFAULT_REPLY_TIMEOUT):
        """Run one celery call in `container`, addressed to `nodes`; (rc, stdout, stderr)."""
        argv = celery_argv(self.celery_command, self.celery_app, call, nodes, queue=queue, timeout=timeout)
        rc, out, err = self.cli.exec_in(container["id"], argv, check=False)
        if call_changes(call):
            self.cli.actions.append("exec %s %s" % (container["id"][:12], " ".join(argv)))
        return rc, out, err

    def _control(self, container, call, nodes, argument, replied_only=False):
        """`celery control <call> <argument>` to `nodes`: {node: (ok, message)}.

        A node that did not reply counts as refused ("no reply from ..."), unless
        `replied_only` keeps just the nodes that answered.
        """
        rc, out, err = self.celery(container, call, nodes, queue=argument)
        if rc != 0:
            self._fail_celery(container, "celery control %s %s" % (call, argument), rc, out, err)
        answers = parse_control(out)
        if replied_only:
            return answers
        return {node: answers.get(node, (False, "no reply from %s" % node)) for node in nodes}

    def _fail_celery(self, container, what, rc, out, err):
        kind, message = classify_failure(rc, out, err)
        if kind == APP_ERROR:
            raise BlueGreenError(
                "celery_app=%s: Celery cannot load it in %s (service %s): %s"
                % (self.celery_app, container["name"], container["service"], message)
            )
        raise BlueGreenError(
            "%s in container %s (service %s) failed: %s"
            % (what, container["name"], container["service"], message)
        )

    def find_nodes(self, container):
        """Celery node names of the worker(s) in `container`, confirmed by ping; fails when none answers."""
        default = node_name(container["hostname"])
        rc, out, err = self.celery(container, "ping", [default])
        if rc == 0 and default in parse_ping(out):
            return [default]
        kind, message = classify_failure(rc, out, err)
        if rc != 0 and kind != NO_REPLY:
            self._fail_celery(container, "celery inspect ping", rc, out, err)
        # Not the default node name: ask every node, keep the ones of this container.
        argv = broadcast_ping_argv(self.celery_command, self.celery_app, timeout=2)
        rc2, out2, err2 = self.cli.exec_in(container["id"], argv, check=False)
        nodes = nodes_of_host(parse_ping(out2), container["hostname"]) if rc2 == 0 else []
        if not nodes:
            raise BlueGreenError(
                "service %s (container %s) is not a Celery worker: no worker answered as %s or as any node "
                "@%s (%s). Is it listed in worker_services by mistake?"
                % (container["service"], container["name"], default, container["hostname"], message)
            )
        return nodes

    def query_tasks(self, container, nodes, call):
        """{node: tasks} of `inspect active|reserved`, or None when the worker did not answer."""
        rc, out, err = self.celery(container, call, nodes)
        if rc != 0:
            _kind, message = classify_failure(rc, out, err)
            self.warnings.append("celery inspect %s in %s: %s" % (call, container["name"], message))
            return None
        tasks = parse_tasks(out)
        silent = [node for node in nodes if node not in tasks]
        if silent:
            # A node that did not reply (a loaded host answers late) holds an
            # unknown set of tasks: never read its silence as "drained".
            self.warnings.append("celery inspect %s in %s: no reply from %s" % (call, container["name"], ", ".join(silent)))
            return None
        return tasks

    # -- journal ----------------------------------------------------------

    def write_down(self, project, entries):
        """Journal the entries before the change they announce."""
        if self.params["journal"] and entries and not self.check_mode:
            path = self.params["journal"]
            write_journal(path, journal_add(read_journal(path), project, entries))

    def journal_targets(self, project, containers):
        """This project's journal entries as resume targets, for containers that still exist."""
        if not self.params["journal"]:
            return []
        try:
            entries = read_journal(self.params["journal"])
        except BlueGreenError as exc:
            # A rescue must not stop at a damaged journal: what it was given still comes back.
            self.warnings.append("%s; only the given containers are brought back" % exc)
            return []
        targets = []
        for entry in entries:
            if entry["project"] != project:
                continue
            matches = [c for c in containers if c["id"] == entry["id"]]
            if not matches:
                self.warnings.append("journal: container %s (service %s) no longer exists; skipped"
                                     % (entry["id"][:12], entry.get("service")))
                continue
            pool = entry.get("pool")
            targets.append({"id": entry["id"], "queues": entry.get("queues") or None,
                            "pool": pool.get("before") if isinstance(pool, dict) else None})
        return targets

    # -- quiesce ----------------------------------------------------------

    def quiesce(self, project):
        if self.params["mode"] == "shrink":
            self.shrink(project)
            return
        started = self.clock()
        timings = self.result["timings"]
        _all, workers, beats = self.load_project(project)
        running_workers = [c for c in workers if c["running"]]
        beats_to_stop = [c for c in beats if c["running"] or c["paused"]]
        nodes = {}
        for container in running_workers:
            nodes[container["id"]] = self.find_nodes(container)

        action = "paused" if self.params["mode"] == "pause" else "stopped"
        planned = [{"id": c["id"], "service": c["service"], "action": "stopped", "queues": []} for c in beats_to_stop]
        planned += [{"id": c["id"], "service": c["service"], "action": action, "queues": []} for c in running_workers]
        if not planned:
            # No beat runs (already stopped, e.g. by an interrupted deploy): none can send beside the new one.
            self.result["beat_stopped"]["exited_before_workers"] = True
            timings["total"] = _round(self.clock() - started)
            return
        if self.check_mode:
            self.result["changed"] = True
            self.result["containers"] = planned
            self.result["beat_stopped"]["containers"] = [c["id"] for c in beats_to_stop]
            still = self._held_tasks(running_workers, nodes)
            self.result["still_active"] = still or []
            self.result["drained"] = still == []
            timings["total"] = _round(self.clock() - started)
            return

        # 1. Beat first, and see it exited (rule 3).
        mark = self.clock()
        if beats_to_stop:
            self.result["changed"] = True
            self.write_down(project, [p for p in planned if p["service"] in self.beat_services])
            self.cli.container_op("stop", [c["id"] for c in beats_to_stop], timeout=self.params["stop_timeout"])
            self.result["containers"].extend(p for p in planned if p["service"] in self.beat_services)
            self.result["beat_stopped"]["containers"] = [c["id"] for c in beats_to_stop]
            self._wait_exited(beats_to_stop, self.params["stop_timeout"] + 10, "beat")
        self.result["beat_stopped"]["exited_before_workers"] = True
        timings["beat"] = _round(self.clock() - mark)

        # 2. Cancel every consumer of every worker.
        mark = self.clock()
        for container in running_workers:
            self.result["changed"] = True
            entry = [p for p in planned if p["id"] == container["id"]][0]
            # Written down with its queues before they are cancelled: a worker left consuming
            # nothing gets exactly those back.
            cancelled = self._cancel_consumers(
                container, nodes[container["id"]], before=lambda queues, e=entry: self.write_down(
                    project, [dict(e, queues=queues)]))
            self.result["queues"][container["id"]] = cancelled
            entry["queues"] = cancelled
        timings["cancel"] = _round(self.clock() - mark)

        # 3. Drain: reserved, then active, until both are empty or the deadline passes.
        mark = self.clock()
        deadline = mark + self.params["drain_timeout"]
        while True:
            still = self._held_tasks(running_workers, nodes)
            if still == []:
                self.result["drained"] = True
                self.result["still_active"] = []
                break
            self.result["drained"] = False
            self.result["still_active"] = still or []
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            self.sleep(min(POLL_INTERVAL, remaining))
        timings["drain"] = _round(self.clock() - mark)
        if self.result["still_active"]:
            self.warnings.append(
                "%d task(s) still held when drain_timeout (%s s) passed, left to %s: %s" % (
                    len(self.result["still_active"]), self.params["drain_timeout"],
                    "the pause (they resume with the worker)" if self.params["mode"] == "pause"
                    else "the warm shutdown (stop_timeout %s s), then to redelivery" % self.params["stop_timeout"],
                    ", ".join("%s[%s] %s" % (t["name"], t["id"], t["state"]) for t in self.result["still_active"])))

        # 4. Stop (warm shutdown, stop_timeout grace) or freeze.
        mark = self.clock()
        ids = [c["id"] for c in running_workers]
        if ids:
            if self.params["mode"] == "pause":
                self.cli.container_op("pause", ids)
            else:
                self.cli.container_op("stop", ids, timeout=self.params["stop_timeout"])
                self._wait_exited(running_workers, 10, "worker")
            self.result["containers"].extend(p for p in planned if p["service"] in self.worker_services)
        timings["stop"] = _round(self.clock() - mark)
        timings["total"] = _round(self.clock() - started)

    # -- shrink -----------------------------------------------------------

    def shrink(self, project):
        """Shrink each running worker's pool to keep_processes; beat and consumers are left alone."""
        started = self.clock()
        keep = self.params["keep_processes"]
        _all, workers, _beats = self.load_project(project)
        running_workers = [c for c in workers if c["running"]]
        # The workers go on consuming: nothing is drained.
        self.result["drained"] = False
        plans = []
        for container in running_workers:
            nodes = self.find_nodes(container)
            sizes = self.pool_sizes(container, nodes)
            before = sum(sizes.values())
            self.result["pools"][container["id"]] = {"before": before, "after": before}
            if any(size > keep for size in sizes.values()):
                plans.append((container, nodes, sizes))
                self.check_redelivery(container, nodes)
        if not plans:
            self.result["timings"]["total"] = _round(self.clock() - started)
            return
        self.result["changed"] = True
        deadline = self.clock() + self.params["drain_timeout"]
        for container, nodes, sizes in plans:
            entry = {"id": container["id"], "service": container["service"], "action": "shrunk", "queues": [],
                     "pool": {"before": sum(sizes.values()), "after": keep * len(sizes)}}
            # Listed before the first call: a failure midway still tells the rescue what to grow back.
            self.result["containers"].append(entry)
            if self.check_mode:
                continue
            self.write_down(project, [entry])
            for node in sorted(sizes):
                self._shrink_node(container, node, sizes[node], keep, deadline)
            self.result["pools"][container["id"]]["after"] = entry["pool"]["after"]
        self.result["timings"]["shrink"] = _round(self.clock() - started)
        self.result["timings"]["total"] = _round(self.clock() - started)

    def check_redelivery(self, container, nodes):
        """Warn when a task that pool_shrink ends as it starts would be lost rather than redelivered.

        billiard ends a process no job of its pool names; a job handed to it an
        instant before, whose start the process has not reported back yet, names
        none. Celery then sees that task's worker lost: with task_acks_late and
        task_reject_on_worker_lost it is put back in the queue, otherwise it is gone.
        """
        rc, out, err = self.celery(container, "conf", nodes)
        if rc != 0:
            _kind, message = classify_failure(rc, out, err)
            self.warnings.append("celery inspect conf in %s: %s; whether a task ended by pool_shrink is "
                                 "redelivered is unknown" % (container["name"], message))
            return
        redelivered = parse_redelivery(out)
        unsafe = [node for node in nodes if not redelivered.get(node, False)]
        if unsafe:
            self.warnings.append(
                "%s (%s): the Celery configuration does not set both task_acks_late and task_reject_on_worker_lost, "
                "so a task that pool_shrink ends at the instant it starts is lost, not redelivered; set both "
                "(or on every task) to use mode=shrink safely" % (", ".join(unsafe), container["name"]))

    def pool_sizes(self, container, nodes):
        rc, out, err = self.celery(container, "stats", nodes)
        if rc != 0:
            self._fail_celery(container, "celery inspect stats", rc, out, err)
        sizes = parse_pool_sizes(out)
        silent = [node for node in nodes if node not in sizes]
        if silent:
            raise BlueGreenError("celery inspect stats in %s: no reply from %s" % (container["name"], ", ".join(silent)))
        return {node: sizes[node] for node in nodes}

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
                ok, message = self._control(container, "pool_shrink", [node], 1)[node]
                if ok:
                    return
                if POOL_BUSY not in message:
                    raise BlueGreenError("pool_shrink refused by %s: %s" % (node, message))
                if self.clock() >= deadline:
                    raise BlueGreenError(
                        "worker %s: no pool process became idle within drain_timeout (%d s) to shrink the pool to %d"
                        % (container["name"], self.params["drain_timeout"], keep)
                    )
                if not cancelled:
                    cancelled = self._cancel_consumers(container, [node])
                self.sleep(POLL_INTERVAL / 5)
        finally:
            if cancelled:
                self._add_consumers(container, cancelled, max(deadline, self.clock() + DEFAULT_REPLY_TIMEOUT), [node])

    def _wait_pool_size(self, container, node, wanted, deadline):
        """Poll `inspect stats` until `node` has `wanted` processes."""
        while True:
            size = self.pool_sizes(container, [node])[node]
            if size == wanted:
                return size
            if self.clock() >= deadline:
                raise BlueGreenError(
                    "worker %s: pool has %d processes, %d expected, when the deadline passed"
                    % (container["name"], size, wanted)
                )
            self.sleep(POLL_INTERVAL / 2)

    def _grow(self, container, nodes, sizes, wanted):
        """pool_grow each node of a running worker short of `wanted` processes; {before, after}."""
        short = {node: wanted - size for node, size in sizes.items() if size < wanted}
        before = sum(sizes.values())
        pool = {"before": before, "after": before + sum(short.values())}
        if self.check_mode:
            return pool
        for node in sorted(short):
            ok, message = self._control(container, "pool_grow", [node], short[node])[node]
            if not ok:
                raise BlueGreenError("pool_grow refused by %s: %s" % (node, message))
        # Not awaited: the new processes fork and import in the background (seconds
        # on a small host), and nothing here depends on them being up.
        return pool

    def _cancel_consumers(self, container, nodes, before=None):
        """Cancel every queue the nodes consume; `before(queues)` is called first."""
        rc, out, err = self.celery(container, "active_queues", nodes)
        if rc != 0:
            self._fail_celery(container, "celery inspect active_queues", rc, out, err)
        by_node = parse_queues(out)
        queues = sorted({q for node in nodes for q in by_node.get(node, [])})
        if before is not None:
            before(queues)
        for queue in queues:
            targets = [node for node in nodes if queue in by_node.get(node, [])]
            answers = self._control(container, "cancel_consumer", targets, queue, replied_only=True)
            failed = ["%s: %s" % (node, msg) for node, (ok, msg) in sorted(answers.items()) if not ok]
            if failed:
                raise BlueGreenError("cancel_consumer %s refused by %s" % (queue, "; ".join(failed)))
        return queues

    def _held_tasks(self, workers, nodes):
        """Tasks the workers hold ([] when none), or None when a worker did not answer.

        `reserved` is read before `active`: a reserved task can only move to
        active, never back, and with the consumers cancelled nothing new is
        reserved; so two empty answers in this order mean drained.
        """
        held, unknown = [], False
        for container in workers:
            for call in ("reserved", "active"):
                tasks = self.query_tasks(container, nodes[container["id"]], call)
                if tasks is None:
                    unknown = True
                    continue
                for node in sorted(tasks):
                    for task in tasks[node]:
                        held.append({"id": task["id"], "name": task["name"], "state": call,
                                     "worker": node, "container": container["id"]})
        held.sort(key=lambda t: (t["state"] != "active", t["worker"], t["id"]))
        if unknown:
            return held or None
        return held

    def _wait_exited(self, containers, timeout, what):
        ids = [c["id"] for c in containers]
        deadline = self.clock() + timeout
        while True:
            live = [c for c in self.cli.inspect_containers(ids) if c["running"] or c["paused"]]
            if not live:
                return
            if self.clock() >= deadline:
                raise BlueGreenError(
                    "%s container(s) %s still running after docker stop" % (what, ", ".join(c["name"] for c in live))
                )
            self.sleep(0.2)

    # -- resume -----------------------------------------------------------

    def resume(self, project):
        started = self.clock()
        timings = self.result["timings"]
        containers, workers, beats = self.load_project(project)
        queues_for, pool_for = {}, {}
        from_journal = self.journal_targets(project, containers)
        if self.resume_targets is None:
            targets = workers + beats
            for target in from_journal:
                if target["queues"] is not None:
                    queues_for[target["id"]] = target["queues"]
                if target["pool"] is not None:
                    pool_for[target["id"]] = target["pool"]
        else:
            targets = []
            given = [t["id"] for t in self.resume_targets]
            extra = [t for t in from_journal if not any(t["id"].startswith(g) for g in given)]
            self.result["from_journal"] = [t["id"] for t in extra]
            for target in self.resume_targets + extra:
                matches = [c for c in containers if c["id"].startswith(target["id"])]
                if len(matches) != 1:
                    raise BlueGreenError(
                        "containers: %s is not a container of project %s" % (target["id"], project)
                        if not matches else "containers: %s matches several containers" % target["id"]
                    )
                if matches[0]["id"] not in [t["id"] for t in targets]:
                    targets.append(matches[0])
                if target["queues"] is not None:
                    queues_for[matches[0]["id"]] = target["queues"]
                if target["pool"] is not None:
                    pool_for[matches[0]["id"]] = target["pool"]
        for target in targets:
            if target["state"] not in ("running", "paused", "exited", "created"):
                raise BlueGreenError(
                    "container %s (service %s) is %s and cannot be resumed" % (target["name"], target["service"], target["state"])
                )
        first = [c for c in targets if c["service"] not in self.beat_services]
        last = [c for c in targets if c["service"] in self.beat_services]
        to_unpause = [c for c in first if c["paused"]]
        to_start = [c for c in first if not c["running"] and not c["paused"]]
        # Every running worker of the project, given or not: one left consuming
        # nothing by an interrupted quiesce gets its queues back.
        running_workers = [c for c in workers if c["running"]]
        beat_unpause = [c for c in last if c["paused"]]
        beat_start = [c for c in last if not c["running"] and not c["paused"]]

        # Check before changing anything: every running worker answers as a Celery worker.
        nodes = {}
        for container in running_workers:
            nodes[container["id"]] = self.find_nodes(container)
        starving = []
        for container in running_workers:
            rc, out, err = self.celery(container, "active_queues", nodes[container["id"]])
            if rc != 0:
                self._fail_celery(container, "celery inspect active_queues", rc, out, err)
            by_node = parse_queues(out)
            if not any(by_node.get(node) for node in nodes[container["id"]]):
                starving.append(container)
        # Running workers to grow: back to the size a shrink recorded, or to `processes`.
        target_ids = {c["id"] for c in targets}
        to_grow = []
        for container in running_workers:
            wanted = self.params["processes"] or pool_for.get(container["id"])
            if container["id"] in target_ids and wanted:
                sizes = self.pool_sizes(container, nodes[container["id"]])
                if any(size < wanted for size in sizes.values()):
                    to_grow.append((container, sizes, wanted))

        order = to_unpause + to_start + beat_unpause + beat_start
        self.result["resumed"] = [c["id"] for c in to_unpause + to_start] + [c["id"] for c in beat_unpause + beat_start]
        if not order and not starving and not to_grow:
            self._forget(project)
            timings["total"] = _round(self.clock() - started)
            return
        self.result["changed"] = True
        if self.check_mode:
            for container, sizes, wanted in to_grow:
                self.result["pools"][container["id"]] = self._grow(container, nodes[container["id"]], sizes, wanted)
            timings["total"] = _round(self.clock() - started)
            return

        mark = self.clock()
        self.cli.container_op("unpause", [c["id"] for c in to_unpause])
        self.cli.container_op("start", [c["id"] for c in to_start])
        timings["start"] = _round(self.clock() - mark)

        mark = self.clock()
        deadline = mark + self.params["ready_timeout"]
        for container in to_unpause + starving:
            if container["service"] not in self.worker_services:
                continue
            wanted = queues_for.get(container["id"], self.params["queues"])
            self._add_consumers(container, wanted, deadline, nodes.get(container["id"]))
        self._wait_ready([c for c in to_start if c["service"] in self.worker_services], deadline)
        timings["ready"] = _round(self.clock() - mark)

        if to_grow:
            mark = self.clock()
            for container, sizes, wanted in to_grow:
                self.result["pools"][container["id"]] = self._grow(container, nodes[container["id"]], sizes, wanted)
            timings["grow"] = _round(self.clock() - mark)

        mark = self.clock()
        self.cli.container_op("unpause", [c["id"] for c in beat_unpause])
        self.cli.container_op("start", [c["id"] for c in beat_start])
        beat_ids = [c["id"] for c in beat_unpause + beat_start]
        if beat_ids:
            down = [c["name"] for c in self.cli.inspect_containers(beat_ids) if not c["running"]]
            if down:
                raise BlueGreenError("beat container(s) %s did not stay running after start" % ", ".join(down))
        timings["beat"] = _round(self.clock() - mark)
        self._forget(project)
        timings["total"] = _round(self.clock() - started)

    def _forget(self, project):
        """Everything of the project is back: its journal entries are done with."""
        path = self.params["journal"]
        if path and not self.check_mode:
            try:
                entries = read_journal(path)
            except BlueGreenError:
                return  # already warned about by journal_targets
            if any(entry["project"] == project for entry in entries):
                write_journal(path, journal_without(entries, project))

    def _add_consumers(self, container, queues, deadline, nodes=None):
        """add_consumer for each queue; its reply is the worker's readiness answer."""
        nodes = nodes or [node_name(container["hostname"])]
        for queue in queues:
            while True:
                remaining = max(deadline - self.clock(), 0.5)
                rc, out, err = self.celery(container, "add_consumer", nodes, queue=queue,
                                           timeout=min(DEFAULT_REPLY_TIMEOUT, remaining))
                answers = parse_control(out) if rc == 0 else {}
                if answers and all(ok for ok, _msg in answers.values()):
                    break
                if self.clock() >= deadline:
                    _kind, message = classify_failure(rc, out, err) if rc != 0 else (None, str(answers))
                    raise BlueGreenError(
                        "worker %s did not take back queue %s within ready_timeout (%d s): %s"
                        % (container["name"], queue, self.params["ready_timeout"], message)
                    )
                self.sleep(POLL_INTERVAL)

    def _wait_ready(self, workers, deadline):
        """Until each started worker is healthy (Docker) or answers ping, or the deadline."""
        pending = {c["id"]: c for c in workers}
        while pending:
            for current in self.cli.inspect_containers(list(pending)):
                if current["health"] == "healthy":
                    pending.pop(current["id"], None)
                    continue
                if not current["running"]:
                    continue
                node = node_name(current["hostname"])
                remaining = max(min(deadline - self.clock(), 2.0), 0.5)
                rc, out, _err = self.celery(current, "ping", [node], timeout=remaining)
                if rc == 0 and node in parse_ping(out):
                    pending.pop(current["id"], None)
            if not pending:
                return
            if self.clock() >= deadline:
                states = self.cli.inspect_containers(list(pending))
                raise BlueGreenError(
                    "worker(s) not ready within ready_timeout (%d s): %s" % (
                        self.params["ready_timeout"],
                        ", ".join("%s (%s, health %s)" % (c["name"], c["state"], c["health"]) for c in states),
                    )
                )
            self.sleep(POLL_INTERVAL)

    # -- run --------------------------------------------------------------

    def run(self):
        self.validate_params()
        project = self.resolve_project()
        self.result["project"] = project
        self.cli.info()
        if self.params["state"] == "quiesced":
            self.quiesce(project)
        else:
            self.resume(project)
        return self.finish()

    def finish(self):
        self.result["actions"] = list(self.cli.actions)
        if self.warnings:
            self.result["warnings"] = list(self.warnings)
        return self.result


def main():
    argument_spec = dict(
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
        celery_app=dict(type="str", required=True),
        celery_command=dict(type="list", elements="str", default=["celery"]),
        drain_timeout=dict(type="int", default=300),
        stop_timeout=dict(type="int", default=60),
        ready_timeout=dict(type="int", default=120),
        visibility_timeout=dict(type="int", default=3600),
        max_pause=dict(type="int", default=600),
        containers=dict(type="list", elements="raw"),
        journal=dict(type="path"),
        queues=dict(type="list", elements="str", default=["celery"]),
        docker_host=dict(type="str"),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[("app", "project")],
        required_one_of=[("app", "project")],
        required_together=[("app", "color")],
        supports_check_mode=True,
    )
    manager = None
    try:
        manager = CeleryQuiesceManager(module)
        result = manager.run()
    except DockerCLIError as exc:
        partial = manager.finish() if manager else {}
        partial.update(exc.details())
        module.fail_json(msg=str(exc), **partial)
    except BlueGreenError as exc:
        partial = manager.finish() if manager else {}
        module.fail_json(msg=str(exc), **partial)
    except Exception as exc:  # pylint: disable=broad-except
        partial = manager.finish() if manager else {}
        module.fail_json(msg="unexpected error: %s" % exc, exception=traceback.format_exc(), **partial)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
