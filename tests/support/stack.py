# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The demo app as the suites run it: an isolated instance (DemoStack), a private nginx in front of it,
the role's variables for both, and the load a user's site puts on it (HTTP probes, a task stream)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import redis
import requests

from tests.support.docker_cli import DEMO_DIR, compose, container_state, free_port, project_containers


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
            self._records = redis.Redis(host="127.0.0.1", port=self.redis_port, db=1, decode_responses=True)
        return self._records

    def broker(self):
        return redis.Redis(host="127.0.0.1", port=self.redis_port, db=0, decode_responses=True)

    def url(self, color, path="/health/"):
        return "http://127.0.0.1:%d%s" % (self.ports[color], path)

    def enqueue(self, color, n=1, seconds=0.2):
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


def states(stack, color, service):
    """The docker status of each container of one service of one color."""
    return [container_state(cid)[0] for cid in project_containers(stack.project(color), service)]


def assert_deployed(result, stack, nginx, state_dir, color, release):
    """What a user checks after a deploy: the proxy answers `color` and `release`, the state file says so,
    the color's worker and beat run, the lock is gone."""
    assert result.returncode == 0, result.stdout[-6000:]
    body = requests.get(nginx.url, timeout=5).json()
    assert (body["color"], body["release"]) == (color, release)
    state = json.loads((state_dir / ("%s.json" % stack.app)).read_text())
    assert (state["active_color"], state["release"]) == (color, release)
    assert states(stack, color, "worker") == ["running"]
    assert states(stack, color, "beat") == ["running"]
    assert not (state_dir / ("%s.lock" % stack.app)).exists(), "the deploy lock was not released"
    return state


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


class TrafficProbe:
    """Polls a URL every `period` seconds in a thread; counts answers per (status, color, release).

    Each request opens its own connection (Connection: close). nginx closes idle
    keep-alive connections when it reloads, and a request sent on one at that
    instant fails at the client before nginx reads it; browsers retry such a
    request, requests does not. A failure counted here is then nginx's or the
    app's, never that race's. An error answer keeps the exception's text.
    """

    def __init__(self, url, period=0.05):
        self.url = url
        self.period = period
        self.answers = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
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


class TaskStream:
    """Enqueues `n` tasks every `period` seconds through `url` (the proxy: whichever color serves)."""

    def __init__(self, url, n=2, seconds=0.2, period=1.0):
        self.url, self.n, self.seconds, self.period = url, n, seconds, period
        self.uids, self.errors = [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                # A connection per request, as TrafficProbe does (nginx's reload closes idle keep-alive ones).
                reply = requests.post(self.url, json={"n": self.n, "seconds": self.seconds}, timeout=10,
                                      headers={"Connection": "close"})
                reply.raise_for_status()
                self.uids.extend(reply.json()["enqueued"])
            except (requests.RequestException, ValueError, KeyError) as exc:
                self.errors.append(repr(exc))
            self._stop.wait(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(15)
