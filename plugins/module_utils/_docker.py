# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to the collection: this file may change without notice.
#
# The Docker Engine, reached through the `docker` SDK (one HTTP request over
# the daemon's socket per call, instead of a `docker` CLI process): listing,
# inspecting, starting, stopping, freezing, killing and removing containers,
# their logs, and images. Compose stays the Compose CLI (_compose.py).
# summarize_container() is pure and unit-tested on captured `docker inspect`.

from __future__ import annotations

import calendar
import os
import subprocess
import threading
import time
import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import (
    BlueGreenError,
)

DOCKER_IMPORT_ERROR = None
try:
    import docker
    from docker.errors import DockerException, NotFound
except ImportError:
    HAS_DOCKER_SDK = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_DOCKER_SDK = True

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_ONEOFF = "com.docker.compose.oneoff"
LABEL_CONFIG_HASH = "com.docker.compose.config-hash"
# Set by compose_project_color on every container it creates: which release it runs.
LABEL_RELEASE = "io.lowspec.bluegreen.release"

# Docker health states a deploy counts as ready (no health check at all included).
READY_HEALTH = ("healthy", "none")


class DockerError(BlueGreenError):
    """The Docker daemon refused or failed a request; the message names the operation."""


def summarize_container(inspected):
    """The parts of one `docker inspect` object a deploy cares about."""
    state = inspected.get("State") or {}
    config = inspected.get("Config") or {}
    labels = config.get("Labels") or {}
    health = (state.get("Health") or {}).get("Status") or "none"
    return {
        "id": inspected.get("Id", ""),
        "name": (inspected.get("Name") or "").lstrip("/"),
        "service": labels.get(LABEL_SERVICE, ""),
        "project": labels.get(LABEL_PROJECT, ""),
        "state": "paused" if state.get("Paused") else state.get("Status", "unknown"),
        "running": bool(state.get("Running")) and not state.get("Paused"),
        "paused": bool(state.get("Paused")),
        "restarting": bool(state.get("Restarting")),
        "restart_count": inspected.get("RestartCount") or 0,
        "health": health,
        "exit_code": state.get("ExitCode"),
        "started_at": state.get("StartedAt"),
        "finished_at": state.get("FinishedAt"),
        "image": config.get("Image", ""),
        "image_id": inspected.get("Image", ""),
        "created": inspected.get("Created", ""),
        "hostname": config.get("Hostname", ""),
        "oneoff": labels.get(LABEL_ONEOFF, "False") == "True",
        "restart_policy": ((inspected.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name", ""),
        "config_hash": labels.get(LABEL_CONFIG_HASH, ""),
        "release": labels.get(LABEL_RELEASE),
        # What other containers (the broker) see it connect from.
        "addresses": sorted(set(
            address for network in ((inspected.get("NetworkSettings") or {}).get("Networks") or {}).values()
            for address in ((network or {}).get("IPAddress"), (network or {}).get("GlobalIPv6Address")) if address)),
    }


def iso_epoch(value):
    """Epoch seconds of a Docker time stamp (`2026-12-01T22:28:42.644912345Z`), None for none or Docker's zero."""
    if not value or value.startswith("0001-"):
        return None
    main, _dot, fraction = value.rstrip("Z").partition(".")
    fraction = fraction.split("+")[0].split("-")[0]
    base = calendar.timegm(time.strptime(main[:19], "%Y-%m-%dT%H:%M:%S"))
    return base + (float("0." + fraction[:6]) if fraction else 0.0)


def services_from_containers(containers):
    """Per-service view of container summaries: state, health, ids, image, release."""
    services = {}
    for container in containers:
        entry = services.setdefault(
            container["service"],
            {"state": "", "health": "", "containers": [], "image": container["image"], "created": "",
             "release": container.get("release")},
        )
        entry["containers"].append(container["id"])
        entry["created"] = max(entry["created"], container["created"])
    for name, entry in services.items():
        mine = [c for c in containers if c["service"] == name]
        states = sorted({c["state"] for c in mine})
        healths = sorted({c["health"] for c in mine})
        releases = sorted({c.get("release") or "" for c in mine})
        entry["state"] = states[0] if len(states) == 1 else "mixed"
        entry["health"] = healths[0] if len(healths) == 1 else "mixed"
        entry["release"] = (releases[0] or None) if len(releases) == 1 else "mixed"
    return services


def describe(containers):
    """`name (state, health h)` of each container, for messages."""
    return ", ".join("%s (%s, health %s)" % (c["name"], c["state"], c["health"]) for c in containers)


def require_docker_sdk(module):
    if not HAS_DOCKER_SDK:
        module.fail_json(msg=missing_required_lib("docker"), exception=DOCKER_IMPORT_ERROR)


class Engine:
    """The Docker daemon of one module call.

    `actions` lists what changed something, as `docker` command lines would
    read (`stop --time 60 <id>`), for the module's result.
    """

    def __init__(self, module, docker_host="", timeout=60):
        require_docker_sdk(module)
        self.docker_host = docker_host or os.environ.get("DOCKER_HOST") or ""
        self.where = ("%s (docker_host)" % docker_host if docker_host
                      else "%s (DOCKER_HOST)" % self.docker_host if self.docker_host else "the default socket")
        self.timeout = timeout
        self.actions = []
        kwargs = {} if docker_host else docker.utils.kwargs_from_env()
        if self.docker_host:
            kwargs["base_url"] = self.docker_host
            kwargs["use_ssh_client"] = self.docker_host.startswith("ssh://")
        try:
            self.api = docker.APIClient(version="auto", timeout=timeout, **kwargs)
        except DockerException as exc:
            raise DockerError("the Docker daemon at %s is not reachable: %s" % (self.where, _reason(exc))) from exc

    def _call(self, what, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except NotFound:
            raise
        except DockerException as exc:
            raise DockerError("docker %s failed: %s" % (what, _reason(exc))) from exc

    # -- engine -----------------------------------------------------------

    def info(self):
        return self._call("info", self.api.info)

    def architecture(self):
        """The daemon's architecture as Go names it (`amd64`, `arm64`, `arm`): cheaper than info()."""
        return (self._call("version", self.api.version) or {}).get("Arch", "")

    # -- containers -------------------------------------------------------

    def containers(self, project, services=None):
        """Summaries of the project's containers (all states, one-off runs left out), by compose labels."""
        listed = self._call("ps", self.api.containers, all=True, filters={"label": "%s=%s" % (LABEL_PROJECT, project)})
        found = [c for c in self.inspect([item["Id"] for item in listed]) if not c["oneoff"]]
        if services:
            found = [c for c in found if c["service"] in services]
        return sorted(found, key=lambda c: (c["service"], c["name"]))

    def inspect(self, ids):
        """Summaries of the containers that still exist, in the order given."""
        found = []
        for ident in ids:
            try:
                found.append(summarize_container(self._call("inspect", self.api.inspect_container, ident)))
            except NotFound:
                continue
        return found

    def keep_stopped(self, containers):
        """`restart: always` becomes `unless-stopped` before a stop or a freeze.

        The two differ only when the daemon restarts: `always` would start the
        old color's workers and beat again beside the live ones after a reboot.
        """
        for container in containers:
            if container.get("restart_policy") == "always":
                self.actions.append("update --restart unless-stopped %s" % container["id"])
                self._call("update", self.api.update_container, container["id"],
                           restart_policy={"Name": "unless-stopped"})

    def stop(self, containers, timeout):
        """docker stop of exactly these containers, side by side, each with `timeout` s of grace."""
        if not containers:
            return
        self.keep_stopped(containers)
        self.actions.append("stop --time %d %s" % (timeout, " ".join(c["id"] for c in containers)))
        self._each("stop", [c["id"] for c in containers], lambda ident: self.api.stop(ident, timeout=int(timeout)))

    def stop_in_background(self, docker_bin, containers, timeout):
        """`docker stop` of these containers, left running on its own: this call goes on at once.

        The Docker CLI does what `docker stop` always does (SIGTERM, then
        SIGKILL after `timeout` s, the container marked as stopped by hand so
        that no restart policy brings it back); a later call sees the
        containers exited. It holds no pipe of ours, so the module can end
        before it does.
        """
        if not containers:
            return
        self.keep_stopped(containers)
        ids = [c["id"] for c in containers]
        self.actions.append("stop --time %d %s (in the background)" % (timeout, " ".join(ids)))
        env = dict(os.environ)
        if self.docker_host:
            env["DOCKER_HOST"] = self.docker_host
        subprocess.Popen([docker_bin, "stop", "--time", str(int(timeout))] + ids,  # pylint: disable=consider-using-with
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         close_fds=True, start_new_session=True, env=env)

    def pause(self, containers):
        if not containers:
            return
        self.keep_stopped(containers)
        self.actions.append("pause %s" % " ".join(c["id"] for c in containers))
        self._each("pause", [c["id"] for c in containers], self._pause_one)

    # The kernel's freezer can miss its own deadline on a saturated host (runc then thaws and
    # reports "unable to freeze"): a few more tries before the quiesce calls it a failure.
    PAUSE_TRIES = 5

    def _pause_one(self, ident):
        for attempt in range(self.PAUSE_TRIES):
            try:
                self.api.pause(ident)
                return
            except NotFound:
                raise
            except DockerException:
                state = self.api.inspect_container(ident)["State"]
                if state.get("Paused"):
                    return
                if attempt + 1 == self.PAUSE_TRIES or not state.get("Running"):
                    raise
                time.sleep(0.2 * (attempt + 1))

    def start(self, ids):
        if ids:
            self.actions.append("start %s" % " ".join(ids))
            self._each("start", ids, self.api.start)

    def unpause(self, ids):
        if ids:
            self.actions.append("unpause %s" % " ".join(ids))
            self._each("unpause", ids, self.api.unpause)

    def kill(self, ids, signal="SIGKILL"):
        if ids:
            self.actions.append("kill --signal %s %s" % (signal, " ".join(ids)))
            self._each("kill", ids, lambda ident: self.api.kill(ident, signal=signal))

    def remove(self, ids, volumes=False):
        if ids:
            self.actions.append("rm %s%s" % ("--volumes " if volumes else "", " ".join(ids)))
            self._each("rm", ids, lambda ident: self.api.remove_container(ident, v=volumes, force=True))

    def _each(self, what, ids, func):
        """Run func(id) for every id side by side (a stop waits out its grace period); raise the first error."""
        errors = []

        def one(ident):
            try:
                func(ident)
            except NotFound:
                errors.append((ident, "no such container"))
            except DockerException as exc:
                errors.append((ident, _reason(exc)))

        threads = [threading.Thread(target=one, args=(ident,)) for ident in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise DockerError("docker %s failed: %s" % (what, "; ".join("%s: %s" % (i[:12], e) for i, e in errors)))

    def wait_exited(self, containers, timeout, what):
        """Until none of the containers runs or is frozen; fails naming those still up at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            live = [c for c in self.inspect([c["id"] for c in containers]) if c["running"] or c["paused"]]
            if not live:
                return
            if time.monotonic() >= deadline:
                raise BlueGreenError("%s container(s) %s still running after docker stop"
                                     % (what, ", ".join(c["name"] for c in live)))
            time.sleep(0.1)

    def logs(self, ident, tail=30):
        try:
            raw = self.api.logs(ident, stdout=True, stderr=True, tail=int(tail))
        except DockerException:
            return []
        return raw.decode("utf-8", "replace").splitlines()

    def exec_run(self, ident, argv):
        """Run argv in a running container (no TTY, no shell); (rc, stdout, stderr)."""
        try:
            created = self.api.exec_create(ident, list(argv), stdout=True, stderr=True)
            out, err = self.api.exec_start(created["Id"], demux=True)
            rc = self.api.exec_inspect(created["Id"]).get("ExitCode")
        except DockerException as exc:
            return 126, "", _reason(exc)
        return rc, (out or b"").decode("utf-8", "replace"), (err or b"").decode("utf-8", "replace")

    # -- images, networks, volumes ---------------------------------------

    def image(self, reference):
        """`docker image inspect` of one reference, or None when absent."""
        try:
            return self._call("image inspect", self.api.inspect_image, reference)
        except NotFound:
            return None

    def labelled(self, kind, project):
        """Names of the project's networks or volumes (`kind`: network|volume), by label."""
        label = "%s=%s" % (LABEL_PROJECT, project)
        if kind == "network":
            return sorted(n["Name"] for n in self._call("network ls", self.api.networks, filters={"label": label}))
        volumes = self._call("volume ls", self.api.volumes, filters={"label": label}).get("Volumes") or []
        return sorted(v["Name"] for v in volumes)

    def remove_labelled(self, kind, names):
        for name in names:
            self.actions.append("%s rm %s" % (kind, name))
            if kind == "network":
                self._call("network rm", self.api.remove_network, name)
            else:
                self._call("volume rm", self.api.remove_volume, name)


def _reason(exc):
    """The daemon's own words for an SDK error, on one line."""
    explanation = getattr(exc, "explanation", None)
    text = explanation.decode("utf-8", "replace") if isinstance(explanation, bytes) else (explanation or str(exc))
    return " ".join(str(text).split())
