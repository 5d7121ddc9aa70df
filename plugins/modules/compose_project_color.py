#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compose_project_color
short_description: Prepare, start in stages, stop, freeze or remove one color of a blue-green Compose app, and record the active color
version_added: 0.1.0
description:
  - Manages one color (V(blue) or V(green)) of an app deployed blue-green with Docker Compose. Each color is its
    own Compose project C(<app>-<color>) made from the same compose files.
  - Records which color is active in a small state file on the host, C(<state_dir>/<app>.json), written
    atomically (temporary file, C(fsync), rename; mode V(0644)) with a bounded history of recent deploys.
  - "Each deploy phase is one call that does its own bounded waiting: O(state=prepared) checks everything a deploy
    needs before it touches anything (and brings the O(shared) project up); O(state=started) waits for host
    pressure, starts the services, and waits until they are ready - the web healthy on its own port (O(health)),
    the Celery workers answering a ping (O(celery)) - then, with O(switch), moves traffic to the healthy web,
    starts beat after the other color's has exited, and with O(activate) records the color as active."
  - Containers are reached through the Docker SDK; Compose runs as the Compose CLI. Every command is an
    argument list (never a shell). O(env) reaches Compose through its environment, never its command line. The
    module always sets C(BLUEGREEN_COLOR) to the color it acts on, C(BLUEGREEN_RELEASE) when O(release) is set,
    and the variable O(web_port_variable) to the color's port in O(web_ports), over any value O(env) gives them.
  - Every container O(state=started) creates carries the label C(io.lowspec.bluegreen.release) with its release
    (added through a generated compose file listed after O(files)), so that what a color runs is read, not guessed.
  - B(Which color is active.) The state file's color is checked against what runs, the O(web_service)
    containers of both colors (for O(state=inspect), O(state=prepared), and O(color=active) or O(color=idle); a
    call that names the color and acts on it reads no more than that color). The resolutions below apply in
    this order; all but 1 and 6 also return a warning.
  - Resolution 1. State file names X and X's web runs (the other color's may run too, the previous
    release) - X is active.
  - Resolution 2. State file names X, X's web does not run, the other color's web runs - the B(running)
    color is active, so that starting the idle color never replaces the only release that serves.
  - Resolution 3. State file names X and no web of either color runs - X stays active.
  - Resolution 4. No state file (or no color in it) and the web of one color runs - that color is active.
  - Resolution 5. No state file and the web of both colors runs - the color whose web container was created
    first is active (V(blue) on a tie).
  - Resolution 6. No state file and no web runs - there is no active color; O(color=idle) resolves to
    V(blue) and O(color=active) fails.
  - "A web service I(runs) when at least one of its containers is running and not paused."
  - B(A wait ends as soon as its outcome is known.) A container the call waits on that exits or keeps
    restarting fails the call at once, with its last log lines in RV(logs) and in the message.
  - B(Bad input fails before anything changes), naming the option - an O(app) Compose would reject, an unknown
    O(color) or O(state), a missing O(project_src), compose file or env file, compose files that
    C(docker compose config) rejects, a service in O(services) the compose files do not define, a negative
    timeout, a Docker daemon that does not answer (O(docker_host)), Compose v1 or no Compose.
extends_documentation_fragment:
  - lowspec.bluegreen._compose
  - lowspec.bluegreen._common
  - lowspec.bluegreen._docker
  - lowspec.bluegreen._attributes
attributes:
  check_mode:
    support: full
    details:
      - Runs every read-only check (daemon, Compose, compose files, images, architecture, containers, state file)
        and reports in C(actions) the commands it would run, in C(containers) the containers it would stop,
        freeze or start, and changes nothing. Images that would be pulled or built are not checked for their
        architecture in check mode, and nothing is waited for.
  diff_mode:
    support: full
    details:
      - O(state=active) (and O(activate)) returns the state file change (active color and release). The other
        states return the targeted services' states before and after.
  idempotent:
    support: partial
    details:
      - Every state is idempotent except O(state=active) with O(color=idle), which records the other color on
        each run (by design, it is how a rollback promotes the previous color).
options:
  color:
    description:
      - The color to act on. V(active) and V(idle) are resolved as the description explains; the resolved color
        is returned as RV(color).
      - With O(state=active) name the color (V(blue) or V(green)); V(idle) records the other color on each run.
    type: str
    choices: [blue, green, active, idle]
    default: idle
  state:
    description:
      - V(inspect) changes nothing and reports colors, services (with the release each runs) and history.
      - V(prepared) does everything a deploy needs before it changes a container - validates the compose files,
        pulls or builds images per O(pull) and O(build), checks each image's architecture against the host's
        (C(docker info)), checks free disk under the Docker root and available memory (with O(pressure)) - and
        returns RV(release_active) and RV(compose_command). Then, with O(shared), it brings the shared project up.
        A deploy runs it while the old release still serves, so that a missing or wrong-architecture image fails
        the deploy before anything was quiesced. Changed only when it pulled or built an image or started a
        shared service.
      - V(started) makes the targeted services run the current configuration, in stages. With O(pressure), it
        first waits for the host to settle. Then it runs C(docker compose up --detach) for every target but the
        beat services, which creates missing containers and recreates those whose configuration or image
        changed; with O(wait) it waits until they are ready (see O(wait)). Then the beat services start, once the
        other color's beat has exited (see O(other_beat)). With O(activate), the color is then recorded as
        active. No change when every target already runs the current configuration and image. Images are not
        pulled or built here (O(state=prepared) does that); a missing one fails before anything starts.
      - V(stopped) runs C(docker stop) with O(stop_timeout) of grace on the targeted services' running (or
        paused) containers, found by Compose labels. It never creates or recreates a container.
      - V(paused) runs C(docker pause) on the targeted services' running containers (the cgroup freezer; CPU is
        freed, memory is not). It never creates or recreates a container.
      - V(unpaused) brings existing containers back without recreating them - C(docker unpause) of the paused
        ones and C(docker start) of the stopped ones - even when the compose files or environment changed since
        they were created. With O(release), it first refuses when those containers run another release (their
        label says which), naming it and the way back. With O(wait), it then waits until they are ready, as
        O(state=started) does.
      - V(absent) removes the color. With O(project_src) and no O(services) it runs
        C(docker compose down --remove-orphans --timeout) O(stop_timeout) (C(--volumes) with O(remove_volumes)).
        With O(services), or without O(project_src), it works by labels - stop, then remove the containers,
        and (without O(services)) the project's networks and, with O(remove_volumes), its volumes.
      - V(active) records the resolved color as active in the state file, with O(release) and the O(record)
        facts in a new history entry. Recording the active color again with the same release is no change.
        It changes no container. A warning is returned when that color's web is not running. With O(journal),
        the journal is removed, as what it lists is meant to stay as it is now.
    type: str
    choices: [inspect, prepared, started, stopped, paused, unpaused, absent, active]
    default: inspect
  services:
    description:
      - The services to act on; all services of the project when not set.
      - With O(project_src) each must be defined by the compose files. Without O(project_src) the module cannot
        tell a typo from a service without containers; a service with no container in the project is then
        reported in a warning and skipped.
      - Ignored by O(state=active).
    type: list
    elements: str
  web_service:
    description:
      - The service that serves traffic. Its containers in both colors decide which color really runs (see the
        description), and O(health) checks it.
    type: str
    default: web
  web_ports:
    description:
      - "The host port of each color's web, for example V({blue: 8001, green: 8002}). The module passes the
        color's port to Compose as O(web_port_variable), and O(health) checks the web on it."
    type: dict
  web_port_variable:
    description:
      - The compose variable that receives the color's port from O(web_ports).
    type: str
    default: BLUEGREEN_WEB_PORT
  compose_command:
    description:
      - The Compose v2 command, for example V([docker, compose]) or V([/usr/local/bin/docker-compose]), as
        RV(compose_command) returned it. When not set, it is detected (the C(docker compose) plugin, else a
        standalone C(docker-compose) v2), which costs a command; a deploy detects it once and passes it on.
    type: list
    elements: str
  wait:
    description:
      - With O(state=started) and O(state=unpaused), wait until the targeted containers are ready - the
        O(web_service) healthy on its port when O(health) is set; the O(celery) worker services answering
        Celery's ping; any other service running, and healthy where it has a Docker health check.
      - When not set, V(true) for O(state=started) and O(state=unpaused), V(false) otherwise.
    type: bool
  wait_timeout:
    description:
      - Seconds to wait for services other than the web and the workers to be ready. Zero or more.
    type: int
    default: 300
  wait_slice:
    description:
      - The longest one call waits, in seconds (pressure, health, readiness). When a wait is not over at the end
        of its slice, the call returns RV(waiting) true and a RV(progress) sentence instead of waiting on, and the
        next call with the same arguments goes on from there, its deadline unchanged (the wait's start is kept
        in O(journal)). Repeat the task with C(until) and C(retries) to show progress.
      - V(0) (and any call without O(journal)) waits until the deadline in one call.
    type: int
    default: 0
  pull:
    description:
      - For O(state=prepared), when to pull the images of the targeted services that are not built.
      - V(missing) pulls images that are not present locally; V(always) pulls them all; V(never) pulls nothing and
        fails if an image is missing.
    type: str
    choices: [missing, always, never]
    default: missing
  build:
    description:
      - For O(state=prepared), when to build the images of targeted services that have a C(build) section.
      - V(never) builds nothing; V(missing) builds images that are not present locally; V(always) rebuilds them.
    type: str
    choices: [never, always, missing]
    default: never
  release:
    description:
      - The release label (for example a version or a commit).
      - Passed to Compose as C(BLUEGREEN_RELEASE) (so compose files can use it in image tags), set as the label
        C(io.lowspec.bluegreen.release) of the containers O(state=started) creates, and expected by O(health) in
        the web's answer.
      - Recorded with O(state=active) and O(activate). When not set there, the release last recorded for that
        color is kept (a rollback to the previous color keeps its release).
    type: str
  record:
    description:
      - With O(state=active) and O(activate), extra facts merged into the new history entry (timings, what was
        stopped, the drain outcome...). The keys C(release), C(color), C(previous_color), C(previous_release) and
        C(at) are the module's own and cannot be overridden.
    type: dict
  lock:
    description:
      - "Take the app's deploy lock first, before anything else this call does, as M(lowspec.bluegreen.deploy_lock)
        takes it with O(lowspec.bluegreen.deploy_lock#module:state=present) and the options of the same names:
        a lock another run holds fails the call (RV(lock_failed)), naming the holder and since when. Each module
        execution costs a small host a Python start, so a deploy's first call takes the lock."
      - Taking the lock is not reported as a change (the run that takes it releases it, O(unlock) or
        M(lowspec.bluegreen.deploy_lock)); RV(lock) is the lock record, ours or the one in force.
    type: dict
    suboptions:
      token:
        description: The deploy run's token; taking a lock this token holds already changes nothing.
        type: str
        required: true
      holder:
        description: Who takes the lock, as the refusal of a second run names it.
        type: str
        default: ansible
      info:
        description: Facts stored in the lock record (the release being deployed, say).
        type: dict
      stale_after:
        description: Seconds after which a lock counts as stale (its run probably killed).
        type: int
        default: 7200
      break_stale:
        description: Take a stale lock over deliberately (RV(lock_broken) says whose it was).
        type: bool
        default: false
  unlock:
    description:
      - Release the app's deploy lock held with this token once the call has finished (not when it returns
        RV(waiting), as the call then repeats). A lock another run holds is left in place with a warning; none
        is no change. For a deploy's last module call, one execution fewer than a separate
        M(lowspec.bluegreen.deploy_lock) call.
    type: str
  history_size:
    description:
      - How many history entries the state file keeps (newest first). Zero or more.
    type: int
    default: 10
  state_dir:
    description:
      - Directory of the state files, one C(<app>.json) per app. Created (mode V(0755)) when a color is first
        recorded.
    type: path
    default: /var/lib/lowspec-bluegreen
  journal:
    description:
      - The deploy's record of progress on the host (the role passes C(<state_dir>/<app>.journal.json), shared with
        M(lowspec.bluegreen.celery_quiesce)). The start of a wait that spans several calls is kept there (see
        O(wait_slice)), and so is the other color's beat when O(other_beat=stop) stops it, before it is stopped.
      - Removed by O(state=active) and O(activate).
    type: path
  remove_volumes:
    description:
      - With O(state=absent), also remove the project's volumes (named volumes declared in the compose files, and
        anonymous volumes of its containers). Volumes of the shared project are never touched.
    type: bool
    default: false
  stop_timeout:
    description:
      - Seconds a container gets between C(SIGTERM) and C(SIGKILL) when it is stopped (O(state=stopped),
        O(state=absent), the other color's beat, and containers that O(state=started) recreates). Long enough for
        the longest task. Zero or more.
    type: int
    default: 60
  logs:
    description:
      - With O(state=stopped), the services whose last log lines are returned in RV(logs) (read before the
        stop), for example the failing service of a deploy being rescued.
    type: list
    elements: str
    default: []
  activate:
    description:
      - With O(state=started), record the color as active once every target is ready (as O(state=active) does).
    type: bool
    default: false
  other_beat:
    description:
      - With O(state=started), what to do when a beat service is to start while the other color's beat still runs
        (there must never be two schedulers).
      - V(refuse) fails before the beat starts; the deploy quiesces the old beat first
        (M(lowspec.bluegreen.celery_quiesce)).
      - V(stop) stops the other color's beat (O(stop_timeout) of grace), sees it exited, and only then starts
        this color's; the stopped beat is written to O(journal) first, so that a rescue brings it back.
    type: str
    choices: [refuse, stop]
    default: refuse
  await_other:
    description:
      - With O(state=started) and O(celery), before this color's workers and beat start, the other color's
        containers that O(journal) lists as told to stop (by M(lowspec.bluegreen.celery_quiesce) with
        C(wait_exited=false), whose warm shutdown goes on in the background) are awaited exited, seen with
        C(docker inspect), for at most O(stop_timeout) + 15 seconds (sliced by O(wait_slice)); then, with
        O(celery.broker_check), the broker's messages that a gone worker left unacknowledged are put back in their
        queue, once each, as M(lowspec.bluegreen.celery_quiesce) does after its own wait. The Celery agent of
        this call does it, the same one that then asks the new workers whether they are ready; so the broker this
        color's Celery reaches must be the one the other color's workers used (a shared broker). The number
        put back is added to the C(restored) key of O(record).
      - This spares a deploy the separate call of M(lowspec.bluegreen.celery_quiesce) that would wait for the
        exit, and its agent.
    type: bool
    default: false
  pressure:
    description:
      - Host pressure admission. With O(state=started), wait until the host has settled before anything starts
        (skipped when the targets are already up to date); with O(state=prepared), check the free disk under the
        Docker root and the available memory once. See M(lowspec.bluegreen.host_pressure) for the readings.
    type: dict
    suboptions:
      cpu_some_avg10_max:
        description: Highest CPU pressure (C(some avg10) of C(/proc/pressure/cpu), percent) to start at.
        type: float
        default: 80
      memory_some_avg10_max:
        description: Highest memory pressure (C(some avg10) of C(/proc/pressure/memory), percent) to start at.
        type: float
        default: 20
      mem_available_min_mb:
        description: Least C(MemAvailable), in MB.
        type: int
        default: 128
      disk_free_min_mb:
        description: Least free disk under the Docker root, in MB (O(state=prepared) only).
        type: int
        default: 1024
      wait_timeout:
        description: Seconds to wait for the host to settle before failing.
        type: int
        default: 120
  health:
    description:
      - The HTTP readiness check of O(web_service) on the color's own port (O(web_ports)), after it starts -
        O(health.successes) consecutive GET answers with an expected status, no redirect followed, whose JSON
        names this color and O(release). A web container that exits fails the check at once.
    type: dict
    suboptions:
      scheme:
        description: V(http) or V(https).
        type: str
        choices: [http, https]
        default: http
      host:
        description: The address the color's port is published on.
        type: str
        default: 127.0.0.1
      path:
        description: The health path.
        type: str
        default: /health/
      successes:
        description: Consecutive healthy answers needed.
        type: int
        default: 3
      timeout:
        description: Seconds one attempt may take.
        type: float
        default: 2
      delay:
        description: Seconds between attempts.
        type: float
        default: 0.25
      deadline:
        description: Seconds the check may take in all.
        type: int
        default: 120
      status_codes:
        description: The HTTP statuses that count as healthy.
        type: list
        elements: int
        default: [200]
      color_field:
        description: The JSON field of the answer that must name the color; empty to not check it.
        type: str
        default: color
      release_field:
        description: The JSON field of the answer that must name O(release); empty to not check it.
        type: str
        default: release
      headers:
        description: Request headers (not logged), for example C(Host).
        type: dict
        default: {}
      validate_certs:
        description: Verify the certificate with V(https).
        type: bool
        default: true
  celery:
    description:
      - The Celery side of the color. With it, O(state=started) waits until each started worker answers Celery's
        ping, asked every 0.2 s from a container of this color that is already up (O(celery.control_service)),
        through one Celery agent process for the whole call (see M(lowspec.bluegreen.celery_quiesce)); a worker
        with no Docker health check at all is waited for the same way. Its O(celery.beat_services) start last,
        under O(other_beat).
    type: dict
    suboptions:
      app:
        description: The Celery app, as given to C(celery -A) inside the containers.
        type: str
        required: true
      command:
        description: The argv that runs Celery inside a container, for example V([python3, -m, celery]).
        type: list
        elements: str
        default: [celery]
      control_service:
        description:
          - The service whose running container asks the workers (it needs Celery and the app, as a web of
            the same image has). When it cannot, the workers' own containers are used.
        type: str
        default: web
      worker_services:
        description: The services that run Celery workers.
        type: list
        elements: str
        default: [worker]
      beat_services:
        description: The services that run Celery beat.
        type: list
        elements: str
        default: [beat]
      ready_timeout:
        description: Seconds the workers get to answer.
        type: int
        default: 180
      broker_check:
        description: With O(await_other), put back what a gone worker left unacknowledged in a Redis broker.
        type: bool
        default: true
  shared:
    description:
      - With O(state=prepared), the shared project C(<app>-shared) (broker, database), brought up with
        C(docker compose up --detach --wait) unless all its services already run their current configuration.
        It is never stopped by this module.
    type: dict
    suboptions:
      project_src:
        description: The directory of the shared project's compose file(s).
        type: path
        required: true
      files:
        description: Its compose files, relative to O(shared.project_src); Compose's defaults when empty.
        type: list
        elements: str
        default: []
      env:
        description: Variables for its interpolation, passed in Compose's environment (not logged).
        type: dict
        default: {}
      wait_timeout:
        description: Seconds C(--wait) may take.
        type: int
        default: 180
  quiesce:
    description:
      - "With O(state=started), the other color's Celery beat and workers are quiesced first, in the same call, as
        M(lowspec.bluegreen.celery_quiesce) does with O(lowspec.bluegreen.celery_quiesce#module:state=quiesced) and
        O(lowspec.bluegreen.celery_quiesce#module:wait_exited=false): beat told to stop, workers drained, then
        stopped, frozen or shrunk. Its Celery settings, O(journal), O(stop_timeout) and O(wait_slice) are this
        call's (O(celery)). Each module execution costs a small host a Python start, so the quiesce that frees the
        CPU and the start of the new web it frees it for are one."
      - A drain longer than O(wait_slice) returns RV(waiting) like every other wait of this call; the next call
        goes on with it (the journal). Bad quiesce input fails before anything changes; a failed quiesce fails the
        call with RV(quiesce.failed) set, what it stopped in RV(quiesce.containers) and in O(journal).
      - Needs O(celery).
    type: dict
    suboptions:
      color:
        description: The color to quiesce; by default the other color than O(color).
        type: str
        choices: [blue, green]
      mode:
        description: How the old workers leave the CPU (M(lowspec.bluegreen.celery_quiesce)'s O(lowspec.bluegreen.celery_quiesce#module:mode)).
        type: str
        choices: [stop, pause, shrink]
        default: stop
      keep_processes:
        description: With O(quiesce.mode=shrink), the pool processes each old worker keeps.
        type: int
        default: 1
      drain_timeout:
        description: Seconds the old workers get to finish their running tasks.
        type: int
        default: 300
      visibility_timeout:
        description: The broker's visibility timeout, in seconds; a freeze must end well before it.
        type: int
        default: 3600
      max_pause:
        description: With O(quiesce.mode=pause), the longest the old workers may stay frozen, in seconds.
        type: int
        default: 600
  retire:
    description:
      - "With O(state=started), once this call's workers answer Celery's ping and its beat has started, the other
        color's workers are drained and stopped in the same call, as M(lowspec.bluegreen.celery_quiesce) does with
        O(lowspec.bluegreen.celery_quiesce#module:state=quiesced), O(lowspec.bluegreen.celery_quiesce#module:mode=stop)
        and no beat service (the other color's beat was handed over before this color's started, O(other_beat)).
        This is how a shrink-mode deploy retires the old workers, which kept consuming with a small pool until the
        new ones were ready; then, with O(activate), the color is recorded. Each module execution costs a small host
        a Python start, so the new workers' readiness and the old ones' retirement are one."
      - With O(record), the history entry says what the retire stopped (C(stopped), C(drained), C(still_active),
        C(restored), C(retire_timings)). A drain longer than O(wait_slice) returns RV(waiting); the next call goes on
        with it (the journal). Bad retire input fails before anything starts; a failed retire fails the call with
        RV(retire.failed) set, what it stopped in RV(retire.containers) and in O(journal). Not run in check mode (the
        workers it waits for do not start).
      - Needs O(celery), and O(services) must include a worker service.
    type: dict
    suboptions:
      color:
        description: The color to retire; by default the other color than O(color).
        type: str
        choices: [blue, green]
      drain_timeout:
        description: Seconds the old workers get to finish their running tasks.
        type: int
        default: 300
      visibility_timeout:
        description: The broker's visibility timeout, in seconds (see M(lowspec.bluegreen.celery_quiesce)).
        type: int
        default: 3600
      same_broker:
        description:
          - The two colors share one broker (a shared project's, not one of each color's). The retire then asks
            Celery through this call's own agent instead of starting a second one in the other color.
        type: bool
        default: false
  grow:
    description:
      - "With O(state=started), once this call's workers are ready (and after O(retire)), their pools grow to
        O(grow.processes) once the host has settled (O(pressure), without its disk limit), as
        M(lowspec.bluegreen.celery_quiesce) does with O(lowspec.bluegreen.celery_quiesce#module:state=resumed) and
        O(lowspec.bluegreen.celery_quiesce#module:processes); through this call's Celery agent. The workers start
        with a small pool (their warm-up concurrency, through O(variables)) so that their boot costs the host less."
      - A host that does not settle within O(pressure)'s C(wait_timeout) keeps the small pools, with a warning, rather
        than failing a call whose release already serves. Before O(activate)'s record, so that a wait for the host
        that spans calls (RV(waiting)) keeps its deadline. Not run in check mode.
      - Needs O(celery), and O(services) must include a worker service.
    type: dict
    suboptions:
      processes:
        description: The pool size each worker grows to.
        type: int
        required: true
  switch:
    description:
      - "With O(state=started), traffic moves to this color in the same call, once its O(web_service) is healthy
        (O(health)): the switch M(lowspec.bluegreen.proxy_switch) makes, with its options of the same names, for
        this color and O(release) (O(app) and O(web_ports) as this call has them). Each module execution costs a
        small host a Python start, so the new web's readiness and the switch are one."
      - O(services) must include O(web_service), and O(wait) must not be V(false). Bad switch input fails before
        anything starts; a failed switch fails the call with RV(switch.failed) set, the previous upstream kept
        where the validation or the reload failed.
    type: dict
    suboptions:
      proxy:
        description: How traffic is switched (M(lowspec.bluegreen.proxy_switch)'s O(lowspec.bluegreen.proxy_switch#module:proxy)).
        type: str
        choices: [nginx, command, none]
        default: nginx
      upstream_path:
        description: With O(switch.proxy=nginx), the upstream file nginx includes.
        type: path
      content:
        description: With O(switch.proxy=nginx), the upstream file's content for this color.
        type: str
      test_command:
        description: With O(switch.proxy=nginx), the argv that validates nginx's configuration.
        type: list
        elements: str
        default: [nginx, -t]
      reload_command:
        description: With O(switch.proxy=nginx), the argv that reloads nginx.
        type: list
        elements: str
        default: [nginx, -s, reload]
      command:
        description: With O(switch.proxy=command), the argv that switches the proxy.
        type: list
        elements: str
        default: []
      check:
        description: The check through the proxy after the switch (M(lowspec.bluegreen.proxy_switch)'s O(lowspec.bluegreen.proxy_switch#module:check)).
        type: dict
        suboptions:
          url:
            description: The public URL.
            type: str
            required: true
          headers:
            description: Request headers (not logged).
            type: dict
            default: {}
          successes:
            description: Consecutive answers from this color needed.
            type: int
            default: 3
          timeout:
            description: Seconds one attempt may take.
            type: float
            default: 2
          delay:
            description: Seconds between attempts.
            type: float
            default: 0.25
          deadline:
            description: Seconds the check may take in all.
            type: int
            default: 10
          status_codes:
            description: The HTTP statuses that count.
            type: list
            elements: int
            default: [200]
          color_field:
            description: The JSON field that must name the color; empty to not check it.
            type: str
            default: color
          release_field:
            description: The JSON field that must name O(release); empty to not check it.
            type: str
            default: release
          validate_certs:
            description: Verify the certificate of an V(https) URL.
            type: bool
            default: true
notes:
  - O(env) is a C(no_log) option, so Ansible replaces each of its values with C(********) wherever that value
    appears in the result. Short or common values (V(1), V(true), a port) therefore mask unrelated parts of the
    result; put such variables in O(variables) or an O(env_files) file, and keep O(env) for secrets and values
    that are unique. The values of C(BLUEGREEN_COLOR) and C(BLUEGREEN_RELEASE) are not masked - they are no
    secrets and the module returns them.
author:
  - lowspec.bluegreen developers (@lowspec)
seealso:
  - module: lowspec.bluegreen.celery_quiesce
  - module: lowspec.bluegreen.proxy_switch
  - name: Compose CLI reference
    description: The C(docker compose) commands this module runs.
    link: https://docs.docker.com/reference/cli/docker/compose/
"""

EXAMPLES = r"""
---
- name: Prepare a deploy of the shop (images, disk, memory; the shared broker up) while the old release serves
  lowspec.bluegreen.compose_project_color:
    app: shop
    project_src: /srv/shop
    web_ports: {blue: 8001, green: 8002}
    release: v2.4.0
    state: prepared
    pressure: {}
    shared:
      project_src: /srv/shop-shared
  register: shop

- name: Start the idle color's web and wait until it answers healthy on its own port
  lowspec.bluegreen.compose_project_color:
    app: shop
    project_src: /srv/shop
    web_ports: {blue: 8001, green: 8002}
    compose_command: "{{ shop.compose_command }}"
    color: "{{ shop.color }}"
    release: v2.4.0
    services: [web]
    state: started
    pressure: {}
    health: {path: /health/}

- name: Start its workers, then its beat, and record it as active (progress every 10 s)
  lowspec.bluegreen.compose_project_color:
    app: shop
    project_src: /srv/shop
    web_ports: {blue: 8001, green: 8002}
    color: "{{ shop.color }}"
    release: v2.4.0
    services: [worker, beat]
    state: started
    celery: {app: shop, command: [python3, -m, celery]}
    activate: true
    journal: /var/lib/lowspec-bluegreen/shop.journal.json
    wait_slice: 10
  register: started
  until: not started.waiting
  retries: 18
  delay: 0

- name: Stop the old color's web, keeping its containers
  lowspec.bluegreen.compose_project_color:
    app: shop
    color: "{{ shop.active_color }}"
    services: [web]
    state: stopped

- name: Rescue - bring a color's containers back as they were (never recreated), if they run the release
  lowspec.bluegreen.compose_project_color:
    app: shop
    color: blue
    release: v2.3.1
    services: [web]
    state: unpaused

- name: Record the new color as active, with facts of this deploy
  lowspec.bluegreen.compose_project_color:
    app: shop
    color: green
    release: v2.4.0
    state: active
    record:
      took_s: 42

- name: Remove the idle color (the previous release) once the new one is verified
  lowspec.bluegreen.compose_project_color:
    app: shop
    project_src: /srv/shop
    color: idle
    state: absent
    remove_volumes: true
"""

RETURN = r"""
changed:
  description: Whether anything changed (or, in check mode, would change).
  returned: always
  type: bool
  sample: true
color:
  description: The color acted on, O(color) resolved.
  returned: always
  type: str
  sample: green
project:
  description: The Compose project of that color, C(<app>-<color>).
  returned: always
  type: str
  sample: shop-green
active_color:
  description:
    - The active color after this call (see the description for how it is resolved), or V(null) when there is
      none. A call that names its color reports the recorded one.
  returned: always
  type: str
  sample: blue
idle_color:
  description: The other color; V(blue) when there is no active color.
  returned: always
  type: str
  sample: green
recorded_color:
  description: The active color the state file records after this call, V(null) when none.
  returned: always
  type: str
  sample: blue
release:
  description: The release recorded with the active color in the state file, V(null) when none.
  returned: always
  type: str
  sample: v2.3.1
history:
  description:
    - The state file's history of recorded colors, newest first, at most O(history_size) entries.
    - Each entry has C(release), C(color), C(previous_color), C(previous_release), C(at) (ISO 8601, UTC) and the
      O(record) facts given when it was recorded.
  returned: always
  type: list
  elements: dict
  sample:
    - release: v2.4.0
      color: green
      previous_color: blue
      previous_release: v2.3.1
      at: "2026-11-29T17:02:11Z"
      took_s: 42
state_file:
  description: Path of the app's state file (it may not exist yet).
  returned: always
  type: str
  sample: /var/lib/lowspec-bluegreen/shop.json
compose_command:
  description: The Compose v2 command used, to pass on as O(compose_command).
  returned: when Compose was run or detected
  type: list
  elements: str
  sample: [/usr/bin/docker, compose]
release_active:
  description: With O(state=prepared), whether O(release) is already the active color's release and all the
    targeted services of that color run (a deploy has nothing to do).
  returned: when O(state=prepared)
  type: bool
  sample: false
active_release:
  description: With O(state=prepared), the release the active color runs (its web containers' label, else the one
    the state file recorded for it), V(null) when no color is active.
  returned: when O(state=prepared)
  type: str
  sample: v2.3.1
journal:
  description: With O(state=prepared), the entries of O(journal) (containers an unfinished deploy stopped, froze or
    shrank), each with C(project), C(id), C(service), C(action) and C(queues).
  returned: when O(state=prepared)
  type: list
  elements: dict
  sample: []
platform:
  description: With O(state=prepared), the host's platform (C(amd64), C(arm64), C(arm/v7)...).
  returned: when O(state=prepared)
  type: str
  sample: arm64
shared:
  description: With O(shared), the shared project and the services this call started in it.
  returned: when O(shared) is set
  type: dict
  sample: {project: shop-shared, started: [redis]}
services:
  description:
    - Per targeted service of the color's project (all services when O(services) is not set), after this call.
    - Services the compose files define but that have no container are listed with state V(absent) when
      O(project_src) is set.
  returned: always
  type: dict
  sample:
    web:
      state: running
      health: healthy
      containers: [4f1c0d6f3b2a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d]
      image: shop:v2.4.0
      release: v2.4.0
      created: "2026-11-29T17:01:40.777512505Z"
  contains:
    state:
      description:
        - The containers' state (V(running), V(paused), V(exited), V(created), V(restarting)...), V(mixed) when
          they differ, V(absent) when there is none.
      type: str
      sample: running
    health:
      description: Docker health (V(healthy), V(unhealthy), V(starting)), V(none) without health check, V(mixed).
      type: str
      sample: healthy
    containers:
      description: Full ids of the service's containers.
      type: list
      elements: str
    image:
      description: The image reference the containers run (or, without containers, the one configured).
      type: str
      sample: shop:v2.4.0
    release:
      description: The release the containers run (their label), V(null) when unlabelled, V(mixed) when they differ.
      type: str
      sample: v2.4.0
    created:
      description: Creation time of the newest container, ISO 8601.
      type: str
waiting:
  description: Whether the call ended before its wait did (O(wait_slice)); call it again to go on.
  returned: always
  type: bool
  sample: false
progress:
  description: What the call waits for and how long the wait has left, when RV(waiting).
  returned: when RV(waiting)
  type: str
  sample: "shop-green healthy on its own port (HTTP 502): 10 s of 120 s waited, 110 s left"
lock:
  description: With O(lock), the lock record in force after the call (ours, or the other run's that refused us).
  returned: when O(lock) is set
  type: dict
  sample: {app: shop, holder: ansible deploying v42, token: 20261203T080000-1234, host: pi5,
           acquired_at: "2026-12-03T08:00:00Z", acquired_epoch: 1796371200, info: {release: v42}}
lock_failed:
  description: With O(lock), whether the call failed taking the lock (another run holds it, or the file).
  returned: when O(lock) is set
  type: bool
  sample: false
lock_broken:
  description: With O(lock) and O(lock.break_stale), the stale lock record this call took over, else null.
  returned: when O(lock) is set
  type: dict
unlocked:
  description: With O(unlock), true once the call released the lock (or found none).
  returned: when O(unlock) is set and the lock was ours or absent
  type: bool
  sample: true
recorded:
  description: Whether the color was recorded as active (O(state=active), O(activate)).
  returned: when recorded
  type: bool
  sample: true
health:
  description: The last check of the web on its own port (URL, status, attempts, elapsed seconds, latency, JSON).
  returned: when O(health) checked the web
  type: dict
  sample: {url: "http://127.0.0.1:8002/health/", status: 200, attempts: 5, successes: 3, elapsed: 1.6}
switched:
  description:
    - Whether traffic goes to this color as far as this call knows (O(switch) switched the proxy, or it already
      pointed here). V(false) when the switch did not run or a failed validation or reload kept the previous
      upstream. A rescue points the proxy back when this is V(true) and the deploy failed.
  returned: when O(switch) is set and the web was seen healthy
  type: bool
  sample: true
quiesce:
  description: What O(quiesce) did, as M(lowspec.bluegreen.celery_quiesce) returns it (its C(actions) are in RV(actions)).
  returned: when O(quiesce) is set
  type: dict
  contains:
    failed:
      description: Whether the call failed in the quiesce.
      type: bool
      sample: false
    containers:
      description: The old containers stopped, frozen or shrunk, beat first, as the journal lists them (each with C(at),
        when it was written down, just before its change).
      type: list
      elements: dict
    drained:
      description: Whether the old workers finished their running tasks within O(quiesce.drain_timeout).
      type: bool
    timings:
      description: Seconds spent in each step of the quiesce.
      type: dict
    celery:
      description: The Celery agent the quiesce used (its boot, CPU and calls), when it started one.
      type: dict
  sample: {failed: false, containers: [{id: 0c4e..., service: beat, action: stopped, at: 1764672000.5}], drained: true}
retire:
  description: What O(retire) did, as M(lowspec.bluegreen.celery_quiesce) returns it (its C(actions) are in RV(actions)).
  returned: when O(retire) is set and the call got to it
  type: dict
  contains:
    failed:
      description: Whether the call failed in the retire.
      type: bool
      sample: false
    containers:
      description: The old workers stopped, as the journal lists them (each with C(at), when it was written down).
      type: list
      elements: dict
    drained:
      description: Whether the old workers finished their running tasks within O(retire.drain_timeout).
      type: bool
    restored:
      description: Messages a gone worker left unacknowledged in a Redis broker, put back in their queue.
      type: list
      elements: dict
    timings:
      description: Seconds spent in each step of the retire.
      type: dict
  sample: {failed: false, containers: [{id: 5d1a..., service: worker, action: stopped, queues: [celery]}], drained: true}
grow:
  description: What O(grow) did, as M(lowspec.bluegreen.celery_quiesce) returns it with state=resumed.
  returned: when O(grow) is set and the call got to it
  type: dict
  contains:
    failed:
      description: Whether the call failed in the growth.
      type: bool
      sample: false
    pools:
      description: Each worker container's pool size before and after, by container id.
      type: dict
    pressure:
      description: The host's readings the growth waited on.
      type: dict
    timings:
      description: Seconds spent in each step of the growth.
      type: dict
  sample: {failed: false, pools: {5d1a...: {before: 1, after: 2}}}
switch:
  description: What O(switch) did, as M(lowspec.bluegreen.proxy_switch) returns it.
  returned: when O(switch) is set
  type: dict
  contains:
    failed:
      description: Whether the call failed in the switch (its validation, reload, command or check).
      type: bool
      sample: false
    changed:
      description: Whether the proxy was switched (the upstream file written and nginx reloaded, or the command run).
      type: bool
      sample: true
    switched:
      description: The same as RV(switched).
      type: bool
      sample: true
    check:
      description: The check through the proxy, when it ran.
      type: dict
      sample: {url: "http://127.0.0.1/health/", status: 200, attempts: 3, successes: 3, elapsed: 0.6}
    timings:
      description: Seconds spent validating (C(test)), reloading (C(reload)), running C(command) and checking (C(check)).
      type: dict
      sample: {test: 0.05, reload: 0.03, check: 0.6}
    diff:
      description: The upstream file before and after, in diff mode when it changes.
      type: dict
  sample: {failed: false, changed: true, switched: true, timings: {test: 0.05, reload: 0.03, check: 0.6}}
workers_ready:
  description: The Celery nodes of the started workers that answered the ping.
  returned: when O(celery) waited for workers
  type: list
  elements: str
  sample: [celery@4f1c0d6f3b2a]
other_beat_stopped:
  description: Ids of the other color's beat containers that O(other_beat=stop) stopped.
  returned: when it stopped one
  type: list
  elements: str
celery:
  description: How Celery was reached - C(transport) V(agent) (one process for the call) or V(cli) (one celery
    command per call), the container, the number of calls, and for the agent its boot and CPU seconds.
  returned: when Celery was asked
  type: dict
  sample: {transport: agent, container: shop-green-web-1, calls: 6, boot_s: 0.4, cpu_s: 0.3, wall_s: 2.1}
pressure:
  description: The last host readings of O(pressure) (see M(lowspec.bluegreen.host_pressure)).
  returned: when O(pressure) was checked
  type: dict
restored:
  description: With O(await_other), the messages put back in their queue (C(id), C(task), C(queue), C(delivered_at)).
  returned: when O(await_other) checked the broker
  type: list
  elements: dict
broker_checked:
  description: Whether O(await_other) read the broker's unacknowledged messages (a Redis broker).
  returned: when O(await_other) waited for the other color
  type: bool
timings:
  description: Seconds spent per phase of the call (C(other_exited), C(broker), C(pressure), C(up), C(ready),
    C(workers_ready)).
  returned: always
  type: dict
  sample: {up: 0.9, ready: 1.6}
actions:
  description:
    - The commands that changed something (in check mode, that would run), as C(docker) command lines read.
      Environment values never appear here.
  returned: always
  type: list
  elements: str
  sample:
    - docker compose --ansi never --project-name shop-green --project-directory /srv/shop --file compose.yml
      --file /tmp/bluegreen-labels-1.yml up --detach --no-build --pull never --timeout 60 web
containers:
  description:
    - For O(state=stopped), O(state=paused) and O(state=unpaused), the full ids of the containers this call
      stopped, froze, or unfroze and started - only those that were not already in that state. Empty when
      nothing changed. In check mode, those it would act on.
  returned: when O(state) is V(stopped), V(paused) or V(unpaused)
  type: list
  elements: str
  sample: [9a1c0d6f3b2a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d]
reasons:
  description: For O(state=started), why each service that is not up to date was (or would be) started or recreated.
  returned: when O(state=started)
  type: dict
  sample:
    web: configuration changed
    worker: no container
logs:
  description: The last log lines of each service whose containers failed to become ready (or of O(logs)).
  returned: on failure while waiting, or with O(logs)
  type: dict
  sample:
    web: ["[ERROR] Worker failed to boot."]
diff:
  description:
    - With O(state=active) and O(activate), the state file's active color and release before and after.
    - With the other changing states, each targeted service's state and health before and after.
  returned: when diff mode is on and something changed
  type: dict
  sample:
    before: {active_color: blue, release: v2.3.1}
    after: {active_color: green, release: v2.4.0}
cmd:
  description: The failed command, as a list.
  returned: when a command failed
  type: list
  elements: str
rc:
  description: The failed command's exit code.
  returned: when a command failed
  type: int
stdout:
  description: The failed command's standard output.
  returned: when a command failed
  type: str
stderr:
  description: The failed command's standard error.
  returned: when a command failed
  type: str
"""

import os
import re
import tempfile
import time

from ansible_collections.lowspec.bluegreen.plugins.module_utils._celery import (
    CeleryError,
    node_name,
    nodes_of_host,
    open_control,
    parse_ping,
    reclaim_orphans,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import (
    COLORS,
    BlueGreenError,
    CommandError,
    check_non_negative,
    first_error_line,
    other_color,
    project_name,
    seconds,
    validate_app_name,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._lock import (
    DeployLock,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._compose import (
    ComposeCLI,
    config_services,
    default_files,
    describe_argv,
    host_platform,
    image_platform,
    labels_override,
    platform_fit,
    service_image,
    service_replicas,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._docker import (
    LABEL_RELEASE,
    READY_HEALTH,
    Engine,
    describe,
    iso_epoch,
    services_from_containers,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._http import (
    HealthChecker,
    color_check_options,
    color_check_settings,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._module import (
    Manager,
    run_module,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._pressure import (
    Gauge,
    failure_message as pressure_failure,
    pressure_option,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._proxy import (
    SWITCH_OPTIONS,
    ProxySwitch,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._quiesce import (
    quiesce_within,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._state import (
    DEFAULT_STATE_DIR,
    Journal,
    last_release_of,
    read_state,
    record_active,
    resolve_colors,
    state_diff,
    state_path,
    write_state,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._wait import (
    Wait,
)

_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LOG_LINES = 30
OWN_VARIABLES = ("BLUEGREEN_COLOR", "BLUEGREEN_RELEASE")
POLL = 0.25


def _env_value(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class NotReady(BlueGreenError):
    """A container the call waits on exited or keeps restarting: the wait ends at once."""


class ColorManager(Manager):
    """One call of the module: reads params, checks them, acts on one color."""

    def __init__(self, module):
        super().__init__(module)
        params = self.params
        self.state = params["state"]
        self.app = validate_app_name(params["app"])
        check_non_negative(params, ("wait_timeout", "stop_timeout", "history_size", "wait_slice"))
        self.services = list(params["services"] or [])
        self.wait = params["wait"] if params["wait"] is not None else self.state in ("started", "unpaused")
        self.project_opts = self._project_opts()
        self.web_ports = self._web_ports()
        self.celery = params["celery"] or {}
        self.worker_services = list(self.celery.get("worker_services") or [])
        self.beat_services = list(self.celery.get("beat_services") or [])
        self.journal = Journal(params["journal"])
        self.state_file = state_path(params["state_dir"], self.app)
        self.result.update(actions=[], waiting=False)
        self.engine = Engine(module, params["docker_host"])
        self.compose = None
        self.color = self.project = self.config = None
        self.recorded = None
        self.active = self.idle = None
        self.web = {}
        self.control = None
        # The quiesces this call makes of Celery (RV(quiesce), RV(retire), RV(grow)): name -> manager.
        self.within = {}
        self.override = None
        self.baseline = {}
        self.timings = self.result.setdefault("timings", {})

    # -- input ----------------------------------------------------------------

    def _project_opts(self):
        src = self.params["project_src"]
        if not src:
            return {}
        if not os.path.isdir(src):
            raise BlueGreenError("project_src=%s is not a directory" % src)
        files = list(self.params["files"] or [])
        for name in files:
            if not os.path.isfile(os.path.join(src, name)):
                raise BlueGreenError("files: compose file %s not found in project_src=%s" % (name, src))
        if not files:
            files = default_files(src)
            if not files:
                raise BlueGreenError("project_src=%s holds no compose file (compose.yaml, compose.yml, "
                                     "docker-compose.yaml, docker-compose.yml); name them with files" % src)
        env_files = self.params["env_files"] or []
        for name in env_files:
            if not os.path.isfile(os.path.join(src, name)):
                raise BlueGreenError("env_files: %s not found in project_src=%s" % (name, src))
        return {"project_src": src, "files": files, "env_files": env_files}

    def _web_ports(self):
        ports = self.params["web_ports"] or {}
        unknown = sorted(set(ports) - set(COLORS))
        if unknown:
            raise BlueGreenError("web_ports: %s is not a color (blue, green)" % ", ".join(unknown))
        for color, port in ports.items():
            if isinstance(port, bool) or not str(port).isdigit() or not 0 < int(port) < 65536:
                raise BlueGreenError("web_ports.%s=%r is not a port number" % (color, port))
        if ports and not _ENV_NAME_RE.match(self.params["web_port_variable"] or ""):
            raise BlueGreenError("web_port_variable=%r is not a valid environment variable name"
                                 % self.params["web_port_variable"])
        return dict((color, int(port)) for color, port in ports.items())

    def _compose_env(self):
        env = {}
        for option in ("variables", "env"):
            for key, value in (self.params[option] or {}).items():
                if not isinstance(key, str) or not _ENV_NAME_RE.match(key):
                    raise BlueGreenError("%s: %r is not a valid environment variable name" % (option, key))
                env[key] = _env_value(value)
        # `env` is no_log, so Ansible masks its values anywhere in the result. The color, the release and the
        # port are no secrets (the module returns them), so their values are not masked.
        secrets = {_env_value(value) for key, value in (self.params["env"] or {}).items() if key not in OWN_VARIABLES}
        for key in OWN_VARIABLES:
            if env.get(key) and env[key] not in secrets:
                self.module.no_log_values.discard(env[key])
        given = env.get("BLUEGREEN_COLOR")
        if given is not None and given != self.color:
            self.warn("env sets BLUEGREEN_COLOR=%s; the module sets it to %s, the color it acts on"
                      % (given, self.color))
        env["BLUEGREEN_COLOR"] = self.color
        if self.params["release"] is not None:
            env["BLUEGREEN_RELEASE"] = self.params["release"]
        if self.color in self.web_ports:
            env[self.params["web_port_variable"]] = str(self.web_ports[self.color])
        return env

    # -- facts ----------------------------------------------------------------

    def resolve(self):
        """The color to act on and the colors' roles, reading no more than the state needs."""
        self.recorded = read_state(self.params["state_dir"], self.app)
        wanted = self.params["color"]
        if wanted in COLORS and self.state not in ("inspect", "prepared"):
            # A caller that names the color already knows the colors: no lookup of what runs.
            self.active = self.recorded["active_color"]
            self.idle = other_color(self.active) if self.active else None
            self.color = wanted
        else:
            self.web = dict((c, self._web_status(c)) for c in COLORS)
            active, idle, warnings = resolve_colors(self.recorded["active_color"], self.web)
            for warning in warnings:
                self.warn(warning)
            self.active, self.idle = active, idle
            if wanted == "active":
                if not active:
                    raise BlueGreenError(
                        "color=active: %s has no active color - the state file %s records none and no %s "
                        "container of either color is running; name the color (blue or green)"
                        % (self.app, self.state_file, self.params["web_service"]))
                self.color = active
            elif wanted == "idle":
                self.color = idle
            else:
                self.color = wanted
        self.project = project_name(self.app, self.color)
        self.result.update(color=self.color, project=self.project)
        self.compose = ComposeCLI(self.module, self.params["docker_host"], self._compose_env(),
                                  command=self.params["compose_command"])
        if self.project_opts and self.state != "active":
            self._load_config()

    def _web_status(self, color):
        containers = self.engine.containers(project_name(self.app, color), [self.params["web_service"]])
        running = [c for c in containers if c["running"]]
        return {"running": bool(running), "created": min((c["created"] for c in running), default="")}

    def _load_config(self):
        try:
            self.config = self.compose.config(self.project, **self.project_opts)
        except CommandError as exc:
            raise CommandError(
                "files: the compose configuration of %s in project_src=%s is not valid (check files, env_files "
                "and env): %s" % (self.project, self.project_opts["project_src"], exc.stderr.strip() or exc),
                **exc.details()) from exc
        defined = config_services(self.config)
        unknown = [s for s in self.services if s not in defined]
        if unknown:
            raise BlueGreenError("services: %s not defined by the compose files of %s (it defines: %s)"
                                 % (", ".join(unknown), self.project, ", ".join(sorted(defined)) or "nothing"))

    def targets(self, containers=None):
        """The services to act on."""
        if self.services:
            if self.config is None and containers is not None:
                present = {c["service"] for c in containers}
                missing = [s for s in self.services if s not in present]
                if missing:
                    self.warn("services: %s has no container in %s; skipped (give project_src to check "
                              "the names against the compose files)" % (", ".join(missing), self.project))
            return list(self.services)
        if self.config is not None:
            return sorted(config_services(self.config))
        return sorted({c["service"] for c in containers or []})

    def containers(self, services=None):
        return self.engine.containers(self.project, services or None)

    def services_view(self, containers, targets):
        view = services_from_containers(containers)
        view = dict((name, entry) for name, entry in view.items() if name in targets)
        if self.config is not None:
            for name, spec in config_services(self.config).items():
                if name in targets and name not in view:
                    view[name] = {"state": "absent", "health": "none", "containers": [], "release": None,
                                  "image": service_image(self.project, name, spec), "created": ""}
        return view

    # -- running ----------------------------------------------------------------

    def compose_argv(self, args, labelled=False):
        opts = dict(self.project_opts)
        if labelled:
            opts["files"] = list(opts["files"]) + [self._override()]
        return self.compose.argv(self.project, args, **opts)

    def _override(self):
        """A compose file that labels every service with the release it runs (read back by rollback and status)."""
        if self.override is None:
            fd, self.override = tempfile.mkstemp(prefix="bluegreen-labels-", suffix=".yml",
                                                 dir=self.module.tmpdir)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(labels_override(config_services(self.config),
                                             {LABEL_RELEASE: self.params["release"] or ""}))
        return self.override

    def do(self, argv, what):
        """Run a changing compose command, or in check mode only record it; `what` names it in errors."""
        if self.check_mode:
            self.compose.actions.append(describe_argv(argv))
            return
        try:
            self.compose.run(argv, changes=True, cwd=self.project_opts.get("project_src"))
        except CommandError as exc:
            reason = first_error_line(exc.stderr) or first_error_line(exc.stdout) or "exit code %s" % exc.rc
            raise CommandError("%s of %s failed: %s" % (what, self.project, reason), **exc.details()) from exc

    def _warn_active(self, what):
        if self.color == self.active:
            self.warn("%s %s, the active color (%s)" % (what, self.project, self.color))

    def run(self):
        self._take_lock()
        self.resolve()
        before = self.containers() if self.state != "active" else []
        targets, after_hint = getattr(self, "state_" + self.state)(before)
        if self.state not in ("active", "inspect"):
            after = self.containers() if (self.result["changed"] and not self.check_mode) else before
            before_view = self.services_view(before, targets)
            after_view = self.services_view(after, targets)
            self.result["services"] = after_view
            if self.check_mode and after_hint:
                after_view = dict((name, dict(entry, **after_hint.get(name, {}))) for name, entry in after_view.items())
            # With activate, the state file's change is the diff that matters (record() set it).
            if self.diff_mode and self.result["changed"] and "diff" not in self.result:
                self.result["diff"] = {"before": _diff_view(before_view), "after": _diff_view(after_view)}
        self._release_lock()
        return self.partial()

    def _take_lock(self):
        """The app's deploy lock, first of all (O(lock)); taking and releasing it within one run is no change."""
        options = self.params["lock"]
        if not options:
            return
        if options["stale_after"] < 0:
            raise BlueGreenError("lock.stale_after must be zero or more, got %s" % options["stale_after"])
        found = {}
        lock = DeployLock(self.app, self.params["state_dir"], found, holder=options["holder"], token=options["token"],
                          stale_after=options["stale_after"], break_stale=options["break_stale"],
                          info=options["info"], check_mode=self.check_mode)
        try:
            lock.take()
        except Exception:
            self.result["lock_failed"] = True
            raise
        finally:
            self.result.update(lock=found.get("lock"), lock_broken=found.get("broken"))
        self.result["lock_failed"] = False

    def _release_lock(self):
        """O(unlock): the lock released at the end of a call that finished (not one that returns RV(waiting))."""
        token = self.params["unlock"]
        if not token or self.result["waiting"]:
            return
        found = {}
        lock = DeployLock(self.app, self.params["state_dir"], found, token=token, check_mode=self.check_mode)
        held = lock.read()
        if held is not None and held.get("token") != token:
            # Not ours (taken over as stale): this call's work stands; whoever releases ours says so.
            self.warn("unlock: the deploy lock of %s is held by %s, not this run: left in place"
                      % (self.app, held.get("holder")))
            return
        lock.release()
        self.result["unlocked"] = True

    def partial(self):
        engine, compose = getattr(self, "engine", None), getattr(self, "compose", None)
        self.result["actions"] = (list(engine.actions) if engine else []) + (list(compose.actions) if compose else [])
        if getattr(self, "recorded", None) is not None:
            self.result.update(
                active_color=self.active, idle_color=self.idle, recorded_color=self.recorded["active_color"],
                release=self.recorded["release"], history=self.recorded["history"], state_file=self.state_file)
        if compose is not None and compose.detected:
            self.result["compose_command"] = list(compose.detected)
        return dict(self.result)

    def close(self):
        for name, manager in sorted(getattr(self, "within", {}).items()):
            if manager.control is not None and manager.control is getattr(self, "control", None):
                manager.control = None  # this call's own agent, closed below
            manager.close()
            # As it ended, not as the journal says after a record cleared it (plus its agent's figures).
            found = manager.partial() if manager.reported is None else dict(manager.reported, **dict(
                (k, manager.result[k]) for k in ("celery",) if k in manager.result))
            # Its docker and celery actions are this call's RV(actions) already.
            self.result[name] = dict((k, v) for k, v in found.items() if k != "actions")
        self.within = {}
        if getattr(self, "control", None) is not None:
            stats = self.control.close()
            self.result["celery"] = dict(transport=self.control.transport, container=self.control.container["name"],
                                         calls=self.control.calls, **stats)
            self.control = None
        if getattr(self, "override", None) and os.path.exists(self.override):
            os.unlink(self.override)

    # -- states -----------------------------------------------------------------

    def state_inspect(self, before):
        targets = self.targets(before)
        self.result["services"] = self.services_view(before, targets)
        return targets, None

    def state_active(self, _before):
        self.record(self.color, self.params["release"])
        containers = self.containers()
        self.result["services"] = self.services_view(containers, sorted({c["service"] for c in containers}))
        return [], None

    def record(self, color, release):
        """Record `color` active (a history entry with the `record` facts); the journal is done with."""
        params = self.params
        new, changed = record_active(self.recorded, color, release, params["record"], params["history_size"])
        if changed and not self.check_mode:
            web = self.engine.containers(project_name(self.app, color), [params["web_service"]])
            if not any(c["running"] for c in web):
                self.warn("recording %s as active although no %s container of %s is running"
                          % (color, params["web_service"], project_name(self.app, color)))
            write_state(params["state_dir"], self.app, new)
        if changed and self.diff_mode:
            self.result["diff"] = state_diff(self.recorded, new)
        if not self.check_mode:
            self.journal.clear()
        self.result["changed"] = self.result["changed"] or changed
        self.result["recorded"] = True
        self.recorded = new
        self.active, self.idle = color, other_color(color)

    def state_stopped(self, before):
        targets = self.targets(before)
        mine = [c for c in before if c["service"] in targets and (c["running"] or c["paused"] or c["restarting"])]
        self.result["containers"] = [c["id"] for c in mine]
        if self.params["logs"]:
            self.result["logs"] = self._logs([c for c in before if c["service"] in self.params["logs"]])
        if mine:
            self._warn_active("stopping containers of")
            self.result["changed"] = True
            if not self.check_mode:
                self.engine.stop(mine, self.params["stop_timeout"])
            else:
                self.engine.actions.append("stop --time %d %s" % (self.params["stop_timeout"],
                                                                  " ".join(c["id"] for c in mine)))
        return targets, dict((c["service"], {"state": "exited"}) for c in mine)

    def state_paused(self, before):
        targets = self.targets(before)
        mine = [c for c in before if c["service"] in targets and c["running"]]
        self.result["containers"] = [c["id"] for c in mine]
        if mine:
            self._warn_active("freezing containers of")
            self.result["changed"] = True
            if not self.check_mode:
                self.engine.pause(mine)
            else:
                self.engine.actions.append("pause %s" % " ".join(c["id"] for c in mine))
        return targets, dict((c["service"], {"state": "paused"}) for c in mine)

    def state_unpaused(self, before):
        targets = self.targets(before)
        mine = [c for c in before if c["service"] in targets]
        self._check_release(mine)
        paused = [c["id"] for c in mine if c["paused"]]
        stopped = [c["id"] for c in mine if c["state"] in ("exited", "created")]
        for c in mine:
            if c["state"] == "dead":
                self.warn("container %s (%s) is dead and cannot be started; remove it" % (c["name"], c["service"]))
        self.result["containers"] = paused + stopped
        if paused or stopped:
            self.result["changed"] = True
            if self.check_mode:
                self.engine.actions.extend(["unpause %s" % " ".join(paused)] if paused else [])
                self.engine.actions.extend(["start %s" % " ".join(stopped)] if stopped else [])
            else:
                self.engine.unpause(paused)
                self.engine.start(stopped)
        if self.wait and not self.check_mode:
            self.await_ready([s for s in targets if any(c["service"] == s for c in mine)])
        return targets, dict((c["service"], {"state": "running"}) for c in mine if c["id"] in paused + stopped)

    def _check_release(self, containers):
        """A color is brought back only when its containers run the release expected of it."""
        wanted = self.params["release"]
        if wanted is None:
            return
        other = sorted({c["release"] for c in containers if c["release"] not in (None, wanted)})
        if other:
            raise BlueGreenError(
                "%s holds release %s, not %s: its containers were replaced since %s was recorded for %s (by a "
                "deploy of %s that failed and was rescued?). Bringing them back would serve %s. Deploy %s "
                "instead (bluegreen_release=%s)%s" % (
                    self.project, ", ".join(other), wanted, wanted, self.color, ", ".join(other), ", ".join(other),
                    wanted, wanted, self._image_note(containers, wanted)))
        if any(c["release"] is None for c in containers):
            self.warn("%s: containers without a release label (created before lowspec.bluegreen labelled them); "
                      "their release %s is assumed, not read" % (self.project, wanted))

    def _image_note(self, containers, release):
        images = sorted({c["image"] for c in containers if c["image"]})
        guesses = [re.sub(r":[^:/]+$", ":" + release, image) for image in images]
        present = [ref for ref in guesses if ref not in images and self.engine.image(ref)]
        return ": its image %s is still here" % ", ".join(present) if present else ""

    def _logs(self, containers):
        logs = {}
        for c in containers:
            logs.setdefault(c["service"], []).extend(self.engine.logs(c["id"], tail=LOG_LINES))
        return logs

    def state_prepared(self, before):
        if self.config is None:
            raise BlueGreenError("project_src is required for state=prepared")
        targets = self.targets(before)
        info = self.engine.info()
        self.result["platform"] = host_platform(info)
        self.prepare_images(targets, config_services(self.config), self.result["platform"])
        if self.params["pressure"]:
            self.check_room(info.get("DockerRootDir"))
        self.result["release_active"] = self._release_active(targets)
        self.result["active_release"] = self._active_release()
        self.result["journal"] = list(self.journal.entries)
        if self.params["shared"]:
            self.bring_up_shared()
        return targets, None

    def _release_active(self, targets):
        """The release asked for is the active one and all its services run: a deploy has nothing to do."""
        release = self.params["release"]
        if not self.active or release is None or self.recorded["release"] != release:
            return False
        if self.active != self.recorded["active_color"]:
            return False
        running = self.engine.containers(project_name(self.app, self.active), targets)
        return all(any(c["service"] == name and c["running"] for c in running) for name in targets)

    def _active_release(self):
        """The release the active color runs: its web's label, else what the state file recorded for it."""
        if not self.active:
            return None
        web = self.engine.containers(project_name(self.app, self.active), [self.params["web_service"]])
        labels = sorted({c["release"] for c in web if c["release"]})
        if len(labels) == 1:
            return labels[0]
        return last_release_of(self.recorded, self.active)

    def check_room(self, docker_root):
        """Free disk under the Docker root and available memory, once, before anything changes."""
        limits = self._limits()
        path = docker_root if docker_root and os.path.exists(docker_root) else None
        outcome = Gauge(self.module, path).wait(dict(limits, cpu_some_avg10_max=100, memory_some_avg10_max=100), 0)
        self.result["pressure"] = outcome["readings"]
        if not outcome["settled"]:
            raise BlueGreenError(pressure_failure(outcome["exceeded"], 0, "the deploy of %s" % self.project,
                                                  outcome["impossible"]))

    def _limits(self):
        pressure = self.params["pressure"]
        return dict(cpu_some_avg10_max=pressure["cpu_some_avg10_max"],
                    memory_some_avg10_max=pressure["memory_some_avg10_max"],
                    mem_available_min_mb=pressure["mem_available_min_mb"],
                    disk_free_min_mb=pressure["disk_free_min_mb"])

    def bring_up_shared(self):
        """`<app>-shared` up (never stopped, never recreated needlessly): nothing runs when it is up to date."""
        shared = self.params["shared"]
        src = shared["project_src"]
        if not os.path.isdir(src):
            raise BlueGreenError("shared.project_src=%s is not a directory" % src)
        files = list(shared["files"] or []) or default_files(src)
        project = "%s-shared" % self.app
        env = dict((k, _env_value(v)) for k, v in (shared["env"] or {}).items())
        cli = ComposeCLI(self.module, self.params["docker_host"], env, command=self.compose.command())
        opts = {"project_src": src, "files": files}
        config = cli.config(project, **opts)
        services = sorted(config_services(config))
        running = self.engine.containers(project)
        hashes = cli.config_hashes(project, services, **opts) if running else None
        stale = [name for name in services
                 if not [c for c in running if c["service"] == name and c["running"]]
                 or hashes is None or any(c["config_hash"] != hashes.get(name) for c in running if c["service"] == name)]
        self.result["shared"] = {"project": project, "started": stale}
        if not stale:
            return
        self.result["changed"] = True
        argv = cli.argv(project, ["up", "--detach", "--wait", "--wait-timeout", str(shared["wait_timeout"])], **opts)
        if self.check_mode:
            self.compose.actions.append(describe_argv(argv))
            return
        try:
            cli.run(argv, cwd=src, changes=True)
        finally:
            self.compose.actions.extend(cli.actions)

    def prepare_images(self, targets, specs, platform):
        """{service: image inspect} for the targets, after pull/build per policy; architecture checked."""
        pull, build = self.params["pull"], self.params["build"]
        refs = dict((name, service_image(self.project, name, specs[name])) for name in targets)
        present = dict((name, self.engine.image(ref)) for name, ref in refs.items())
        to_build = [n for n in targets
                    if "build" in specs[n] and (build == "always" or (build == "missing" and not present[n]))]
        to_pull = [n for n in targets
                   if n not in to_build and (pull == "always" or (pull == "missing" and not present[n]))]
        missing = [n for n in targets if not present[n] and n not in to_build + to_pull]
        if missing:
            raise BlueGreenError(
                "image %s of %s %s not present locally, and pull=%s, build=%s do not provide it" % (
                    ", ".join("%s (service %s)" % (refs[n], n) for n in missing),
                    self.project, "is" if len(missing) == 1 else "are", pull, build))
        self._check_platforms(dict((n, present[n]) for n in targets if present[n] and n not in to_build + to_pull),
                              refs, platform)
        if to_pull:
            self.result["changed"] = True
            self.do(self.compose_argv(["pull", "--quiet", "--ignore-buildable"] + to_pull), "docker compose pull")
        if to_build:
            self.result["changed"] = True
            self.do(self.compose_argv(["build"] + to_build), "docker compose build")
        if self.check_mode:
            return dict((n, present[n]) for n in targets if n not in to_build + to_pull)
        fresh = dict((n, self.engine.image(refs[n])) for n in to_build + to_pull)
        gone = [n for n, image in fresh.items() if not image]
        if gone:
            raise BlueGreenError("image %s still missing after pull/build"
                                 % ", ".join("%s (service %s)" % (refs[n], n) for n in gone))
        self._check_platforms(fresh, refs, platform)
        present.update(fresh)
        return present

    def _check_platforms(self, images, refs, platform):
        for name, image in sorted(images.items()):
            found = image_platform(image)
            fit = platform_fit(platform, found)
            if fit == "mismatch":
                raise BlueGreenError(
                    "image %s (service %s) is built for %s, but the host (docker_host %s) is %s: build or pull an "
                    "image for %s first; no container was touched" % (
                        refs[name], name, found, self.params["docker_host"] or "default", platform, platform))
            if fit == "warn":
                self.warn("image %s (service %s) is built for %s on a %s host: it runs only where the CPU supports it"
                          % (refs[name], name, found or "an unknown platform", platform))

    # -- started: the staged start of one color ---------------------------------

    def state_started(self, before):
        if self.config is None:
            raise BlueGreenError("project_src is required for state=started")
        targets = self.targets(before)
        specs = config_services(self.config)
        beats = [name for name in targets if name in self.beat_services]
        first = [name for name in targets if name not in beats]
        if self.params["web_service"] in first and self.params["health"]:
            self.health_settings()  # bad health input fails here, before anything starts
        switch = self._switch(first)  # so does a bad switch
        images = self._present_images(targets, specs)
        quiesce = self._quiesce()  # and a bad quiesce
        retire, grow = self._retire(targets), self._grow(targets)  # and a bad retire or grow
        hints = {}
        stale = self._out_of_date(first, before, specs, images)
        if quiesce is not None and not self._run_within(quiesce):
            return targets, hints
        if self.params["await_other"] and not self.check_mode and (set(targets) & set(self.worker_services + beats)) \
                and not self._await_other():
            return targets, hints
        if stale and self.params["pressure"] and not self._pressure_gate():
            return targets, hints
        if stale:
            self._up(stale, specs, hints)
        if self.wait and not self.check_mode and not self.await_ready(first):
            return targets, hints
        if switch is not None:
            self._run_switch(switch)
        if beats:
            stale_beats = self._out_of_date(beats, self.containers(), specs, images)
            if stale_beats:
                self._hand_over_beat()
                self._up(stale_beats, specs, hints)
                if not self.check_mode:
                    self._watch_running(stale_beats, 1.0)
        if retire is not None and not self.check_mode:
            if not self._run_within(retire):
                return targets, hints
            self._note_retire(retire.result)
        # Before the record, which ends the journal: a wait for the host to settle that spans calls keeps its deadline.
        if grow is not None and not self.check_mode and not self._run_within(grow):
            return targets, hints
        if self.params["activate"]:
            self.record(self.color, self.params["release"])
        return targets, hints

    def _switch(self, first):
        """The traffic switch this call makes once the web is healthy, checked before anything starts; or None."""
        options = self.params["switch"]
        if not options:
            return None
        if self.params["web_service"] not in first:
            raise BlueGreenError("switch moves traffic to the web this call starts: services must include %s"
                                 % self.params["web_service"])
        if self.wait is False:
            raise BlueGreenError("switch needs wait: traffic moves only to a web seen healthy")
        self.result["switch"] = {"failed": False}
        return ProxySwitch(options, self.color, self.params["release"], self.app, self.web_ports,
                           self.module.run_command, self.result["switch"], check_mode=self.check_mode,
                           diff_mode=self.diff_mode)

    def _quiesce(self):
        """The other color's quiesce this call makes before it starts anything, checked now; or None."""
        options = self.params["quiesce"]
        if not options:
            return None
        if not self.celery:
            raise BlueGreenError("quiesce needs celery: the Celery app and services of the color it quiesces")
        color = options["color"] or other_color(self.color)
        if color == self.color:
            raise BlueGreenError("quiesce.color %s is the color this call starts: quiesce the other one" % color)
        params = dict(self._celery_params(color), state="quiesced", mode=options["mode"],
                      keep_processes=options["keep_processes"], drain_timeout=options["drain_timeout"],
                      visibility_timeout=options["visibility_timeout"], max_pause=options["max_pause"],
                      wait_exited=False)
        return self._within("quiesce", params)

    def _celery_params(self, color):
        """What every quiesce this call makes of `color` shares with it (celery_quiesce's options)."""
        celery = self.celery
        return dict(
            docker_host=self.params["docker_host"], app=self.app, color=color, state_dir=self.params["state_dir"],
            journal=self.params["journal"], worker_services=self.worker_services, beat_services=self.beat_services,
            control_service=celery["control_service"], celery_app=celery["app"], celery_command=celery["command"],
            stop_timeout=self.params["stop_timeout"], ready_timeout=celery["ready_timeout"],
            wait_slice=self.params["wait_slice"], broker_check=celery["broker_check"])

    def _within(self, name, params):
        """A celery_quiesce run inside this call, its input checked now (before anything starts)."""
        manager = quiesce_within(self.module, params, self.engine, self.journal)
        manager.reported = None
        self.within[name] = manager
        self.result[name] = {"failed": False}
        return manager

    def _after_workers(self, name, targets):
        """O(retire) or O(grow), checked: a step once this call's workers are ready; None when not asked for."""
        options = self.params[name]
        if not options:
            return None
        if not self.celery:
            raise BlueGreenError("%s needs celery: the Celery app and services of the workers it acts on" % name)
        if not set(targets) & set(self.worker_services):
            raise BlueGreenError("%s acts once this call's workers are ready: services must include a worker service "
                                 "(%s)" % (name, ", ".join(self.worker_services)))
        return options

    def _retire(self, targets):
        """The other color's workers, drained and stopped once this color's are ready (O(retire)); or None."""
        options = self._after_workers("retire", targets)
        if not options:
            return None
        color = options["color"] or other_color(self.color)
        if color == self.color:
            raise BlueGreenError("retire.color %s is the color this call starts: retire the other one" % color)
        # Its beat was handed over (O(other_beat)) before this color's started.
        params = dict(self._celery_params(color), state="quiesced", mode="stop", beat_services=[],
                      drain_timeout=options["drain_timeout"], visibility_timeout=options["visibility_timeout"])
        manager = self._within("retire", params)
        manager.same_broker = options["same_broker"]
        return manager

    def _grow(self, targets):
        """This color's workers grown from their warm-up pool once the host has settled (O(grow)); or None."""
        options = self._after_workers("grow", targets)
        if not options:
            return None
        params = dict(self._celery_params(self.color), state="resumed", processes=options["processes"],
                      beat_services=[], pressure=self.params["pressure"])
        manager = self._within("grow", params)
        manager.same_broker = True
        return manager

    def _run_within(self, manager):
        """One quiesce of this call; False while its wait goes on (the next call continues it)."""
        if getattr(manager, "same_broker", False) and manager.control is None:
            manager.control = self._control()  # one Celery agent for the whole call
        try:
            manager.run()
        except Exception:
            manager.result["failed"] = True
            raise
        manager.result["failed"] = False
        manager.reported = manager.partial()
        if manager.result["changed"]:
            self.result["changed"] = True
        if manager.result["waiting"]:
            self._waiting(manager.result["progress"])
            return False
        return True

    def _note_retire(self, retired):
        """The deploy's history says what the retire stopped, as it says it of a quiesce."""
        record = self.params["record"]
        if record is None:
            return
        record.update(stopped=retired.get("containers") or [], drained=retired.get("drained"),
                      still_active=len(retired.get("still_active") or []),
                      restored=int(record.get("restored") or 0) + len(retired.get("restored") or []),
                      retire_timings=retired.get("timings") or {})

    def _run_switch(self, switch):
        """Traffic to this color, in this execution: no module start between the web healthy and the switch."""
        try:
            switch.run()
        except BlueGreenError:
            self.result["switch"]["failed"] = True
            raise
        finally:
            self.result["switched"] = self.result["switch"]["switched"]
        if self.result["switch"]["changed"]:
            self.result["changed"] = True

    def _present_images(self, targets, specs):
        """{service: image inspect}; a missing image, or one of another architecture, fails before anything starts."""
        images, refs = {}, {}
        for name in targets:
            refs[name] = service_image(self.project, name, specs[name])
            images[name] = self.engine.image(refs[name])
            if images[name] is None and "build" not in specs[name]:
                raise BlueGreenError("image %s (service %s) of %s is not present locally: prepare it first (state=prepared "
                                     "pulls or builds it); nothing was started" % (refs[name], name, self.project))
        self._check_platforms(dict((n, i) for n, i in images.items() if i), refs, self.engine.architecture())
        return images

    def _out_of_date(self, names, before, specs, images):
        """{service: why it must be (re)started} for those of `names` that are not up to date."""
        mine = dict((name, [c for c in before if c["service"] == name]) for name in names)
        # No container, no hash to compare: `config --hash` only for services that have some.
        with_containers = [name for name in names if mine[name]]
        hashes = self.compose.config_hashes(self.project, with_containers, **dict(
            self.project_opts, files=list(self.project_opts["files"]) + [self._override()])) if with_containers else {}
        reasons = {}
        for name in names:
            containers, spec, image = mine[name], specs[name], images.get(name)
            if not containers:
                reasons[name] = "no container"
            elif len(containers) < service_replicas(spec):
                reasons[name] = "%d of %d containers" % (len(containers), service_replicas(spec))
            elif any(c["state"] != "running" for c in containers):
                reasons[name] = "not running (%s)" % ", ".join(sorted({c["state"] for c in containers
                                                                       if c["state"] != "running"}))
            elif image is not None and any(c["image_id"] != image["Id"] for c in containers):
                reasons[name] = "image changed"
            elif hashes is None or any(c["config_hash"] != hashes.get(name) for c in containers):
                reasons[name] = "configuration changed"
        self.result.setdefault("reasons", {}).update(reasons)
        return [name for name in names if name in reasons]

    def _await_other(self):
        """The other color's containers told to stop, seen exited; then its orphans put back in the broker.
        False when this call's slice ended first."""
        other = project_name(self.app, other_color(self.color))
        issued = dict((e["id"], e["stop_issued_at"]) for e in self.journal.of(other) if e.get("stop_issued_at"))
        if not issued:
            return True
        limit = self.params["stop_timeout"] + 15
        # The same wait (and deadline) as celery_quiesce's own, should a deploy call that one instead.
        with Wait("stop:%s" % other, limit, self.journal, self.params["wait_slice"]) as wait:
            started = time.monotonic()
            while True:
                pending = [c for c in self.engine.inspect(sorted(issued)) if (c["running"] or c["restarting"])
                           and (iso_epoch(c["started_at"]) or 0) < issued[c["id"]]]
                if not pending:
                    break
                if wait.expired():
                    raise BlueGreenError("container(s) %s still running %d s after they were told to stop; the workers "
                                         "of %s were not started" % (describe(pending), limit, self.project))
                if wait.slice_over():
                    wait.pause()
                    self._waiting(wait.progress("%s stopping (warm shutdown) before the workers of %s start"
                                                % (describe(pending), self.project)))
                    return False
                time.sleep(0.1)
            self.timings["other_exited"] = seconds(time.monotonic() - started)
        if self.celery.get("broker_check", True):
            started = time.monotonic()
            checked, back = reclaim_orphans(self._control(), set(), time.time(), self.warn)
            self.result.update(broker_checked=checked, restored=back)
            self.result["changed"] = self.result["changed"] or bool(back)
            if back and self.params["record"] is not None:
                # The deploy's history says how many messages its quiesce left behind were put back.
                self.params["record"]["restored"] = int(self.params["record"].get("restored") or 0) + len(back)
            self.timings["broker"] = seconds(time.monotonic() - started)
        return True

    def _pressure_gate(self):
        """Wait for the host to settle before a stage starts; False when this call's slice ended first."""
        pressure = self.params["pressure"]
        with Wait("pressure:%s" % self.project, pressure["wait_timeout"], self.journal, self.params["wait_slice"]) as wait:
            started = time.monotonic()
            outcome = Gauge(self.module).wait(self._limits(), pressure["wait_timeout"], interval=1.0,
                                              until=time.monotonic() + wait.remaining())
            self.timings["pressure"] = seconds(time.monotonic() - started)
            self.result["pressure"] = outcome["readings"]
            if outcome["settled"]:
                wait.done()
                return True
            if outcome["impossible"] or wait.expired():
                raise BlueGreenError(pressure_failure(outcome["exceeded"], pressure["wait_timeout"],
                                                      "the start of %s" % self.project, outcome["impossible"]))
            wait.pause()
            self._waiting(wait.progress("host pressure before the start of %s (%s)"
                                        % (self.project, "; ".join(outcome["exceeded"]))))
            return False

    def _waiting(self, progress):
        self.result.update(waiting=True, progress=progress)

    def _up(self, names, specs, hints):
        if self.color == self.active:
            self._warn_active("starting (and recreating where out of date) containers of")
        self.result["changed"] = True
        args = ["up", "--detach", "--no-build", "--pull", "never", "--timeout", str(self.params["stop_timeout"])]
        started = time.monotonic()
        self.do(self.compose_argv(args + list(names), labelled=True), "docker compose up")
        self.timings["up"] = seconds(self.timings.get("up", 0) + time.monotonic() - started)
        for name in names:
            hints[name] = {"state": "running", "health": _expected_health(specs[name], self.wait)}
        if not self.check_mode:
            for c in self.containers(names):
                self.baseline[c["id"]] = c["restart_count"]

    # -- waiting for readiness ----------------------------------------------------

    def watch(self, names):
        """The targets' containers now; fails at once when one has exited or keeps restarting."""
        current = self.containers(names)
        bad = []
        for c in current:
            count = self.baseline.setdefault(c["id"], c["restart_count"])
            if c["state"] in ("exited", "dead"):
                bad.append((c, "exited (exit code %s)" % c["exit_code"]))
            elif c["restarting"] or c["restart_count"] > count:
                bad.append((c, "keeps restarting (%d restarts)" % c["restart_count"]))
        if bad:
            self.result["logs"] = self._logs([c for c, _why in bad])
            last = []
            for c, _why in bad:
                last.extend(self.result["logs"].get(c["service"], [])[-5:])
            raise NotReady("%s: %s; its last log lines: %s" % (
                self.project, "; ".join("%s %s" % (c["name"], why) for c, why in bad),
                " | ".join(line.strip() for line in last if line.strip()) or "(none)"))
        return current

    def await_ready(self, names):
        """Each started service ready, by its kind; False when this call's slice ended before."""
        started = time.monotonic()
        try:
            webs = [n for n in names if n == self.params["web_service"] and self.params["health"]]
            workers = [n for n in names if n in self.worker_services and self.celery.get("app")]
            others = [n for n in names if n not in webs + workers]
            ready = (self._await_docker_health(others) and self._await_health(webs)
                     and self._await_workers(workers))
        finally:
            self.timings["ready"] = seconds(self.timings.get("ready", 0) + time.monotonic() - started)
        return ready

    def _await_docker_health(self, names):
        if not names:
            return True
        with Wait("running:%s" % self.project, self.params["wait_timeout"], self.journal, self.params["wait_slice"]) as wait:
            while True:
                pending = [c for c in self.watch(names) if not c["running"] or c["health"] not in READY_HEALTH]
                if not pending:
                    wait.done()
                    return True
                if wait.expired():
                    self.result["logs"] = self._logs(pending)
                    raise BlueGreenError("%s: not ready after wait_timeout=%ss: %s"
                                         % (self.project, self.params["wait_timeout"], describe(pending)))
                if wait.slice_over():
                    wait.pause()
                    self._waiting(wait.progress("%s ready (Docker health): %s" % (self.project, describe(pending))))
                    return False
                time.sleep(POLL)

    def _await_health(self, names):
        """The web on its own port: consecutive healthy answers that name this color and release."""
        if not names:
            return True
        health = self.params["health"]
        with Wait("health:%s" % self.project, health["deadline"], self.journal, self.params["wait_slice"]) as wait:
            checker = HealthChecker(self.health_settings())
            healthy, facts, message = checker.check(watch=lambda: self.watch(names),
                                                    deadline=round(max(wait.remaining(), 0.1), 1))
            self.result["health"] = facts
            if healthy:
                wait.done()
                return True
            if wait.expired():
                raise BlueGreenError("%s: the new web is not healthy within health.deadline=%ss: %s"
                                     % (self.project, health["deadline"], message))
            wait.pause()
            self._waiting(wait.progress("%s healthy on its own port (%s)" % (
                self.project, facts.get("last_error") or "HTTP %s" % facts.get("status"))))
            return False

    def health_settings(self):
        health = self.params["health"]
        if self.color not in self.web_ports:
            raise BlueGreenError("health needs web_ports with the port of %s" % self.color)
        url = "%s://%s:%d%s" % (health["scheme"], health["host"], self.web_ports[self.color], health["path"])
        return color_check_settings(url, health, self.color, self.params["release"])

    def _await_workers(self, names):
        """Each worker answers Celery's ping: ready to consume, not merely started."""
        if not names:
            return True
        celery = self.celery
        with Wait("workers:%s" % self.project, celery["ready_timeout"], self.journal, self.params["wait_slice"]) as wait:
            started = time.monotonic()
            nodes = {}
            last_broadcast = 0.0
            while True:
                current = self.watch(names)
                workers = [c for c in current if c["running"]]
                pending = [c for c in workers if c["id"] not in nodes]
                if workers and pending:
                    control = self._control()
                    answered = parse_ping(control.ping(destination=[node_name(c["hostname"]) for c in pending],
                                                       timeout=min(0.5, max(wait.remaining(), 0.2))))
                    now = time.monotonic()
                    for c in list(pending):
                        if node_name(c["hostname"]) in answered:
                            nodes[c["id"]] = [node_name(c["hostname"])]
                    pending = [c for c in pending if c["id"] not in nodes]
                    if pending and now - last_broadcast > 3.0:
                        # A worker started with another node name answers a ping to all, matched by hostname.
                        last_broadcast = now
                        everyone = parse_ping(control.ping(timeout=1.0))
                        for c in list(pending):
                            mine = nodes_of_host(everyone, c["hostname"])
                            if mine:
                                nodes[c["id"]] = mine
                        pending = [c for c in pending if c["id"] not in nodes]
                if not pending and workers:
                    self.result["workers_ready"] = sorted(n for found in nodes.values() for n in found)
                    self.timings["workers_ready"] = seconds(time.monotonic() - started)
                    wait.done()
                    return True
                if wait.expired():
                    current = self.containers(names)
                    self.result["logs"] = self._logs(current)
                    raise BlueGreenError("worker(s) of %s not ready within ready_timeout (%s s): %s answer no Celery "
                                         "ping" % (self.project, celery["ready_timeout"],
                                                   describe([c for c in current if c["id"] not in nodes])))
                if wait.slice_over():
                    wait.pause()
                    self._waiting(wait.progress("the workers of %s ready (Celery ping)" % self.project))
                    return False
                time.sleep(0.2)

    def _control(self):
        """Celery's control from a container of this color that is already up (the web), else the workers."""
        if self.control is None:
            containers = self.containers()
            control = [c for c in containers if c["service"] == self.celery.get("control_service") and c["running"]]
            fallback = [c for c in containers if c["service"] in self.worker_services and c["running"]]
            try:
                self.control = open_control(self.engine, self.module.get_bin_path("docker", required=True),
                                            control + fallback, self.celery.get("command") or ["celery"],
                                            self.celery["app"], environ=self._docker_environ(), note=self.warn)
            except CeleryError as exc:
                raise BlueGreenError("cannot ask the workers of %s whether they are ready: %s" % (self.project, exc))
        return self.control

    def _docker_environ(self):
        return {"DOCKER_HOST": self.params["docker_host"]} if self.params["docker_host"] else {}

    def _hand_over_beat(self):
        """One scheduler, always: the other color's beat must have exited before this color's starts."""
        other = project_name(self.app, other_color(self.color))
        live = [c for c in self.engine.containers(other, self.beat_services)
                if c["running"] or c["paused"] or c["restarting"]]
        if not live:
            return
        if self.params["other_beat"] != "stop" and self.check_mode:
            self.warn("the beat of %s is still running: in a real run it must have exited (quiesced first) before the "
                      "beat of %s starts" % (other, self.project))
            return
        if self.params["other_beat"] != "stop":
            raise BlueGreenError(
                "the beat of %s is still running (%s): starting the beat of %s beside it would make two "
                "schedulers. Quiesce %s first (celery_quiesce), or set other_beat=stop"
                % (other, ", ".join(c["name"] for c in live), self.project, other))
        self.result["other_beat_stopped"] = [c["id"] for c in live]
        self.result["changed"] = True
        if self.check_mode:
            self.engine.actions.append("stop --time %d %s" % (self.params["stop_timeout"],
                                                              " ".join(c["id"] for c in live)))
            return
        # Written down first: a rescue (or the re-run after a Ctrl-C) starts it again.
        self.journal.add(other, [{"id": c["id"], "service": c["service"], "action": "stopped", "queues": []}
                                 for c in live])
        self.engine.stop(live, self.params["stop_timeout"])
        self.engine.wait_exited(live, 10, "beat")

    def _watch_running(self, names, period):
        """A just-started service that exits at once fails the call (beat has no readiness to wait for)."""
        end = time.monotonic() + period
        while time.monotonic() < end:
            self.watch(names)
            time.sleep(POLL)
        self.watch(names)

    # -- absent -------------------------------------------------------------------

    def state_absent(self, before):
        targets = self.targets(before)
        mine = [c for c in before if c["service"] in targets]
        if self.project_opts and not self.services:
            networks = self.engine.labelled("network", self.project)
            volumes = self.engine.labelled("volume", self.project) if self.params["remove_volumes"] else []
            if before or networks or volumes:
                self._warn_active("removing")
                self.result["changed"] = True
                args = ["down", "--remove-orphans", "--timeout", str(self.params["stop_timeout"])]
                if self.params["remove_volumes"]:
                    args.append("--volumes")
                self.do(self.compose_argv(args), "docker compose down")
            return targets, dict((c["service"], {"state": "absent", "health": "none"}) for c in before)
        if mine:
            self._warn_active("removing containers of")
            self.result["changed"] = True
            if not self.check_mode:
                self.engine.stop([c for c in mine if c["running"] or c["paused"] or c["restarting"]],
                                 self.params["stop_timeout"])
                self.engine.remove([c["id"] for c in mine], volumes=self.params["remove_volumes"])
        if not self.services:
            leftovers = [("network", self.engine.labelled("network", self.project))]
            if self.params["remove_volumes"]:
                leftovers.append(("volume", self.engine.labelled("volume", self.project)))
            for kind, names in leftovers:
                if names:
                    self.result["changed"] = True
                    if not self.check_mode:
                        self.engine.remove_labelled(kind, names)
        return targets, dict((c["service"], {"state": "absent", "health": "none"}) for c in mine)


def _expected_health(spec, wait):
    healthcheck = spec.get("healthcheck") or {}
    if not healthcheck or healthcheck.get("disable"):
        return "none"
    return "healthy" if wait else "starting"


def _diff_view(services):
    return dict((name, {"state": entry["state"], "health": entry["health"]}) for name, entry in sorted(services.items()))


ARGUMENT_SPEC = dict(
    app=dict(type="str", required=True),
    project_src=dict(type="path"),
    files=dict(type="list", elements="str"),
    env_files=dict(type="list", elements="str"),
    env=dict(type="dict", no_log=True),
    variables=dict(type="dict"),
    web_ports=dict(type="dict"),
    web_port_variable=dict(type="str", default="BLUEGREEN_WEB_PORT"),
    compose_command=dict(type="list", elements="str"),
    color=dict(type="str", default="idle", choices=["blue", "green", "active", "idle"]),
    state=dict(type="str", default="inspect",
               choices=["inspect", "prepared", "started", "stopped", "paused", "unpaused", "absent", "active"]),
    services=dict(type="list", elements="str"),
    web_service=dict(type="str", default="web"),
    wait=dict(type="bool"),
    wait_timeout=dict(type="int", default=300),
    wait_slice=dict(type="int", default=0),
    pull=dict(type="str", default="missing", choices=["missing", "always", "never"]),
    build=dict(type="str", default="never", choices=["never", "always", "missing"]),
    release=dict(type="str"),
    record=dict(type="dict"),
    lock=dict(type="dict", no_log=False, options=dict(
        token=dict(type="str", required=True, no_log=False),
        holder=dict(type="str", default="ansible"),
        info=dict(type="dict"),
        stale_after=dict(type="int", default=7200),
        break_stale=dict(type="bool", default=False),
    )),
    unlock=dict(type="str", no_log=False),
    history_size=dict(type="int", default=10),
    state_dir=dict(type="path", default=DEFAULT_STATE_DIR),
    journal=dict(type="path"),
    remove_volumes=dict(type="bool", default=False),
    stop_timeout=dict(type="int", default=60),
    logs=dict(type="list", elements="str", default=[]),
    activate=dict(type="bool", default=False),
    await_other=dict(type="bool", default=False),
    other_beat=dict(type="str", default="refuse", choices=["refuse", "stop"]),
    pressure=pressure_option(),
    health=dict(type="dict", options=dict(
        scheme=dict(type="str", default="http", choices=["http", "https"]),
        host=dict(type="str", default="127.0.0.1"),
        path=dict(type="str", default="/health/"),
        **color_check_options(deadline=120)
    )),
    celery=dict(type="dict", options=dict(
        app=dict(type="str", required=True),
        command=dict(type="list", elements="str", default=["celery"]),
        control_service=dict(type="str", default="web"),
        worker_services=dict(type="list", elements="str", default=["worker"]),
        beat_services=dict(type="list", elements="str", default=["beat"]),
        ready_timeout=dict(type="int", default=180),
        broker_check=dict(type="bool", default=True),
    )),
    quiesce=dict(type="dict", options=dict(
        color=dict(type="str", choices=["blue", "green"]),
        mode=dict(type="str", choices=["stop", "pause", "shrink"], default="stop"),
        keep_processes=dict(type="int", default=1),
        drain_timeout=dict(type="int", default=300),
        visibility_timeout=dict(type="int", default=3600),
        max_pause=dict(type="int", default=600),
    )),
    retire=dict(type="dict", options=dict(
        color=dict(type="str", choices=["blue", "green"]),
        drain_timeout=dict(type="int", default=300),
        visibility_timeout=dict(type="int", default=3600),
        same_broker=dict(type="bool", default=False),
    )),
    grow=dict(type="dict", options=dict(
        processes=dict(type="int", required=True),
    )),
    switch=dict(type="dict", options=SWITCH_OPTIONS),
    shared=dict(type="dict", options=dict(
        project_src=dict(type="path", required=True),
        files=dict(type="list", elements="str", default=[]),
        env=dict(type="dict", default={}, no_log=True),
        wait_timeout=dict(type="int", default=180),
    )),
)


def main():
    run_module(
        ColorManager, ARGUMENT_SPEC,
        required_by=dict(files=("project_src",), env_files=("project_src",)),
        required_if=[("state", "started", ("project_src",)), ("state", "prepared", ("project_src",))],
    )


if __name__ == "__main__":
    main()
