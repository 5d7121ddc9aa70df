# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One fresh stack of the demo app on the test host, behind a private nginx in its namespace.

The bench sets a stack up and tears it down from the controller (docker compose with the
test daemon's DOCKER_HOST, outside every measured window); what a strategy does during the
deploy runs on the target over SSH (bench/benchlib/runs.py).
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from .common import DEMO, free_port, knobs


class NsNginx:
    """A private nginx (own prefix, own port) in the test host's namespace, in the budget's
    `net` child. It listens on the host's loopback (the role's check through the proxy,
    from the host) and on the host's address (the load, from outside)."""

    def __init__(self, prefix, upstream_name, initial_port, host, budget):
        self.prefix = Path(prefix)
        self.port = free_port()
        self.upstream_name = upstream_name
        self.upstream_path = self.prefix / "upstream.conf"
        self.base = ["nginx", "-p", str(self.prefix), "-c", "nginx.conf", "-e", "error.log"]
        self.initial_port = initial_port
        self.host = host
        self.budget = budget

    @property
    def test_command(self):
        return self.base + ["-t"]

    @property
    def reload_command(self):
        return self.base + ["-s", "reload"]

    @property
    def url(self):
        """The public health URL as seen on the test host."""
        return "http://127.0.0.1:%d/health/" % self.port

    def start(self):
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        conf = (DEMO / "nginx" / "nginx.conf").read_text()
        listen = "listen 127.0.0.1:__LISTEN_PORT__;"
        if listen not in conf:
            raise RuntimeError("examples/demo/nginx/nginx.conf has no '%s' line to adapt" % listen)
        conf = conf.replace(listen, "%s\n        listen %s:%d;" % (listen, self.host.addr, self.port))
        conf = conf.replace("__LISTEN_PORT__", str(self.port)).replace("__UPSTREAM_NAME__", self.upstream_name)
        (self.prefix / "nginx.conf").write_text(conf)
        self.upstream_path.write_text("upstream %s {\n    server 127.0.0.1:%d;\n}\n" % (self.upstream_name, self.initial_port))
        # Into the budget's `net` child first, then into the namespace: its workers inherit both.
        script = "".join("echo $$ > %s; " % shlex.quote(f) for f in self.budget.procs_files("net"))
        argv = ["sh", "-c", script + "exec " + " ".join(shlex.quote(a) for a in self.host.in_netns(self.base))]
        subprocess.run(argv, check=True, capture_output=True)

    def stop(self):
        pidfile = self.prefix / "nginx.pid"
        if not pidfile.exists():
            return
        try:
            pid = int(pidfile.read_text().strip())
        except ValueError:
            return
        subprocess.run(self.base + ["-s", "quit"], check=False, capture_output=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


class Stack:
    """The demo app in a project directory of its own on the test host, every container
    under the budget's `app` child; Redis and the web ports answer on the host's address."""

    def __init__(self, label, cfg, workdir, host, budget):
        self.cfg = cfg
        self.host = host
        self.budget = budget
        self.app = "bench%s%s" % (label[:5], uuid.uuid4().hex[:6])
        self.dir = Path(workdir) / self.app
        self.shared_dir = self.dir / "shared"
        self.network = "%s-broker" % self.app
        self.redis_port = free_port()
        self.ports = {"blue": free_port(), "green": free_port()}
        self.nginx = NsNginx(self.dir / "nginx", "%s_bluegreen" % self.app, self.ports["blue"], host, budget)
        self.state_dir = self.dir / "state"
        self.files = [str(self.dir / "compose.yml"), str(self.dir / "compose.bench.yml")]
        self.env_file = self.dir / "bench.env"
        self.shared_files = [str(self.shared_dir / "compose.yml"), str(self.shared_dir / "compose.bench.yml")]

    # compose -----------------------------------------------------------------
    @property
    def app_env(self):
        # BLUEGREEN_WEB_BIND: each color's web port on every address of the test host, so that
        # the health probe reaches it from outside (the role's own checks use the host's loopback).
        env = {"DEMO_NETWORK": self.network, "DEMO_REDIS_PORT": str(self.redis_port), "BLUEGREEN_WEB_BIND": "0.0.0.0"}
        env.update(knobs(self.cfg))
        return env

    @property
    def shared_env(self):
        return {"DEMO_NETWORK": self.network, "DEMO_REDIS_PORT": str(self.redis_port)}

    def env_for(self, color, release):
        env = self.host.docker_env()
        env.update(self.app_env)
        env.update(BLUEGREEN_COLOR=color, BLUEGREEN_RELEASE=release, BLUEGREEN_WEB_PORT=str(self.ports[color]))
        return env

    def compose_argv(self, project, files, project_dir):
        argv = ["docker", "compose", "--ansi", "never", "-p", project, "--project-directory", str(project_dir)]
        for name in files:
            argv += ["-f", name]
        return argv

    def compose(self, project, args, files, project_dir, env, check=True, timeout=300):
        argv = self.compose_argv(project, files, project_dir)
        proc = subprocess.run(argv + list(args), capture_output=True, text=True, env=env, check=False, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError("docker compose -p %s %s failed: %s" % (project, " ".join(args), proc.stderr[-2000:]))
        return proc.stdout

    def color(self, color, release, *args, check=True):
        return self.compose("%s-%s" % (self.app, color), args, self.files, self.dir, self.env_for(color, release), check=check)

    def shared(self, *args, check=True):
        env = self.host.docker_env()
        env.update(self.shared_env)
        return self.compose("%s-shared" % self.app, args, self.shared_files, self.shared_dir, env, check=check)

    def remote_color_command(self, color, release, *args):
        """The shell command that runs `docker compose ... ARGS` for a color on the test host."""
        env = dict(self.app_env, DOCKER_HOST=self.host.docker_host, BLUEGREEN_COLOR=color, BLUEGREEN_RELEASE=release,
                   BLUEGREEN_WEB_PORT=str(self.ports[color]))
        argv = ["env"] + ["%s=%s" % kv for kv in sorted(env.items())]
        argv += self.compose_argv("%s-%s" % (self.app, color), self.files, self.dir) + list(args)
        return " ".join(shlex.quote(a) for a in argv)

    # life cycle --------------------------------------------------------------
    def create(self):
        """Project files, Redis, nginx and release v1 on blue (web, worker, beat; ready)."""
        self.shared_dir.mkdir(parents=True)
        shutil.copy(DEMO / "compose.yml", self.dir / "compose.yml")
        shutil.copy(DEMO / "shared" / "compose.yml", self.shared_dir / "compose.yml")
        parent = self.budget.cgroup_parent
        (self.dir / "compose.bench.yml").write_text(
            "# The benchmark's small-host budget: every container under one cgroup parent.\n"
            "services:\n" + "".join("  %s:\n    cgroup_parent: %s\n" % (svc, parent) for svc in ("web", "worker", "beat")))
        # Redis also on the host's address, for the benchmark's records (read from outside).
        (self.shared_dir / "compose.bench.yml").write_text(
            "services:\n  redis:\n    cgroup_parent: %s\n    ports: [\"%s:%d:6379\"]\n" % (parent, self.host.addr, self.redis_port))
        # The same values as app_env, for the role: it passes them to compose as an env file, since
        # values in bluegreen_env are no_log and short ones ("2") would be masked inside the container
        # ids the role reads back (compose_project_color's documented caveat).
        self.env_file.write_text("".join("%s=%s\n" % kv for kv in sorted(self.app_env.items())))
        self.shared("up", "-d", "--wait")
        self.nginx.start()
        self.color("blue", "v1", "up", "-d", "--wait")

    def write_state(self, color, release):
        """The role's state file, as a v1 deploy by the role would have left it."""
        self.state_dir.mkdir(exist_ok=True)
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        (self.state_dir / ("%s.json" % self.app)).write_text(json.dumps(
            {"version": 1, "app": self.app, "active_color": color, "release": release, "updated_at": now,
             "history": [{"release": release, "color": color, "previous_color": None, "previous_release": None, "at": now}]},
            indent=1))

    def teardown(self):
        try:
            self.nginx.stop()
        except (ProcessLookupError, OSError):
            pass
        for color in ("blue", "green"):
            self.color(color, "v1", "down", "-v", "--remove-orphans", "--timeout", "5", check=False)
        self.shared("down", "-v", "--remove-orphans", "--timeout", "5", check=False)

    # records -----------------------------------------------------------------
    def redis(self, db=1):
        import redis  # the virtualenv has it (requirements/dev.txt)

        return redis.Redis(host=self.host.addr, port=self.redis_port, db=db, decode_responses=True)

    def url(self, port, path):
        return "http://%s:%d%s" % (self.host.addr, port, path)

    def containers(self):
        """Every container of the stack: id, project, service, start and finish times, health check."""
        ids = []
        env = self.host.docker_env()
        for project in ("%s-blue" % self.app, "%s-green" % self.app, "%s-shared" % self.app):
            out = subprocess.run(["docker", "ps", "-a", "-q", "--no-trunc", "--filter",
                                  "label=com.docker.compose.project=%s" % project],
                                 capture_output=True, text=True, check=False, env=env).stdout
            ids += out.split()
        if not ids:
            return []
        data = json.loads(subprocess.run(["docker", "inspect"] + ids, capture_output=True, text=True, check=True, env=env).stdout)
        found = []
        for item in data:
            labels = item["Config"]["Labels"]
            test = (item["Config"].get("Healthcheck") or {}).get("Test") or []
            health = " ".join(test[1:]) if test[:1] == ["CMD"] else ("/bin/sh -c " + test[1] if test[:1] == ["CMD-SHELL"] else "")
            found.append({
                "id": item["Id"],
                "name": item["Name"].lstrip("/"),
                "hostname": item["Config"]["Hostname"],
                "project": labels.get("com.docker.compose.project"),
                "service": labels.get("com.docker.compose.service"),
                "color": labels.get("com.docker.compose.project", "").rsplit("-", 1)[-1],
                "image": item["Config"]["Image"],
                "started": iso_to_epoch(item["State"]["StartedAt"]),
                "finished": iso_to_epoch(item["State"]["FinishedAt"]),
                "created": iso_to_epoch(item.get("Created")),
                "status": item["State"]["Status"],
                "restarts": item.get("RestartCount", 0),
                "oom_killed": item["State"].get("OOMKilled", False),
                "healthcheck": health,
            })
        return found

    def whereabouts(self, uids):
        """Where each task that did not run is (tests/support/stack.py's DemoStack.whereabouts):
        started by a worker but not finished; its message still queued in the Redis list; in the
        Redis transport's `unacked` hash (delivered, never acked); or gone."""
        records, broker = self.redis(1), self.redis(0)
        waiting = " ".join(broker.lrange("celery", 0, -1))
        unacked = " ".join(broker.hvals("unacked"))
        found = {}
        for uid in uids:
            if int(records.hget("demo:runs", uid) or 0):
                continue
            places = ["started, not finished" if records.hget("demo:started", uid) else "never started"]
            places.append("queued" if uid in waiting else "unacked" if uid in unacked else "gone")
            found[uid] = ", ".join(places)
        return found


def iso_to_epoch(value):
    if not value or value.startswith("0001-"):
        return None
    main, _dot, frac = value.rstrip("Z").partition(".")
    base = datetime.datetime.strptime(main[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp()
    frac = frac.split("+")[0].split("-")[0]
    return base + (float("0." + frac[:6]) if frac else 0.0)
