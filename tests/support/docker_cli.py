# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The real docker CLI and Compose v2 on this machine, as the tests drive and read them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support.runner import ROOT, ansible_env


DEMO_DIR = ROOT / "examples" / "demo"


def docker(*args, check=True, env=None):
    proc = subprocess.run(["docker"] + list(args), capture_output=True, text=True, check=False, env=ansible_env(env))
    if check and proc.returncode != 0:
        raise AssertionError("docker %s failed: %s" % (" ".join(args), proc.stderr))
    return proc.stdout


def compose(project, *args, files=None, env=None, project_dir=DEMO_DIR, check=True):
    argv = ["docker", "compose", "--ansi", "never", "-p", project, "--project-directory", str(project_dir)]
    for name in files or ["compose.yml"]:
        argv += ["-f", str(project_dir / name)]
    proc = subprocess.run(argv + list(args), capture_output=True, text=True, env=ansible_env(env), check=False)
    if check and proc.returncode != 0:
        raise AssertionError("docker compose %s failed: %s" % (" ".join(args), proc.stderr))
    return proc.stdout


def container_state(container_id):
    """(status, health, paused) of a container by id, from docker inspect."""
    data = json.loads(docker("inspect", container_id))[0]
    state = data["State"]
    return state["Status"], (state.get("Health") or {}).get("Status", "none"), state.get("Paused", False)


def project_containers(project, service=None):
    """{service: [container ids]} of a compose project, all states."""
    argv = ["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Label \"com.docker.compose.service\"}}",
            "--filter", "label=com.docker.compose.project=%s" % project]
    found = {}
    for line in docker(*argv).splitlines():
        cid, svc = line.split(" ", 1)
        found.setdefault(svc, []).append(cid)
    return found.get(service, []) if service else found


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def only_compose_v1_env(work):
    """Environment in which the real docker CLI finds no Compose v2 plugin (an empty DOCKER_CONFIG) and the
    only docker-compose on PATH is Debian's Compose v1 (1.29, installed by scripts/setup.sh)."""
    version = subprocess.run(["/usr/bin/docker-compose", "version", "--short"], capture_output=True, text=True,
                             check=True).stdout
    assert version.startswith("1."), "Debian's docker-compose is not Compose v1: %s" % version
    config = Path(work) / "docker-config-without-plugins"
    config.mkdir(exist_ok=True)
    return {"DOCKER_CONFIG": str(config), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
