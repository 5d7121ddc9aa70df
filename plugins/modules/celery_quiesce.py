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
  - With O(state=quiesced), beat is told to stop first (C(docker stop), written to the journal before). Then,
    for every queue each worker consumes (read with C(celery inspect active_queues)),
    C(celery control cancel_consumer) makes the worker take no new work; C(celery inspect reserved) and
    C(celery inspect active) are polled until both are empty or O(drain_timeout) passes; with a Redis broker the
    module then waits until no worker waits in a fetch from the broker (below); and the workers are
    told to stop with C(docker stop) and a grace period of O(stop_timeout) (O(mode=stop)), or frozen with
    C(docker pause) (O(mode=pause)). The module then waits until beat and the workers have exited, seen with
    C(docker inspect) (not assumed from a signal), and checks the broker (below).
  - With O(wait_exited=false), the call returns once the workers are drained and told to stop, their warm
    shutdown going on in a C(docker stop) of its own (SIGKILL at the end of O(stop_timeout) as always); a later
    call with the same arguments and O(wait_exited=true) sees them exited and checks the broker. A deploy starts
    the new web in between, as the drained workers take no work and their shutdown costs little CPU, and the new
    beat and workers start only after that later call.
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
  - "B(No message is left with a worker that is gone.) With O(broker_check) and a Redis broker, once the workers
    have stopped (or frozen), the module reads the broker's own record of delivered-but-unacknowledged messages.
    Every message in it that was delivered before the workers stopped and that no live worker holds (a worker
    killed at the end of its grace period, or one whose consumer lost its broker connection and forgot what it
    had reserved) is put back in its queue, once (read and removed in one transaction), and reported in
    RV(restored); otherwise the broker would hand it out again only after its visibility timeout."
  - "B(No message is taken by a worker that stops.) A worker of the Redis transport waits for work in a blocking
    fetch (C(BRPOP)) of up to its C(brpop_timeout) (1 s by default); a cancelled consumer starts no new one, but
    the last one is still waiting. A message the broker hands to it after the worker was told to stop is gone:
    the stopping worker no longer reads the reply, and the message never reaches the unacknowledged record. So
    the module lists the broker's connections (C(CLIENT LIST)) from the workers' addresses and stops or freezes
    them only when none waits in a fetch any more (a message that last fetch brought is given back to its
    queue by the worker, which no longer consumes it). When the broker sees no connection from those addresses
    (NAT, host networking) or Celery is reached through the CLI, the module waits the fetch timeout (plus
    0.5 s) after the cancel instead. It fails, with nothing stopped, when a fetch still waits 5 s past three fetch
    timeouts: some other consumer runs in that container."
  - With O(state=resumed), exactly the given containers and the O(journal)'s containers of the project (with
    neither, all its worker and beat containers) are started (C(docker start)) or unfrozen
    (C(docker unpause)), never recreated; frozen workers consume their queues again
    (C(celery control add_consumer)); the module waits until each worker answers Celery's ping, grows shrunk
    pools back (C(celery control pool_grow)) to the size a shrink recorded or to O(processes), then brings beat
    back.
  - B(Celery is reached through one agent process per call.) The module runs one C(docker exec -i) into a
    running container of the project that stays up (O(control_service); else into the workers themselves),
    which imports Celery and the app once, keeps one broker connection and answers every inspect and control
    call of this module call, so that a poll costs a broker round trip (the drain polls every 0.2 s). The host
    needs no Celery. When no agent can start (no Python found in the image), the module falls back to one
    C(celery -A app inspect|control) command per call, and says so in a warning and in RV(celery).
  - The broker is shared by both colors, so every Celery call that changes a worker names its destination
    node, found from the container's hostname (C(celery@<hostname>)) and confirmed with a ping; a worker
    started with another node name is found by a ping to all nodes, matched on C(@<hostname>).
  - Celery's remote C(shutdown) is never used (a C(restart) policy would bring the worker straight back).
  - B(Long waits show progress.) With O(wait_slice) and O(journal), one call waits at most that many seconds for
    the drain (or the workers' readiness); when the wait is not over, it returns RV(waiting) and a RV(progress)
    sentence, and the next call with the same arguments goes on where it stopped, under the same deadline
    (kept in the journal). Repeat the task with C(until) and C(retries).
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
  - lowspec.bluegreen._common
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
  control_service:
    description:
      - The service whose running container runs the Celery agent (see the description); it needs Celery and the
        app, as a web of the same image has, and it must stay up while the workers stop, so that the broker can
        be checked after them.
      - When empty, the project's running containers that are neither workers nor beat are tried, then the
        workers themselves.
    type: str
    default: ""
  wait_slice:
    description:
      - The longest one call waits for the drain or the workers' readiness, in seconds; see the description.
        V(0) (and any call without O(journal)) waits in one call.
    type: int
    default: 0
  wait_exited:
    description:
      - Wait, in this call, until the containers told to stop have exited, then check the broker. See the
        description for V(false).
    type: bool
    default: true
  missing_services:
    description:
      - What a service of O(worker_services) or O(beat_services) without a container in the project means.
      - V(fail) (the default) fails before anything changes, naming the service, so that a misspelt name
        does not leave a worker or a beat running unnoticed.
      - V(ignore) is for a color that failed during its start (the role's rescue drains a failed new color this
        way). A service without a container is left out; a worker container that answers no Celery ping (still
        booting, or crash-looping) consumes nothing and is stopped without a drain, with a warning; the other
        workers are drained as usual, and the broker check still runs.
    type: str
    choices: [fail, ignore]
    default: fail
  broker_check:
    description:
      - After the workers stop (or freeze), put back the messages a gone worker left unacknowledged in a Redis
        broker (see the description). Other brokers are not checked (RV(broker_checked) is V(false)).
    type: bool
    default: true
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
      - With O(state=resumed), seconds to wait until each worker is ready, that is it answers Celery's ping
        (asked from a container that is already up), whatever its Docker health says. A worker that was frozen
        is ready once it answered C(celery control add_consumer).
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
      - With O(state=resumed), the containers to bring back (beside the journal's), all of the project. Either a list of
        container ids, or the list of dicts RV(containers) of an earlier O(state=quiesced) call (pass
        C({{ quiesce.containers }}) as it is); the dicts' C(queues) tell which queues a frozen
        worker consumes again.
      - Entries with C(pool) (from O(mode=shrink)) of a worker still running are grown back to C(pool.before).
      - When not given and the journal lists none of the project, the project's worker and beat containers. An
        empty list brings back only the journal's.
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
      - It also keeps the start of a wait that spans several calls (O(wait_slice)).
      - Not written in check mode. The role passes C(<state_dir>/<app>.quiesced.json) and removes it once a
        deploy or rollback has recorded its new color. With O(journal), RV(containers) lists the journal's
        entries of the project.
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
  pressure:
    description:
      - With O(state=resumed), before pools grow (O(processes), or back to a shrink's size), wait until the host
        has settled (see M(lowspec.bluegreen.host_pressure)); if it does not within O(pressure.wait_timeout), the
        pools keep their size and a warning says how to grow them later. Workers are started and beat comes back
        whatever the pressure.
    type: dict
    suboptions:
      cpu_some_avg10_max:
        description: Highest CPU pressure (C(some avg10), percent) to grow at.
        type: float
        default: 80
      memory_some_avg10_max:
        description: Highest memory pressure (C(some avg10), percent) to grow at.
        type: float
        default: 20
      mem_available_min_mb:
        description: Least C(MemAvailable), in MB.
        type: int
        default: 128
      disk_free_min_mb:
        description: Not used here (accepted so that one set of pressure options fits every module).
        type: int
        default: 1024
      wait_timeout:
        description: Seconds to wait for the host to settle.
        type: int
        default: 120
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
    at:
      description:
        - When the container was first written down, just before its first change (its consumers cancelled, its
          stop, freeze or shrink), in seconds since the epoch; the earliest is when the deploy first touched the
          running app.
      type: float
      returned: when written down (not in check mode)
      sample: 1764650000.125
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
  description: The beat containers this call told to stop, and whether every container told to stop was seen
    exited (with C(docker inspect)) before the call ended.
  returned: always
  type: dict
  contains:
    containers:
      description: Ids of the beat containers stopped.
      type: list
      elements: str
    exited:
      description: V(true) once every container told to stop was seen exited.
      type: bool
  sample: {containers: [0c4e5d6f...], exited: true}
stopping:
  description: Ids of the containers told to stop that had not exited yet when the call ended (O(wait_exited=false),
    or a slice that ended first).
  returned: always
  type: list
  elements: str
  sample: []
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
restored:
  description:
    - The messages a gone worker had left unacknowledged that this call put back in their queue (see the
      description), with the task's id and name, the queue, and when they had been delivered.
  returned: always
  type: list
  elements: dict
  sample: [{id: fb2fa019-40b2-4f4e-bdff-53b0cd20a24a, task: tasks.work, queue: celery, delivered_at: 1796160000.5}]
broker_checked:
  description: Whether the broker's unacknowledged messages were checked after the workers stopped.
  returned: always
  type: bool
  sample: true
waiting:
  description: Whether the call ended before its wait did (O(wait_slice)); call it again to go on.
  returned: always
  type: bool
  sample: false
progress:
  description: What the call waits for and how long the wait has left, when RV(waiting).
  returned: when RV(waiting)
  type: str
  sample: "the old workers of shop-blue draining (1 task(s) held: tasks.work[fb2f...]): 10 s of 300 s waited, 290 s left"
celery:
  description: How Celery was reached - C(transport) V(agent) or V(cli), the container, the number of calls, and
    for the agent its boot, wall and CPU seconds.
  returned: when Celery was asked
  type: dict
  sample: {transport: agent, container: shop-blue-web-1, calls: 9, boot_s: 0.4, cpu_s: 0.3, wall_s: 3.2}
timings:
  description:
    - Seconds spent per phase, rounded to 0.01.
    - With O(state=quiesced) C(cancel), C(drain), C(fetch) (until no worker waited in a fetch from the broker),
      C(stop) (the stop issued, or the freeze), C(exit) (until every
      container told to stop had exited), C(broker) and C(total).
    - With O(mode=shrink) C(shrink) and C(total).
    - With O(state=resumed) C(start) (start and unfreeze the workers), C(ready) (until the workers are ready),
      C(grow) (when a pool was grown), C(beat) and C(total).
  returned: always
  type: dict
  sample: {cancel: 0.05, drain: 1.1, fetch: 0.3, stop: 0.03, exit: 2.1, broker: 0.04, total: 4.5}
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

from ansible_collections.lowspec.bluegreen.plugins.module_utils._module import (
    run_module,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._quiesce import (
    QUIESCE_ARGUMENT_SPEC as ARGUMENT_SPEC,
    QUIESCE_RULES,
    CeleryQuiesceManager,
)


def main():
    run_module(CeleryQuiesceManager, ARGUMENT_SPEC, **QUIESCE_RULES)


if __name__ == "__main__":
    main()
