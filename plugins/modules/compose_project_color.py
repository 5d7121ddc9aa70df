#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compose_project_color
short_description: Inspect, start, stop, pause or remove one color of a blue-green Compose app, and record the active color
version_added: 0.1.0
description:
  - Manages one color (V(blue) or V(green)) of an app deployed blue-green with Docker Compose. Each color is its
    own Compose project C(<app>-<color>) made from the same compose files.
  - Records which color is active in a small state file on the host, C(<state_dir>/<app>.json), written
    atomically (temporary file, C(fsync), rename; mode V(0644)) with a bounded history of recent deploys.
  - Every Docker and Compose command is an argument list (never a shell). O(env) reaches Compose through its
    environment, never its command line. The module always sets C(BLUEGREEN_COLOR) to the color it acts on and,
    when O(release) is set, C(BLUEGREEN_RELEASE), over any value O(env) gives them.
  - B(Which color is active.) The state file's color is checked against what runs, the O(web_service)
    containers of both colors. The resolutions below apply in this order; all but 1 and 6 also return a
    warning.
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
  - B(Bad input fails before anything changes), naming the option - an O(app) Compose would reject, an unknown
    O(color) or O(state), a missing O(project_src), compose file or env file, compose files that
    C(docker compose config) rejects, a service in O(services) the compose files do not define, a negative
    timeout, a Docker daemon that does not answer (O(docker_host)), Compose v1 or no Compose.
extends_documentation_fragment:
  - lowspec.bluegreen._compose
  - lowspec.bluegreen._docker
  - lowspec.bluegreen._attributes
attributes:
  check_mode:
    support: full
    details:
      - Runs every read-only check (daemon, Compose, compose files, images, architecture, containers, state file)
        and reports in C(actions) the commands it would run, in C(containers) the containers it would stop,
        freeze or start, and changes nothing. Images that would be pulled or built are not checked for their
        architecture in check mode.
  diff_mode:
    support: full
    details:
      - O(state=active) returns the state file change (active color and release). The other states return the
        targeted services' states before and after.
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
      - V(inspect) changes nothing and reports colors, services and history.
      - V(started) makes the targeted services run the current configuration - C(docker compose up --detach)
        (with C(--wait) when O(wait)), which creates missing containers and recreates those whose configuration
        or image changed. That is right for the idle color a deploy starts, and wrong for an old color during a
        deploy; use V(unpaused) there. Before anything starts, the compose files are validated, images are
        pulled or built per O(pull) and O(build), and each image's architecture is checked against the host's;
        any failure stops the module before a container is touched. No change when every targeted service
        already has its containers running the current configuration and image (and healthy, where the service
        has a health check and O(wait) is on).
      - V(prepared) does everything V(started) does before starting - validates the compose files, pulls or
        builds images per O(pull) and O(build), checks each image's architecture against the host's - and starts
        nothing. A deploy runs it while the old release still serves, so that a missing or wrong-architecture
        image fails the deploy before anything was quiesced. Changed only when it pulled or built an image.
      - V(stopped) runs C(docker stop --time) O(stop_timeout) on the targeted services' running (or paused)
        containers, found by Compose labels. It never creates or recreates a container.
      - V(paused) runs C(docker pause) on the targeted services' running containers (the cgroup freezer; CPU is
        freed, memory is not). It never creates or recreates a container.
      - V(unpaused) brings existing containers back without recreating them - C(docker unpause) of the paused
        ones and C(docker start) of the stopped ones - even when the compose files or environment changed since
        they were created. This is how a rescue restores the old color. With O(wait), it then waits until they
        run (and are healthy, where they have a health check).
      - V(absent) removes the color. With O(project_src) and no O(services) it runs
        C(docker compose down --remove-orphans --timeout) O(stop_timeout) (C(--volumes) with O(remove_volumes)).
        With O(services), or without O(project_src), it works by labels - C(docker stop --time) O(stop_timeout),
        then C(docker rm) of the containers, and (without O(services)) C(docker network rm) of the project's
        networks and, with O(remove_volumes), C(docker volume rm) of its volumes.
      - V(active) records the resolved color as active in the state file, with O(release) and the O(record)
        facts in a new history entry. Recording the active color again with the same release is no change.
        It changes no container. A warning is returned when that color's web is not running.
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
        description).
    type: str
    default: web
  wait:
    description:
      - Wait until the targeted containers run, and are healthy where the service has a Docker health check.
      - When not set, V(true) for O(state=started) and O(state=unpaused), V(false) otherwise (other states do not
        use it).
      - For O(state=started) this is C(docker compose up --wait); a container that ends unhealthy or exits fails
        the module, and the last log lines of the targeted services that are not ready are returned in RV(logs).
    type: bool
  wait_timeout:
    description:
      - Seconds to wait with O(wait). Zero or more.
    type: int
    default: 300
  pull:
    description:
      - For O(state=started) and O(state=prepared), when to pull the images of the targeted services that are not built.
      - V(missing) pulls images that are not present locally; V(always) pulls them all; V(never) pulls nothing and
        fails if an image is missing.
    type: str
    choices: [missing, always, never]
    default: missing
  build:
    description:
      - For O(state=started) and O(state=prepared), when to build the images of targeted services that have a C(build) section.
      - V(never) builds nothing; V(missing) builds images that are not present locally; V(always) rebuilds them.
    type: str
    choices: [never, always, missing]
    default: never
  release:
    description:
      - The release label (for example a version or a commit).
      - Passed to Compose as C(BLUEGREEN_RELEASE) (so compose files can use it in image tags).
      - Recorded with O(state=active). When not set there, the release last recorded for that color is kept (a
        rollback to the previous color keeps its release).
    type: str
  record:
    description:
      - With O(state=active), extra facts merged into the new history entry (timings, what was stopped, the
        drain outcome...). The keys C(release), C(color), C(previous_color), C(previous_release) and C(at) are the
        module's own and cannot be overridden.
    type: dict
  history_size:
    description:
      - With O(state=active), how many history entries the state file keeps (newest first). Zero or more.
    type: int
    default: 10
  state_dir:
    description:
      - Directory of the state files, one C(<app>.json) per app. Created (mode V(0755)) when a color is first
        recorded.
    type: path
    default: /var/lib/lowspec-bluegreen
  remove_volumes:
    description:
      - With O(state=absent), also remove the project's volumes (named volumes declared in the compose files, and
        anonymous volumes of its containers). Volumes of the shared project are never touched.
    type: bool
    default: false
  stop_timeout:
    description:
      - Seconds a container gets between C(SIGTERM) and C(SIGKILL) when it is stopped (O(state=stopped),
        O(state=absent), and containers that O(state=started) recreates). Long enough for the longest task.
        Zero or more.
    type: int
    default: 60
notes:
  - O(env) is a C(no_log) option, so Ansible replaces each of its values with C(********) wherever that value
    appears in the result. Short or common values (V(1), V(true), a port) therefore mask unrelated parts of the
    result; put such variables in an O(env_files) file, and keep O(env) for secrets and values that are unique.
    The values of C(BLUEGREEN_COLOR) and C(BLUEGREEN_RELEASE) are not masked - they are no secrets and the module
    returns them.
author:
  - lowspec.bluegreen developers (@lowspec)
seealso:
  - name: Compose CLI reference
    description: The C(docker compose) commands this module runs.
    link: https://docs.docker.com/reference/cli/docker/compose/
"""

EXAMPLES = r"""
---
- name: Find the active and idle colors of the shop
  lowspec.bluegreen.compose_project_color:
    app: shop
    project_src: /srv/shop
    env:
      SHOP_WEB_PORT: "8001"
    state: inspect
  register: shop_colors

- name: Start the web service of the idle color with the new release, and wait for its health check
  lowspec.bluegreen.compose_project_color:
    app: shop
    project_src: /srv/shop
    files: [compose.yml, compose.prod.yml]
    env_files: [.env]
    env:
      SHOP_WEB_PORT: "{{ shop_ports[shop_colors.idle_color] }}"
    color: "{{ shop_colors.idle_color }}"
    release: v2.4.0
    services: [web]
    state: started
    wait_timeout: 180

- name: Start the rest of the idle color (workers, beat), pulling nothing
  lowspec.bluegreen.compose_project_color:
    app: shop
    project_src: /srv/shop
    color: "{{ shop_colors.idle_color }}"
    release: v2.4.0
    state: started
    pull: never

- name: Stop the old color's workers, with time for the longest task
  lowspec.bluegreen.compose_project_color:
    app: shop
    color: "{{ shop_colors.active_color }}"
    services: [worker, beat]
    state: stopped
    stop_timeout: 300
  register: shop_stopped

- name: Freeze the old color's web instead (frees CPU, keeps memory)
  lowspec.bluegreen.compose_project_color:
    app: shop
    color: "{{ shop_colors.active_color }}"
    services: [web]
    state: paused

- name: Rescue - bring the old color's containers back as they were (never recreated)
  lowspec.bluegreen.compose_project_color:
    app: shop
    color: "{{ shop_colors.active_color }}"
    services: [web, worker, beat]
    state: unpaused

- name: Record the new color as active, with facts of this deploy
  lowspec.bluegreen.compose_project_color:
    app: shop
    color: "{{ shop_colors.idle_color }}"
    release: v2.4.0
    state: active
    record:
      stopped: "{{ shop_stopped.containers }}"
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
      none.
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
    created:
      description: Creation time of the newest container, ISO 8601.
      type: str
actions:
  description:
    - The commands that changed something (in check mode, that would run), without the path of C(docker).
      Environment values never appear here.
  returned: always
  type: list
  elements: str
  sample:
    - compose --ansi never --project-name shop-green --project-directory /srv/shop up --detach --no-build
      --pull never --wait --wait-timeout 300 --timeout 60 web
containers:
  description:
    - For O(state=stopped), O(state=paused) and O(state=unpaused), the full ids of the containers this call
      stopped, froze, or unfroze and started - only those that were not already in that state. Empty when
      nothing changed. In check mode, those it would act on.
    - Keep the list of O(state=stopped) or O(state=paused) to restore exactly those containers later.
  returned: when O(state) is V(stopped), V(paused) or V(unpaused)
  type: list
  elements: str
  sample: [9a1c0d6f3b2a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d]
reasons:
  description: For O(state=started), why each service that is not up to date would be started or recreated.
  returned: when O(state=started)
  type: dict
  sample:
    web: configuration changed
    worker: not running
logs:
  description: When O(state=started) or O(state=unpaused) fails while waiting, the last log lines of each targeted
    service whose containers are not ready.
  returned: on failure while waiting
  type: dict
  sample:
    web: ["[ERROR] Worker failed to boot."]
diff:
  description:
    - With O(state=active), the state file's active color and release before and after.
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
import time
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import (
    COLORS,
    BlueGreenError,
    check_non_negative,
    other_color,
    project_name,
    validate_app_name,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._compose import (
    DEFAULT_COMPOSE_FILES,
    DockerCLI,
    DockerCLIError,
    always_restarted,
    compose_argspec_ex,
    config_services,
    first_error_line,
    host_platform,
    image_platform,
    keep_stopped_argv,
    platform_fit,
    service_image,
    service_replicas,
    services_from_containers,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._state import (
    DEFAULT_STATE_DIR,
    read_state,
    record_active,
    resolve_colors,
    state_diff,
    state_path,
    write_state,
)

_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UP = ("running",)
_READY_HEALTH = ("healthy", "none")
LOG_LINES = 30
OWN_VARIABLES = ("BLUEGREEN_COLOR", "BLUEGREEN_RELEASE")


def _env_value(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class ColorManager:
    """One call of the module: reads params, checks them, acts on one color."""

    def __init__(self, module):
        self.module = module
        self.params = params = module.params
        self.check_mode = module.check_mode
        self.diff_mode = module._diff
        self.state = params["state"]
        self.app = validate_app_name(params["app"])
        check_non_negative(params, ("wait_timeout", "stop_timeout", "history_size"))
        self.services = list(params["services"] or [])
        self.wait = params["wait"] if params["wait"] is not None else self.state in ("started", "unpaused")
        self.project_opts = self._project_opts()
        self.user_env = self._user_env()
        self.cli = DockerCLI(module, docker_host=params["docker_host"], env=self.user_env)
        self.result = {"changed": False, "actions": self.cli.actions}
        self.color = None
        self.project = None
        self.config = None
        self.host_platform = None
        self.state_file = state_path(params["state_dir"], self.app)
        self.recorded = None
        self.web = {}
        self.active = self.idle = None

    # -- input --------------------------------------------------------------

    def _project_opts(self):
        src = self.params["project_src"]
        if not src:
            return {}
        if not os.path.isdir(src):
            raise BlueGreenError("project_src=%s is not a directory" % src)
        files = self.params["files"] or []
        for name in files:
            if not os.path.isfile(os.path.join(src, name)):
                raise BlueGreenError("files: compose file %s not found in project_src=%s" % (name, src))
        if not files and not any(os.path.isfile(os.path.join(src, n)) for n in DEFAULT_COMPOSE_FILES):
            raise BlueGreenError("project_src=%s holds no compose file (%s); name them with files"
                                 % (src, ", ".join(DEFAULT_COMPOSE_FILES)))
        env_files = self.params["env_files"] or []
        for name in env_files:
            if not os.path.isfile(os.path.join(src, name)):
                raise BlueGreenError("env_files: %s not found in project_src=%s" % (name, src))
        return {"project_src": src, "files": files, "env_files": env_files}

    def _user_env(self):
        env = {}
        for option in ("variables", "env"):
            for key, value in (self.params[option] or {}).items():
                if not isinstance(key, str) or not _ENV_NAME_RE.match(key):
                    raise BlueGreenError("%s: %r is not a valid environment variable name" % (option, key))
                env[key] = _env_value(value)
        # `env` is no_log, so Ansible masks its values anywhere in the result. The color and the release
        # are no secrets (the module returns them), so their values are not masked.
        secrets = {_env_value(value) for key, value in (self.params["env"] or {}).items() if key not in OWN_VARIABLES}
        for key in OWN_VARIABLES:
            if env.get(key) and env[key] not in secrets:
                self.module.no_log_values.discard(env[key])
        if self.params["release"] is not None:
            env["BLUEGREEN_RELEASE"] = self.params["release"]
        return env

    # -- facts ---------------------------------------------------------------

    def preflight(self):
        """Everything read-only, in the order that fails earliest: daemon, Compose, colors, files."""
        try:
            info = self.cli.info()
        except DockerCLIError as exc:
            where = self.params["docker_host"] or "not set, the CLI's default"
            raise DockerCLIError("docker_host (%s): %s" % (where, exc), **exc.details()) from exc
        self.host_platform = host_platform(info)
        self.cli.compose_command()
        self.recorded = read_state(self.params["state_dir"], self.app)
        self.web = {c: self._web_status(c) for c in COLORS}
        active, idle, warnings = resolve_colors(self.recorded["active_color"], self.web)
        for warning in warnings:
            self.module.warn(warning)
        self.active, self.idle = active, idle
        wanted = self.params["color"]
        if wanted == "active":
            if not active:
                raise BlueGreenError(
                    "color=active: %s has no active color - the state file %s records none and no %s container "
                    "of either color is running; name the color (blue or green)"
                    % (self.app, self.state_file, self.params["web_service"]))
            self.color = active
        elif wanted == "idle":
            self.color = idle
        else:
            self.color = wanted
        self.project = project_name(self.app, self.color)
        given = self.user_env.get("BLUEGREEN_COLOR")
        if given is not None and given != self.color:
            self.module.warn("env sets BLUEGREEN_COLOR=%s; the module sets it to %s, the color it acts on"
                             % (given, self.color))
        self.cli.environ["BLUEGREEN_COLOR"] = self.color
        self.result.update(color=self.color, project=self.project)
        if self.project_opts and self.state != "active":
            self._load_config()

    def _web_status(self, color):
        containers = self.cli.project_container_details(project_name(self.app, color), [self.params["web_service"]])
        running = [c for c in containers if c["running"]]
        return {"running": bool(running), "created": min((c["created"] for c in running), default="")}

    def _load_config(self):
        try:
            self.config = self.cli.compose_config(self.project, **self.project_opts)
        except DockerCLIError as exc:
            raise DockerCLIError(
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
                    self.module.warn("services: %s has no container in %s; skipped (give project_src to check "
                                     "the names against the compose files)" % (", ".join(missing), self.project))
            return list(self.services)
        if self.config is not None:
            return sorted(config_services(self.config))
        return sorted({c["service"] for c in containers or []})

    def containers(self, services=None):
        return self.cli.project_container_details(self.project, services or None)

    def services_view(self, containers, targets):
        view = services_from_containers(containers)
        view = {name: entry for name, entry in view.items() if name in targets}
        if self.config is not None:
            for name, spec in config_services(self.config).items():
                if name in targets and name not in view:
                    view[name] = {"state": "absent", "health": "none", "containers": [],
                                  "image": service_image(self.project, name, spec), "created": ""}
        return view

    # -- running ------------------------------------------------------------

    def keep_stopped(self, containers):
        """`restart: always` -> `unless-stopped` before a stop or pause: a reboot must not bring them back."""
        always = always_restarted(containers)
        if always:
            self.do(keep_stopped_argv(self.cli.docker, always), "docker update --restart")

    def do(self, argv, what):
        """Run a changing command, or in check mode only record it; `what` names it in errors."""
        if self.check_mode:
            self.cli.actions.append(self.cli.describe(argv))
            return
        try:
            # In project_src, as the read-only compose calls run: `files` and `env_files` are relative to it.
            self.cli.run(argv, changes=True, cwd=self.project_opts.get("project_src"))
        except DockerCLIError as exc:
            reason = first_error_line(exc.stderr) or first_error_line(exc.stdout) or "exit code %s" % exc.rc
            raise DockerCLIError("%s of %s failed: %s" % (what, self.project, reason), **exc.details()) from exc

    def compose_argv(self, args):
        return self.cli.compose_argv(self.project, args, **self.project_opts)

    def run(self):
        self.preflight()
        before = self.containers() if self.state != "active" else []
        handler = getattr(self, "state_" + self.state)
        targets, after_hint = handler(before)
        if self.state not in ("active", "inspect"):
            after = self.containers() if (self.result["changed"] and not self.check_mode) else before
            before_view = self.services_view(before, targets)
            after_view = self.services_view(after, targets)
            self.result["services"] = after_view
            if self.check_mode and after_hint:
                after_view = {name: dict(entry, **after_hint.get(name, {})) for name, entry in after_view.items()}
            if self.diff_mode and self.result["changed"]:
                self.result["diff"] = {"before": _diff_view(before_view), "after": _diff_view(after_view)}
        self.result.update(
            active_color=self.active, idle_color=self.idle, recorded_color=self.recorded["active_color"],
            release=self.recorded["release"], history=self.recorded["history"], state_file=self.state_file,
        )
        return self.result

    # -- states -------------------------------------------------------------

    def state_inspect(self, before):
        targets = self.targets(before)
        self.result["services"] = self.services_view(before, targets)
        return targets, None

    def state_active(self, _before):
        params = self.params
        new, changed = record_active(self.recorded, self.color, params["release"], params["record"],
                                     params["history_size"])
        if changed and not self.web[self.color]["running"]:
            self.module.warn("recording %s as active although no %s container of %s is running"
                             % (self.color, params["web_service"], self.project))
        if changed and not self.check_mode:
            write_state(params["state_dir"], self.app, new)
        if changed and self.diff_mode:
            self.result["diff"] = state_diff(self.recorded, new)
        self.result["changed"] = changed
        containers = self.containers()
        self.result["services"] = self.services_view(containers, sorted({c["service"] for c in containers}))
        self.recorded = new
        self.active, self.idle = self.color, other_color(self.color)
        return [], None

    def _warn_active(self, what):
        if self.color == self.active:
            self.module.warn("%s %s, the active color (%s)" % (what, self.project, self.color))

    def state_stopped(self, before):
        targets = self.targets(before)
        ids = [c["id"] for c in before if c["service"] in targets and (c["running"] or c["paused"] or c["restarting"])]
        self.result["containers"] = ids
        if ids:
            self._warn_active("stopping containers of")
            self.result["changed"] = True
            self.keep_stopped([c for c in before if c["id"] in ids])
            self.do([self.cli.docker, "stop", "--time", str(self.params["stop_timeout"])] + ids, "docker stop")
        return targets, {c["service"]: {"state": "exited"} for c in before if c["id"] in ids}

    def state_paused(self, before):
        targets = self.targets(before)
        ids = [c["id"] for c in before if c["service"] in targets and c["running"]]
        self.result["containers"] = ids
        if ids:
            self._warn_active("freezing containers of")
            self.result["changed"] = True
            self.keep_stopped([c for c in before if c["id"] in ids])
            self.do([self.cli.docker, "pause"] + ids, "docker pause")
        return targets, {c["service"]: {"state": "paused"} for c in before if c["id"] in ids}

    def state_unpaused(self, before):
        targets = self.targets(before)
        mine = [c for c in before if c["service"] in targets]
        paused = [c["id"] for c in mine if c["paused"]]
        stopped = [c["id"] for c in mine if c["state"] in ("exited", "created")]
        for c in mine:
            if c["state"] == "dead":
                self.module.warn("container %s (%s) is dead and cannot be started; remove it"
                                 % (c["name"], c["service"]))
        self.result["containers"] = paused + stopped
        if paused:
            self.result["changed"] = True
            self.do([self.cli.docker, "unpause"] + paused, "docker unpause")
        if stopped:
            self.result["changed"] = True
            self.do([self.cli.docker, "start"] + stopped, "docker start")
        if self.wait and not self.check_mode:
            self.wait_ready([c["id"] for c in mine if c["state"] != "dead"])
        return targets, {c["service"]: {"state": "running"} for c in mine if c["id"] in paused + stopped}

    def wait_ready(self, ids):
        deadline = time.monotonic() + self.params["wait_timeout"]
        while True:
            current = self.cli.inspect_containers(ids)
            # An unhealthy status may be stale (a check that timed out while the container was frozen):
            # only a container that exited fails early; an unhealthy one gets until the deadline.
            failed = [c for c in current if c["state"] in ("exited", "dead")]
            pending = [c for c in current if not c["running"] or c["health"] not in _READY_HEALTH]
            if failed or (pending and time.monotonic() >= deadline):
                bad = failed or pending
                self.result["logs"] = self._logs(bad)
                raise BlueGreenError(
                    "%s: %s not ready%s: %s" % (
                        self.project, "containers" if len(bad) > 1 else "container",
                        "" if failed else " after wait_timeout=%ss" % self.params["wait_timeout"],
                        ", ".join("%s (%s, health %s)" % (c["name"], c["state"], c["health"]) for c in bad)))
            if not pending:
                return
            time.sleep(1)

    def _logs(self, containers):
        logs = {}
        for c in containers:
            logs.setdefault(c["service"], []).extend(self.cli.logs(c["id"], tail=LOG_LINES))
        return logs

    def state_prepared(self, before):
        if self.config is None:
            raise BlueGreenError("project_src is required for state=prepared")
        targets = self.targets(before)
        self.prepare_images(targets, config_services(self.config))
        return targets, None

    def state_started(self, before):
        if self.config is None:
            raise BlueGreenError("project_src is required for state=started")
        targets = self.targets(before)
        specs = config_services(self.config)
        images = self.prepare_images(targets, specs)
        hashes = self.cli.compose_config_hashes(self.project, **self.project_opts)
        reasons = {}
        for name in targets:
            reason = self._out_of_date(name, specs[name], [c for c in before if c["service"] == name],
                                       images.get(name), hashes)
            if reason:
                reasons[name] = reason
        self.result["reasons"] = reasons
        if not reasons:
            return targets, None
        if self.color == self.active and any(c["service"] in reasons for c in before):
            self._warn_active("starting (and recreating where out of date) containers of")
        self.result["changed"] = True
        args = ["up", "--detach", "--no-build", "--pull", "never"]
        if self.wait:
            args += ["--wait", "--wait-timeout", str(self.params["wait_timeout"])]
        args += ["--timeout", str(self.params["stop_timeout"])]
        args += list(self.services)
        try:
            self.do(self.compose_argv(args), "docker compose up")
        except DockerCLIError:
            self.result["logs"] = self._logs(
                [c for c in self.containers(targets) if not c["running"] or c["health"] not in _READY_HEALTH])
            raise
        return targets, {name: {"state": "running", "health": _expected_health(specs[name], self.wait)}
                         for name in reasons}

    def _out_of_date(self, name, spec, containers, image, hashes):
        if not containers:
            return "no container"
        if len(containers) < service_replicas(spec):
            return "%d of %d containers" % (len(containers), service_replicas(spec))
        if any(c["state"] not in _UP for c in containers):
            return "not running (%s)" % ", ".join(sorted({c["state"] for c in containers if c["state"] not in _UP}))
        if image is None or any(c["image_id"] != image["Id"] for c in containers):
            return "image changed"
        if hashes is not None and any(c["config_hash"] != hashes.get(name) for c in containers):
            return "configuration changed"
        if self.wait and any(c["health"] not in _READY_HEALTH for c in containers):
            unready = sorted({c["health"] for c in containers if c["health"] not in _READY_HEALTH})
            return "not healthy (%s)" % ", ".join(unready)
        return None

    def prepare_images(self, targets, specs):
        """{service: image inspect} for the targets, after pull/build per policy; architecture checked."""
        pull, build = self.params["pull"], self.params["build"]
        refs = {name: service_image(self.project, name, specs[name]) for name in targets}
        present = {name: self.cli.image_inspect(ref) for name, ref in refs.items()}
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
        self._check_platforms({n: present[n] for n in targets if present[n] and n not in to_build + to_pull}, refs)
        if to_pull:
            self.result["changed"] = True
            self.do(self.compose_argv(["pull", "--quiet", "--ignore-buildable"] + to_pull), "docker compose pull")
        if to_build:
            self.result["changed"] = True
            self.do(self.compose_argv(["build"] + to_build), "docker compose build")
        if self.check_mode:
            return {n: present[n] for n in targets if n not in to_build + to_pull}
        fresh = {n: self.cli.image_inspect(refs[n]) for n in to_build + to_pull}
        gone = [n for n, image in fresh.items() if not image]
        if gone:
            raise BlueGreenError("image %s still missing after pull/build"
                                 % ", ".join("%s (service %s)" % (refs[n], n) for n in gone))
        self._check_platforms(fresh, refs)
        present.update(fresh)
        return present

    def _check_platforms(self, images, refs):
        for name, image in sorted(images.items()):
            platform = image_platform(image)
            fit = platform_fit(self.host_platform, platform)
            if fit == "mismatch":
                raise BlueGreenError(
                    "image %s (service %s) is built for %s, but the host (docker_host %s) is %s: build or pull an "
                    "image for %s first; no container was touched" % (
                        refs[name], name, platform, self.params["docker_host"] or "default", self.host_platform,
                        self.host_platform))
            if fit == "warn":
                self.module.warn("image %s (service %s) is built for %s on a %s host: it runs only where the CPU "
                                 "supports it" % (refs[name], name, platform or "an unknown platform",
                                                  self.host_platform))

    def state_absent(self, before):
        targets = self.targets(before)
        mine = [c for c in before if c["service"] in targets]
        if self.project_opts and not self.services:
            networks = self.cli.labelled("network", self.project)
            volumes = self.cli.labelled("volume", self.project) if self.params["remove_volumes"] else []
            if before or networks or volumes:
                self._warn_active("removing")
                self.result["changed"] = True
                args = ["down", "--remove-orphans", "--timeout", str(self.params["stop_timeout"])]
                if self.params["remove_volumes"]:
                    args.append("--volumes")
                self.do(self.compose_argv(args), "docker compose down")
            return targets, {c["service"]: {"state": "absent", "health": "none"} for c in before}
        if mine:
            self._warn_active("removing containers of")
            self.result["changed"] = True
            running = [c["id"] for c in mine if c["running"] or c["paused"] or c["restarting"]]
            if running:
                self.do([self.cli.docker, "stop", "--time", str(self.params["stop_timeout"])] + running, "docker stop")
            self.do([self.cli.docker, "rm"] + (["--volumes"] if self.params["remove_volumes"] else [])
                    + [c["id"] for c in mine], "docker rm")
        if not self.services:
            networks = self.cli.labelled("network", self.project)
            if networks:
                self.result["changed"] = True
                self.do([self.cli.docker, "network", "rm"] + networks, "docker network rm")
            volumes = self.cli.labelled("volume", self.project) if self.params["remove_volumes"] else []
            if volumes:
                self.result["changed"] = True
                self.do([self.cli.docker, "volume", "rm"] + volumes, "docker volume rm")
        return targets, {c["service"]: {"state": "absent", "health": "none"} for c in mine}


def _expected_health(spec, wait):
    healthcheck = spec.get("healthcheck") or {}
    if not healthcheck or healthcheck.get("disable"):
        return "none"
    return "healthy" if wait else "starting"


def _diff_view(services):
    return {name: {"state": entry["state"], "health": entry["health"]} for name, entry in sorted(services.items())}


def main():
    argument_spec = dict(
        color=dict(type="str", default="idle", choices=["blue", "green", "active", "idle"]),
        state=dict(type="str", default="inspect",
                   choices=["inspect", "prepared", "started", "stopped", "paused", "unpaused", "absent", "active"]),
        services=dict(type="list", elements="str"),
        web_service=dict(type="str", default="web"),
        wait=dict(type="bool"),
        wait_timeout=dict(type="int", default=300),
        pull=dict(type="str", default="missing", choices=["missing", "always", "never"]),
        build=dict(type="str", default="never", choices=["never", "always", "missing"]),
        release=dict(type="str"),
        record=dict(type="dict"),
        history_size=dict(type="int", default=10),
        state_dir=dict(type="path", default=DEFAULT_STATE_DIR),
        remove_volumes=dict(type="bool", default=False),
        stop_timeout=dict(type="int", default=60),
        docker_host=dict(type="str"),
    )
    shared = compose_argspec_ex()
    argument_spec.update(shared["argspec"])
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_by=shared["required_by"],
        required_if=[("state", "started", ("project_src",)), ("state", "prepared", ("project_src",))],
        supports_check_mode=True,
    )
    manager = None
    try:
        manager = ColorManager(module)
        result = manager.run()
    except DockerCLIError as exc:
        extra = dict(manager.result) if manager else {}
        extra.update(exc.details())
        module.fail_json(msg=str(exc), **extra)
    except BlueGreenError as exc:
        module.fail_json(msg=str(exc), **(dict(manager.result) if manager else {}))
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg="unexpected error: %s" % exc, exception=traceback.format_exc(),
                         **(dict(manager.result) if manager else {}))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
