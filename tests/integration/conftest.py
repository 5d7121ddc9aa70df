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
import pty
import select
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
    """Run a module through `ansible localhost -m lowspec.bluegreen.NAME`; return (result, full output).

    Uses the one-line output (`-o`: `localhost | STATUS => {json}`) since
    ansible-core ships no JSON stdout callback of its own.
    """
    argv = ["ansible", "localhost", "-c", "local", "-i", "localhost,", "-o", "-m", "lowspec.bluegreen.%s" % name,
            "-a", json.dumps(args)]
    if check_mode:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    if verbosity:
        argv.append("-" + "v" * verbosity)
    proc = subprocess.run(argv, capture_output=True, text=True, env=_env(env), timeout=timeout, check=False)
    output = proc.stdout + proc.stderr
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith("localhost | ") and "=> " in line:
            result = json.loads(line.split("=> ", 1)[1])
    if result is None:
        raise AssertionError("no module result in the output of %s:\n%s" % (" ".join(argv), output))
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

    def beat_runs(self):
        """Colors of consecutive runs of beat sends: interleaving means two live schedulers."""
        sends = sorted((json.loads(s) for s in self.records.lrange("demo:beat_sends", 0, -1)), key=lambda s: s["t"])
        runs = []
        for send in sends:
            if not runs or runs[-1] != send["color"]:
                runs.append(send["color"])
        return runs

    def wait_done(self, uids, timeout=60):
        """Wait until every uid completed; return {uid: run count}."""
        deadline = time.monotonic() + timeout
        while True:
            runs = {uid: int(self.records.hget("demo:runs", uid) or 0) for uid in uids}
            if all(runs.values()) or time.monotonic() > deadline:
                return runs
            time.sleep(0.2)

    def whereabouts(self, uids):
        """Where each task that did not complete is: a failed test names the cause, not only the count.

        "started" means a worker began running it; "queued" means its message still waits in a
        broker queue; "unacked" means a worker took its message and neither acked nor returned it
        (it comes back after the visibility timeout); "nowhere" means the message is gone.
        """
        broker = self.broker()
        waiting = " ".join(broker.lrange("celery", 0, -1))
        unacked = " ".join(broker.hvals("unacked"))
        found = {}
        for uid in uids:
            if int(self.records.hget("demo:runs", uid) or 0):
                continue
            places = ["started" if self.records.hget("demo:started", uid) else "never started"]
            places.append("queued" if uid in waiting else "unacked" if uid in unacked else "nowhere")
            found[uid] = ", ".join(places)
        return found

    def worker_logs(self, uids=()):
        """What every worker container of this stack logged about `uids` (task ids), and its warnings and errors."""
        lines = []
        for color in ("blue", "green"):
            for cid in project_containers(self.project(color), "worker"):
                proc = subprocess.run(["docker", "logs", "-t", cid], capture_output=True, text=True, check=False)
                told = [line for line in (proc.stdout + proc.stderr).splitlines()
                        if any(uid in line for uid in uids) or any(level in line for level in ("WARNING", "ERROR", "CRITICAL"))]
                lines.append("--- %s worker %s ---\n%s" % (color, cid[:12], "\n".join(told[-60:])))
        return "\n".join(lines)

    def assert_each_ran_once(self, uids, timeout=60, what="tasks"):
        """Every task completed exactly once; otherwise say which, where they are, and what the workers logged."""
        runs = self.wait_done(uids, timeout=timeout)
        wrong = {uid: count for uid, count in runs.items() if count != 1}
        assert not wrong, "%s: %d of %d not run exactly once: %s; where the unrun ones are: %s\n%s" % (
            what, len(wrong), len(uids), wrong, self.whereabouts(wrong), self.worker_logs(wrong))

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


class Nginx:
    """A private nginx instance (own prefix, own loopback port) in front of one demo app."""

    def __init__(self, prefix, upstream_name, initial_port):
        self.prefix = Path(prefix)
        self.port = free_port()
        self.upstream_name = upstream_name
        self.upstream_path = self.prefix / "upstream.conf"
        self.base = ["nginx", "-p", str(self.prefix), "-c", "nginx.conf", "-e", "error.log"]
        self.initial_port = initial_port

    @property
    def test_command(self):
        return self.base + ["-t"]

    @property
    def reload_command(self):
        return self.base + ["-s", "reload"]

    @property
    def url(self):
        return "http://127.0.0.1:%d/health/" % self.port

    def start(self):
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        conf = (DEMO_DIR / "nginx" / "nginx.conf").read_text()
        conf = conf.replace("__LISTEN_PORT__", str(self.port)).replace("__UPSTREAM_NAME__", self.upstream_name)
        (self.prefix / "nginx.conf").write_text(conf)
        self.upstream_path.write_text("upstream %s {\n    server 127.0.0.1:%d;\n}\n" % (self.upstream_name, self.initial_port))
        subprocess.run(self.base, check=True, capture_output=True)

    def stop(self):
        pidfile = self.prefix / "nginx.pid"
        if not pidfile.exists():
            return
        pid = int(pidfile.read_text().strip())
        subprocess.run(self.base + ["-s", "quit"], check=False, capture_output=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.kill(pid, 9)


@pytest.fixture
def nginx(demo_stack, tmp_path):
    """A private nginx for the demo stack, stopped after the test."""
    proxy = Nginx(tmp_path / "nginx", "%s_bluegreen" % demo_stack.app, demo_stack.ports["blue"])
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def role_vars(stack, proxy, state_dir, release, **overrides):
    """Role variables for deploying the demo stack behind `proxy` (an Nginx)."""
    variables = {
        "bluegreen_app": stack.app,
        "bluegreen_release": release,
        "bluegreen_project_src": stack.project_src,
        "bluegreen_shared_project_src": stack.shared_src,
        "bluegreen_shared_env": stack.shared_env,
        "bluegreen_compose_variables": {"DEMO_NETWORK": stack.network, "DEMO_REDIS_PORT": str(stack.redis_port)},
        "bluegreen_web_ports": dict(stack.ports),
        "bluegreen_celery_app": "tasks",
        "bluegreen_celery_command": ["python3", "-m", "celery"],
        "bluegreen_drain_timeout": 30,
        "bluegreen_stop_timeout": 30,
        "bluegreen_health_deadline": 30,
        "bluegreen_start_wait_timeout": 60,
        "bluegreen_worker_ready_timeout": 60,
        "bluegreen_nginx_upstream_path": str(proxy.upstream_path),
        "bluegreen_nginx_test_command": proxy.test_command,
        "bluegreen_nginx_reload_command": proxy.reload_command,
        "bluegreen_public_url": proxy.url,
        "bluegreen_verify_gate": "off",
        "bluegreen_state_dir": str(state_dir),
        "bluegreen_pressure_wait": 30,
        # CPU pressure is the whole machine's: in CI this machine runs the tests
        # themselves (and other suites may run beside them). The admission is
        # proven by host_pressure's own tests and the disk fault in the
        # reliability suite; here it must not turn machine noise into failures.
        "bluegreen_pressure_cpu_max": 100,
    }
    variables.update(overrides)
    return variables


def localhost_inventory():
    """An inventory of this machine with the virtualenv's interpreter (no discovery)."""
    inventory = ROOT / ".build" / "localhost-inventory.yml"
    inventory.write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        "      ansible_python_interpreter: %s\n" % PYTHON
    )
    return inventory


def deploy(variables, check=False, env=None, args=(), playbook="deploy.yml"):
    """Run one of the collection's playbooks on localhost; return the CompletedProcess."""
    return run_playbook(ROOT / "playbooks" / playbook, extra_vars=variables, inventory=str(localhost_inventory()),
                        check=check, env=env, args=args)


class TrafficProbe:
    """Polls a URL every `period` seconds in a thread; counts answers per (status, color, release).

    Each request opens its own connection (Connection: close). nginx closes idle
    keep-alive connections when it reloads, and a request sent on one at that
    instant fails at the client before nginx reads it; browsers retry such a
    request, requests does not. A failure counted here is then nginx's or the
    app's, never that race's. An error answer keeps the exception's text.
    """

    def __init__(self, url, period=0.05):
        import threading

        self.url = url
        self.period = period
        self.answers = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import requests

        while not self._stop.is_set():
            try:
                reply = requests.get(self.url, timeout=5, headers={"Connection": "close"})
                body = reply.json() if reply.headers.get("content-type", "").startswith("application/json") else {}
                self.answers.append((reply.status_code, body.get("color"), body.get("release")))
            except (requests.RequestException, ValueError) as exc:
                self.answers.append(("error", type(exc).__name__, str(exc)[:300]))
            self._stop.wait(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)

    @property
    def failures(self):
        return [a for a in self.answers if a[0] != 200]


def run_on_pty(argv, script, timeout=600):
    """Run argv on a terminal; `script` is a list of (text to wait for, bytes to type)."""
    pid, leader = pty.fork()
    if pid == 0:
        os.execvpe(argv[0], argv, _env())
    output, steps = b"", list(script)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([leader], [], [], 0.2)[0]:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
            if steps and steps[0][0].encode() in output:
                time.sleep(0.5)
                os.write(leader, steps.pop(0)[1])
    finally:
        os.close(leader)
        _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def playbook_argv(variables, playbook="deploy.yml"):
    """argv of one of the collection's playbooks on localhost (for run_on_pty)."""
    return ["ansible-playbook", "-i", str(localhost_inventory()),
            str(ROOT / "playbooks" / playbook), "-e", json.dumps(variables)]


# Short deadlines for deploys that are interrupted or meant to fail: they fail fast.
FAST_DEPLOY = {
    "bluegreen_health_deadline": 20,
    "bluegreen_drain_timeout": 10,
    "bluegreen_stop_timeout": 30,
    "bluegreen_worker_ready_timeout": 60,
    "bluegreen_start_wait_timeout": 60,
    "bluegreen_pressure_cpu_max": 100,
    "bluegreen_pressure_memory_max": 100,
}
# The documented way to take over the lock of a run that is gone (roles/bluegreen/README.md).
BREAK_LOCK = {"bluegreen_lock_break_stale": True, "bluegreen_lock_stale_after": 0}


def only_compose_v1_env(work):
    """Environment in which the real docker CLI finds no Compose v2 plugin (an empty DOCKER_CONFIG) and the
    only docker-compose on PATH is Debian's Compose v1 (1.29, installed by scripts/setup.sh)."""
    version = subprocess.run(["/usr/bin/docker-compose", "version", "--short"], capture_output=True, text=True,
                             check=True).stdout
    assert version.startswith("1."), "Debian's docker-compose is not Compose v1: %s" % version
    config = Path(work) / "docker-config-without-plugins"
    config.mkdir(exist_ok=True)
    return {"DOCKER_CONFIG": str(config), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
