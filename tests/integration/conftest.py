# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of the real-stack integration suite (real Docker, Compose v2, Redis, Celery).

Run through `make test` (or scripts/test.sh), which sets up the machine first.
Every fixture tears down what it created, also when the test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = ROOT / "examples" / "demo"
COLLECTIONS = ROOT / ".build" / "collections"
PYTHON = sys.executable


def _env(extra=None):
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_PYTHON_INTERPRETER=PYTHON,
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOME=str(ROOT / ".build" / "ansible-home"),
        PYTHONPATH=str(COLLECTIONS),
    )
    env.update(extra or {})
    return env


def run_module(name, args, check_mode=False, diff=False, env=None, timeout=600):
    """Run one of our modules directly (as Ansible would on the target); return its result.

    Faster than a playbook; the result carries `rc` (the module's exit code).
    """
    payload = dict(args)
    payload["_ansible_check_mode"] = check_mode
    payload["_ansible_diff"] = diff
    argfile = ROOT / ".build" / ("args-%s.json" % uuid.uuid4().hex)
    argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": payload}))
    try:
        proc = subprocess.run(
            [PYTHON, "-m", "ansible_collections.lowspec.bluegreen.plugins.modules.%s" % name, str(argfile)],
            capture_output=True, text=True, env=_env(env), timeout=timeout, check=False,
        )
    finally:
        argfile.unlink()
    try:
        result = json.loads(proc.stdout)
    except ValueError as exc:
        raise AssertionError("module %s printed no JSON (rc=%s): %s %s" % (name, proc.returncode, proc.stdout, proc.stderr)) from exc
    result["rc"] = proc.returncode
    result["_stderr"] = proc.stderr
    return result


def run_adhoc(name, args, check_mode=False, diff=False, verbosity=0, env=None, timeout=600):
    """Run a module through `ansible localhost -m lowspec.bluegreen.NAME`; return (result, full output)."""
    argv = ["ansible", "localhost", "-c", "local", "-i", "localhost,", "-m", "lowspec.bluegreen.%s" % name,
            "-a", json.dumps(args)]
    if check_mode:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    if verbosity:
        argv.append("-" + "v" * verbosity)
    extra = {"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"}
    extra.update(env or {})
    proc = subprocess.run(argv, capture_output=True, text=True, env=_env(extra), timeout=timeout, check=False)
    output = proc.stdout + proc.stderr
    start = proc.stdout.find("{")
    data = json.loads(proc.stdout[start:])
    result = data["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return result, output


def run_playbook(playbook, extra_vars=None, inventory="localhost,", check=False, env=None, timeout=1200, args=()):
    """Run ansible-playbook; return the CompletedProcess (stdout+stderr merged in .stdout)."""
    argv = ["ansible-playbook", "-i", inventory, str(playbook)]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    if check:
        argv.append("--check")
    argv += list(args)
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=_env(env), timeout=timeout, check=False, stdin=subprocess.DEVNULL)


def docker(*args, check=True, env=None):
    proc = subprocess.run(["docker"] + list(args), capture_output=True, text=True, check=False, env=_env(env))
    if check and proc.returncode != 0:
        raise AssertionError("docker %s failed: %s" % (" ".join(args), proc.stderr))
    return proc.stdout


def compose(project, *args, files=None, env=None, project_dir=DEMO_DIR, check=True):
    argv = ["docker", "compose", "--ansi", "never", "-p", project, "--project-directory", str(project_dir)]
    for name in files or ["compose.yml"]:
        argv += ["-f", str(project_dir / name)]
    proc = subprocess.run(argv + list(args), capture_output=True, text=True, env=_env(env), check=False)
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


class DemoStack:
    """One isolated instance of the demo app: its own app name, broker network and ports.

    `env_for(color, release)` is what a module's `env` option (or compose) needs
    to drive a color; `records` reads the demo's Redis records.
    """

    def __init__(self, app):
        self.app = app
        self.network = "%s-broker" % app
        self.redis_port = free_port()
        self.ports = {"blue": free_port(), "green": free_port()}
        self.project_src = str(DEMO_DIR)
        self.shared_src = str(DEMO_DIR / "shared")
        self._records = None

    def env_for(self, color, release="v1", **extra):
        env = {
            "BLUEGREEN_COLOR": color,
            "BLUEGREEN_RELEASE": release,
            "BLUEGREEN_WEB_PORT": str(self.ports[color]),
            "DEMO_NETWORK": self.network,
            "DEMO_REDIS_PORT": str(self.redis_port),
        }
        env.update({k: str(v) for k, v in extra.items()})
        return env

    @property
    def shared_env(self):
        return {"DEMO_NETWORK": self.network, "DEMO_REDIS_PORT": str(self.redis_port)}

    def project(self, color):
        return "%s-%s" % (self.app, color)

    def up_shared(self):
        compose("%s-shared" % self.app, "up", "-d", "--wait", project_dir=DEMO_DIR / "shared", env=self.shared_env)

    def up_color(self, color, release="v1", services=(), **extra):
        compose(self.project(color), "up", "-d", "--wait", *services, env=self.env_for(color, release, **extra))

    @property
    def records(self):
        if self._records is None:
            import redis

            self._records = redis.Redis(host="127.0.0.1", port=self.redis_port, db=1, decode_responses=True)
        return self._records

    def broker(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.redis_port, db=0, decode_responses=True)

    def url(self, color, path="/health/"):
        return "http://127.0.0.1:%d%s" % (self.ports[color], path)

    def enqueue(self, color, n=1, seconds=0.2):
        import requests

        answer = requests.post(self.url(color, "/enqueue"), json={"n": n, "seconds": seconds}, timeout=10)
        answer.raise_for_status()
        return answer.json()["enqueued"]

    def wait_done(self, uids, timeout=60):
        """Wait until every uid completed; return {uid: run count}."""
        deadline = time.monotonic() + timeout
        while True:
            runs = {uid: int(self.records.hget("demo:runs", uid) or 0) for uid in uids}
            if all(runs.values()) or time.monotonic() > deadline:
                return runs
            time.sleep(0.2)

    def teardown(self):
        for color in ("blue", "green"):
            compose(self.project(color), "down", "-v", "--remove-orphans", "--timeout", "5",
                    env=self.env_for(color), check=False)
        compose("%s-shared" % self.app, "down", "-v", "--remove-orphans", "--timeout", "5",
                project_dir=DEMO_DIR / "shared", env=self.shared_env, check=False)


@pytest.fixture
def demo_stack(request):
    """A fresh demo app instance with its shared Redis up; torn down after the test."""
    app = "t%s" % uuid.uuid4().hex[:8]
    stack = DemoStack(app)
    try:
        stack.up_shared()
        yield stack
    finally:
        stack.teardown()


@pytest.fixture(scope="session", autouse=True)
def _docker_available():
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True, check=False).returncode:
        pytest.fail("the integration suite needs a running Docker daemon: run it through `make test`")
