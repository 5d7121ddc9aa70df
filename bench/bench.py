# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The benchmark (issues 8, 10): four ways to deploy the demo app v1 -> v2 under a small-host budget.

Run through `bash bench/run.sh` (it sets the machine up first). Per strategy, on a
fresh stack of its own (app name, Redis, nginx on a loopback port, cgroup parent):

  budget   every app container (Redis included) under a cgroup v1 parent with one
           CPU's worth of time (cfs quota) and a memory cap; Celery concurrency 2
  load     a task backlog queued before the deploy, tasks arriving steadily through
           nginx during it, beat every second, GET / through nginx at a fixed rate
           from a separate process (loopback only, bounded in count and time)
  measure  the cgroup's CPU and memory and the Celery worker processes at 10 Hz,
           every request's status and latency, every task run and beat send
           (the demo app records them in Redis), the deploy tool's own CPU

Strategies: naive (bench/strategies/naive.sh), the article's script
(bench/strategies/article.sh), this collection's role (playbooks/deploy.yml,
verify gate off) with its default quiesce mode `stop`, and the role with
`bluegreen_quiesce_mode: shrink` (one pool process kept per old worker, worker
warm-up on: see SHRINK_VARIABLES). A floor run measures the new web started alone.

The private nginx in front of each stack is tests/integration/conftest.py's Nginx,
loaded from that file (the benchmark does not run under pytest).

Output: bench/results/<timestamp>/{run.json,table.md,plot.png,*.log}, copied to
bench/latest.md and bench/latest.png.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import importlib.util
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DEMO = ROOT / "examples" / "demo"
CG = Path("/sys/fs/cgroup")
STRATEGIES = ("naive", "article", "role", "shrink")
ROLE_STRATEGIES = ("role", "shrink")
LABELS = {"naive": "naive blue-green", "article": "article's script", "role": "role (stop)", "shrink": "role (shrink)",
          "floor": "floor"}
LOOPBACK = "127.0.0.1"


def shrink_variables(cfg):
    """The shrink strategy's role variables, beyond the stack wiring both role strategies share:
    what a small host would configure. Old workers keep one pool process each; the new
    workers start with a one-process pool (warm-up) and grow to the full concurrency once
    the host has settled (after the switch). BENCH_SHRINK_WARMUP=0 turns warm-up off."""
    variables = {"bluegreen_quiesce_mode": "shrink", "bluegreen_quiesce_keep_processes": 1}
    if cfg.shrink_warmup > 0:
        variables.update(bluegreen_worker_warmup_concurrency=cfg.shrink_warmup, bluegreen_worker_concurrency=cfg.concurrency,
                         bluegreen_worker_concurrency_variable="DEMO_CONCURRENCY")
    return variables


def shrink_label(cfg):
    """The shrink column's name, with its warm-up setting (table, targets and plot)."""
    if cfg.shrink_warmup > 0:
        return "role (shrink, warm-up %d->%d)" % (cfg.shrink_warmup, cfg.concurrency)
    return "role (shrink, no warm-up)"


def _load_integration_conftest():
    """tests/integration/conftest.py as a module of its own name (not `conftest`, which is pytest's)."""
    path = ROOT / "tests" / "integration" / "conftest.py"
    spec = importlib.util.spec_from_file_location("lowspec_integration_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_CONFTEST = _load_integration_conftest()
Nginx = _CONFTEST.Nginx
free_port = _CONFTEST.free_port


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------

def parse_args(argv=None):
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("--quick", action="store_true", help="short settings for debugging the benchmark")
    p.add_argument("--only", default=env("BENCH_ONLY", ",".join(STRATEGIES + ("floor",))),
                   help="comma-separated subset of %s" % ",".join(STRATEGIES + ("floor",)))
    # App knobs (see examples/demo/app/demo_settings.py).
    p.add_argument("--web-cpu-ms", type=float, default=float(env("DEMO_WEB_CPU_MS", "25")))
    p.add_argument("--worker-boot-cpu-s", type=float, default=float(env("DEMO_WORKER_BOOT_CPU_S", "4")))
    p.add_argument("--worker-boot-mb", type=int, default=int(env("DEMO_WORKER_BOOT_MB", "200")))
    p.add_argument("--concurrency", type=int, default=int(env("DEMO_CONCURRENCY", "2")))
    p.add_argument("--beat-period", type=float, default=float(env("DEMO_BEAT_PERIOD", "1")))
    p.add_argument("--web-workers", type=int, default=int(env("DEMO_WEB_WORKERS", "2")))
    # Celery's prefetch multiplier, the same for every strategy: with 1, a one-process pool on
    # Redis fetches one message per ack and falls behind (the role README, shrink mode).
    p.add_argument("--prefetch", type=int, default=int(env("DEMO_PREFETCH", "2")))
    p.add_argument("--shrink-warmup", type=int, default=int(env("BENCH_SHRINK_WARMUP", "1")),
                   help="the shrink strategy's warm-up pool (bluegreen_worker_warmup_concurrency; 0: off)")
    # Budget.
    p.add_argument("--cpus", type=float, default=float(env("BENCH_CPUS", "1")), help="CPU time of the budget, in CPUs")
    p.add_argument("--mem-cap-mb", type=int, default=int(env("BENCH_MEM_CAP_MB", "1536")))
    # Load.
    p.add_argument("--http-rate", type=float, default=float(env("BENCH_HTTP_RATE", "20")), help="GET / per second")
    p.add_argument("--task-seconds", type=float, default=float(env("BENCH_TASK_SECONDS", "0.4")))
    p.add_argument("--backlog", type=int, default=int(env("BENCH_BACKLOG", "200")))
    p.add_argument("--arrival-rate", type=float, default=float(env("BENCH_ARRIVAL_RATE", "2")), help="tasks per second")
    p.add_argument("--steady-s", type=float, default=float(env("BENCH_STEADY_S", "12")))
    p.add_argument("--sample-hz", type=float, default=float(env("BENCH_SAMPLE_HZ", "10")))
    p.add_argument("--settle-timeout", type=float, default=float(env("BENCH_SETTLE_TIMEOUT", "120")))
    p.add_argument("--deploy-timeout", type=float, default=float(env("BENCH_DEPLOY_TIMEOUT", "300")))
    p.add_argument("--out", default=env("BENCH_OUT", str(BENCH / "results")))
    p.add_argument("--no-latest", action="store_true", help="do not update bench/latest.md and latest.png")
    args = p.parse_args(argv)
    if args.quick:
        args.backlog = min(args.backlog, 40)
        args.steady_s = min(args.steady_s, 5)
        args.worker_boot_cpu_s = min(args.worker_boot_cpu_s, 2)
        args.settle_timeout = min(args.settle_timeout, 60)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    return args


def knobs(cfg):
    return {
        "DEMO_WEB_CPU_MS": str(cfg.web_cpu_ms),
        "DEMO_WORKER_BOOT_CPU_S": str(cfg.worker_boot_cpu_s),
        "DEMO_WORKER_BOOT_MB": str(cfg.worker_boot_mb),
        "DEMO_CONCURRENCY": str(cfg.concurrency),
        "DEMO_BEAT_PERIOD": str(cfg.beat_period),
        "DEMO_WEB_WORKERS": str(cfg.web_workers),
        "DEMO_PREFETCH": str(cfg.prefetch),
    }


def say(msg):
    print("==> %s %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def read(path, default=None):
    try:
        with open(path, "r", encoding="ascii") as handle:
            return handle.read()
    except OSError:
        return default


def write(path, value):
    with open(path, "w", encoding="ascii") as handle:
        handle.write(str(value))


def http_get(url, timeout=2.0):
    """(status, body) of a GET to a loopback URL; status None on a connection error."""
    assert url.startswith("http://%s:" % LOOPBACK), url
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (loopback only)
            return answer.status, answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (OSError, http.client.HTTPException):
        return None, ""


def http_post_json(url, payload, timeout=30.0):
    assert url.startswith("http://%s:" % LOOPBACK), url
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as answer:  # noqa: S310 (loopback only)
        return json.loads(answer.read())


# ---------------------------------------------------------------------------
# The small-host budget: a cgroup v1 parent
# ---------------------------------------------------------------------------

class Budget:
    """A cgroup v1 parent for all the app's containers: cfs quota and a memory cap.

    Compose's `cgroup_parent` puts each container under it. The memory hierarchy is
    nested under the Docker daemon's own memory cgroup on these machines, so its
    real path is read from the first container's /proc/<pid>/cgroup.
    """

    def __init__(self, name, cpus, mem_cap_mb):
        self.name = name
        self.cpus = cpus
        self.mem_cap = mem_cap_mb * 1024 * 1024
        self.memory = None  # real path of the memory parent, once known

    def create(self):
        for ctl in ("cpu", "cpuacct", "cpuset", "pids"):
            (CG / ctl / self.name).mkdir(exist_ok=True)
        cpuset = CG / "cpuset" / self.name
        write(cpuset / "cpuset.cpus", read(CG / "cpuset" / "cpuset.cpus").strip())
        write(cpuset / "cpuset.mems", read(CG / "cpuset" / "cpuset.mems").strip())
        write(CG / "cpu" / self.name / "cpu.cfs_period_us", 100000)
        write(CG / "cpu" / self.name / "cpu.cfs_quota_us", int(self.cpus * 100000))

    def adopt_memory(self, container_pid):
        """Find the memory parent's real path from a container of ours; set the cap there."""
        for line in read("/proc/%d/cgroup" % container_pid, "").splitlines():
            _num, ctl, path = line.split(":", 2)
            if "memory" in ctl.split(","):
                parent = Path(path).parent
                if parent.name != self.name:
                    raise RuntimeError("container %d is not under %s: %s" % (container_pid, self.name, path))
                self.memory = CG / "memory" / str(parent).lstrip("/")
        if self.memory is None:
            raise RuntimeError("no memory cgroup for pid %d" % container_pid)
        write(self.memory / "memory.limit_in_bytes", self.mem_cap)

    @property
    def cpuacct(self):
        return CG / "cpuacct" / self.name

    @property
    def pids(self):
        return CG / "pids" / self.name

    def oom_kills(self):
        if self.memory is None:
            return None
        for line in read(self.memory / "memory.oom_control", "").splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return None

    def remove(self):
        """rmdir every directory of this parent in every hierarchy (children first)."""
        found = []
        for hierarchy in CG.iterdir():
            if not hierarchy.is_dir():
                continue
            for dirpath, dirnames, _files in os.walk(hierarchy):
                depth = Path(dirpath).relative_to(hierarchy).parts
                if len(depth) >= 3:
                    dirnames[:] = []
                    continue
                if self.name in dirnames:
                    found.append(Path(dirpath) / self.name)
                    dirnames.remove(self.name)
        for top in found:
            for _attempt in range(20):
                try:
                    for child in sorted((p for p in top.iterdir() if p.is_dir()), reverse=True):
                        child.rmdir()
                    top.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.25)


# ---------------------------------------------------------------------------
# One fresh stack of the demo app
# ---------------------------------------------------------------------------

class Stack:
    """The demo app in a project directory of its own, every container under the budget."""

    def __init__(self, label, cfg, workdir):
        self.cfg = cfg
        self.app = "bench%s%s" % (label[:5], uuid.uuid4().hex[:6])
        self.dir = Path(workdir) / self.app
        self.shared_dir = self.dir / "shared"
        self.network = "%s-broker" % self.app
        self.redis_port = free_port()
        self.ports = {"blue": free_port(), "green": free_port()}
        self.budget = Budget("smallhost-%s" % self.app, cfg.cpus, cfg.mem_cap_mb)
        self.nginx = Nginx(self.dir / "nginx", "%s_bluegreen" % self.app, self.ports["blue"])
        self.state_dir = self.dir / "state"
        self.files = [str(self.dir / "compose.yml"), str(self.dir / "compose.bench.yml")]
        self.env_file = self.dir / "bench.env"
        self.shared_files = [str(self.shared_dir / "compose.yml"), str(self.shared_dir / "compose.bench.yml")]
        self._records = None

    # compose -----------------------------------------------------------------
    def env_for(self, color, release):
        env = dict(os.environ)
        env.update(self.app_env)
        env.update(BLUEGREEN_COLOR=color, BLUEGREEN_RELEASE=release, BLUEGREEN_WEB_PORT=str(self.ports[color]))
        return env

    @property
    def app_env(self):
        env = {"DEMO_NETWORK": self.network, "DEMO_REDIS_PORT": str(self.redis_port)}
        env.update(knobs(self.cfg))
        return env

    @property
    def shared_env(self):
        return {"DEMO_NETWORK": self.network, "DEMO_REDIS_PORT": str(self.redis_port)}

    def compose(self, project, args, files, project_dir, env, check=True, timeout=300):
        argv = ["docker", "compose", "--ansi", "never", "-p", project, "--project-directory", str(project_dir)]
        for name in files:
            argv += ["-f", name]
        proc = subprocess.run(argv + list(args), capture_output=True, text=True, env=env, check=False, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError("docker compose -p %s %s failed: %s" % (project, " ".join(args), proc.stderr[-2000:]))
        return proc.stdout

    def color(self, color, release, *args, check=True):
        return self.compose("%s-%s" % (self.app, color), args, self.files, self.dir, self.env_for(color, release), check=check)

    def shared(self, *args, check=True):
        env = dict(os.environ)
        env.update(self.shared_env)
        return self.compose("%s-shared" % self.app, args, self.shared_files, self.shared_dir, env, check=check)

    # life cycle --------------------------------------------------------------
    def create(self):
        """Project files, budget, Redis, nginx and release v1 on blue (web, worker, beat; ready)."""
        self.shared_dir.mkdir(parents=True)
        shutil.copy(DEMO / "compose.yml", self.dir / "compose.yml")
        shutil.copy(DEMO / "shared" / "compose.yml", self.shared_dir / "compose.yml")
        parent = self.budget.name
        (self.dir / "compose.bench.yml").write_text(
            "# The benchmark's small-host budget: every container under one cgroup parent.\n"
            "services:\n" + "".join("  %s:\n    cgroup_parent: %s\n" % (svc, parent) for svc in ("web", "worker", "beat")))
        (self.shared_dir / "compose.bench.yml").write_text(
            "services:\n  redis:\n    cgroup_parent: %s\n" % parent)
        # The same values as app_env, for the role: it passes them to compose as an env file, since
        # values in bluegreen_env are no_log and short ones ("2") would be masked inside the container
        # ids the role reads back (compose_project_color's documented caveat).
        self.env_file.write_text("".join("%s=%s\n" % kv for kv in sorted(self.app_env.items())))
        self.budget.create()
        self.shared("up", "-d", "--wait")
        redis_pid = int(subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Pid}}", "%s-shared-redis-1" % self.app],
            capture_output=True, text=True, check=True).stdout.strip())
        self.budget.adopt_memory(redis_pid)
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
        except ProcessLookupError:  # it exited between conftest's last check and its SIGKILL
            pass
        for color in ("blue", "green"):
            self.color(color, "v1", "down", "-v", "--remove-orphans", "--timeout", "5", check=False)
        self.shared("down", "-v", "--remove-orphans", "--timeout", "5", check=False)
        self.budget.remove()

    # records -----------------------------------------------------------------
    def redis(self, db=1):
        import redis  # the virtualenv has it (requirements/dev.txt)

        return redis.Redis(host=LOOPBACK, port=self.redis_port, db=db, decode_responses=True)

    def containers(self):
        """Every container of the stack: id, project, service, start and finish times."""
        ids = []
        for project in ("%s-blue" % self.app, "%s-green" % self.app, "%s-shared" % self.app):
            out = subprocess.run(["docker", "ps", "-a", "-q", "--no-trunc", "--filter",
                                  "label=com.docker.compose.project=%s" % project],
                                 capture_output=True, text=True, check=False).stdout
            ids += out.split()
        if not ids:
            return []
        data = json.loads(subprocess.run(["docker", "inspect"] + ids, capture_output=True, text=True, check=True).stdout)
        found = []
        for item in data:
            labels = item["Config"]["Labels"]
            found.append({
                "id": item["Id"],
                "hostname": item["Config"]["Hostname"],
                "project": labels.get("com.docker.compose.project"),
                "service": labels.get("com.docker.compose.service"),
                "color": labels.get("com.docker.compose.project", "").rsplit("-", 1)[-1],
                "image": item["Config"]["Image"],
                "started": iso_to_epoch(item["State"]["StartedAt"]),
                "finished": iso_to_epoch(item["State"]["FinishedAt"]),
                "status": item["State"]["Status"],
                "restarts": item.get("RestartCount", 0),
                "oom_killed": item["State"].get("OOMKilled", False),
            })
        return found


def iso_to_epoch(value):
    if not value or value.startswith("0001-"):
        return None
    main, _dot, frac = value.rstrip("Z").partition(".")
    base = datetime.datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp()
    return base + (float("0." + frac[:6]) if frac else 0.0)


# ---------------------------------------------------------------------------
# Separate processes: the cgroup sampler and the HTTP load
# ---------------------------------------------------------------------------

def _mem_stat(path):
    stat = {}
    for line in read(path / "memory.stat", "").splitlines():
        key, _sep, value = line.partition(" ")
        if key in ("total_inactive_file", "total_rss", "total_cache"):
            stat[key] = int(value)
    return stat


def sampler_main(budget_name, memory_dir, out_path, stop, hz):
    """Every 1/hz s: the budget's CPU (cpuacct.usage), memory, throttling, and per container
    CPU, memory and Celery worker processes. Memory is the working set (usage minus
    inactive file cache, as `docker stats` shows it)."""
    cpuacct = CG / "cpuacct" / budget_name
    cpu = CG / "cpu" / budget_name
    pids = CG / "pids" / budget_name
    memory = Path(memory_dir)
    samples = []
    period = 1.0 / hz
    nxt = time.monotonic()
    while not stop.is_set():
        t = time.time()
        usage = int(read(memory / "memory.usage_in_bytes", "0"))
        stat = _mem_stat(memory)
        throttled = 0
        for line in read(cpu / "cpu.stat", "").splitlines():
            if line.startswith("throttled_time "):
                throttled = int(line.split()[1])
        per = {}
        try:
            children = [e.name for e in os.scandir(cpuacct) if e.is_dir()]
        except OSError:
            children = []
        for cid in children:
            c_cpu = int(read(cpuacct / cid / "cpuacct.usage", "0") or 0)
            c_usage = int(read(memory / cid / "memory.usage_in_bytes", "0") or 0)
            c_stat = _mem_stat(memory / cid) if c_usage else {}
            workers = 0
            for pid in (read(pids / cid / "cgroup.procs", "") or "").split():
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as handle:
                        cmd = handle.read()
                except OSError:
                    continue
                if b"celery" in cmd and b"\0worker\0" in cmd:
                    workers += 1
            per[cid[:12]] = [c_cpu, c_usage - c_stat.get("total_inactive_file", 0), workers]
        psi = 0
        for line in read("/proc/pressure/cpu", "").splitlines():
            if line.startswith("some "):
                psi = int(line.rsplit("total=", 1)[1])
        samples.append({
            "t": t,
            "psi_cpu_us": psi,
            "cpu_ns": int(read(cpuacct / "cpuacct.usage", "0") or 0),
            "mem": usage - stat.get("total_inactive_file", 0),
            "mem_usage": usage,
            "rss": stat.get("total_rss", 0),
            "throttled_ns": throttled,
            "workers": sum(v[2] for v in per.values()),
            "c": per,
        })
        nxt += period
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            nxt = time.monotonic()
    with open(out_path, "w", encoding="utf-8") as out:
        json.dump(samples, out)


def _parse_index(body):
    """'hello: demo v1 on blue' -> ('v1', 'blue')."""
    words = body.split()
    try:
        return words[words.index("demo") + 1], words[-1]
    except (ValueError, IndexError):
        return None, None


def load_main(port, rate, max_s, arrival_rate, task_seconds, feeding, stop, out_path):
    """GET / through nginx at `rate` per second (open loop: each request has a scheduled
    time; latency counts from it), and POST /enqueue one task every 1/arrival_rate s while
    `feeding` is set. Loopback only; bounded by `max_s` and by rate * max_s requests."""
    host = LOOPBACK
    gets, posts = [], []
    lock = threading.Lock()
    t0 = time.time() + 0.2
    max_count = int(rate * max_s)
    nthreads = 16

    def conn():
        return http.client.HTTPConnection(host, port, timeout=5)

    def getter(k):
        # One connection per request: a keep-alive connection that nginx closes on a
        # reload would otherwise fail the next request on it (clients retry those).
        i = k
        while i < max_count and not stop.is_set():
            sched = t0 + i / rate
            delay = sched - time.time()
            if delay > 0:
                if stop.wait(delay):
                    break
            sent = time.time()
            status, release, color = None, None, None
            c = conn()
            try:
                c.request("GET", "/", headers={"Connection": "close"})
                answer = c.getresponse()
                body = answer.read().decode("utf-8", "replace")
                status = answer.status
                release, color = _parse_index(body)
            except (OSError, http.client.HTTPException) as exc:
                status = "error:%s" % type(exc).__name__
            finally:
                c.close()
            done = time.time()
            with lock:
                gets.append([sched, sent, done, status, release, color])
            i += nthreads

    def feeder():
        nxt = time.time()
        while not stop.is_set() and time.time() < t0 + max_s:
            if not feeding.is_set():
                if stop.wait(0.1):
                    break
                nxt = time.time()
                continue
            sent = time.time()
            status, uids = None, []
            c = conn()
            try:
                c.request("POST", "/enqueue", body=json.dumps({"n": 1, "seconds": task_seconds}),
                          headers={"Content-Type": "application/json", "Connection": "close"})
                answer = c.getresponse()
                data = answer.read()
                status = answer.status
                if status == 200:
                    uids = json.loads(data).get("enqueued", [])
            except (OSError, http.client.HTTPException, ValueError) as exc:
                status = "error:%s" % type(exc).__name__
            finally:
                c.close()
            posts.append([sent, time.time(), status, uids])
            nxt += 1.0 / arrival_rate
            delay = nxt - time.time()
            if delay > 0:
                stop.wait(delay)

    threads = [threading.Thread(target=getter, args=(k,), daemon=True) for k in range(nthreads)]
    threads.append(threading.Thread(target=feeder, daemon=True))
    for th in threads:
        th.start()
    stop.wait(max_s + 1)
    stop.set()
    for th in threads:
        th.join(10)
    with lock:
        with open(out_path, "w", encoding="utf-8") as out:
            json.dump({"gets": sorted(gets), "posts": posts}, out)


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------

def run_tool(argv, env, log_path, timeout):
    """Run a deploy tool; return (rc, start, end, cpu seconds of its whole process tree, stdout).

    os.wait4 gives the rusage of the child and of every descendant it waited for: for
    ansible-playbook that is its forks, the module processes and the docker CLI calls
    they make on the host (not the Docker daemon's own work)."""
    start = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)
        lines = []

        def pump():
            for line in proc.stdout:
                lines.append((time.time(), line))
                log.write(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        _pid, status, usage = os.wait4(proc.pid, 0)
        killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        reader.join(10)
    end = time.time()
    return proc.returncode, start, end, usage.ru_utime + usage.ru_stime, lines


def script_env(stack, old, new):
    env = dict(os.environ)
    env.update(stack.app_env)
    env.update(
        PROJECT_DIR=str(stack.dir), COMPOSE_FILES=" ".join(stack.files), APP=stack.app,
        OLD_COLOR=old, OLD_RELEASE="v1", OLD_PORT=str(stack.ports[old]),
        NEW_COLOR=new, NEW_RELEASE="v2", NEW_PORT=str(stack.ports[new]),
        NGINX_PREFIX=str(stack.nginx.prefix), UPSTREAM_NAME=stack.nginx.upstream_name,
    )
    return env


def role_variables(stack, release):
    proxy = stack.nginx
    return {
        "bluegreen_app": stack.app,
        "bluegreen_release": release,
        "bluegreen_project_src": str(stack.dir),
        "bluegreen_compose_files": stack.files,
        "bluegreen_shared_project_src": str(stack.shared_dir),
        "bluegreen_shared_compose_files": stack.shared_files,
        "bluegreen_shared_env": stack.shared_env,
        "bluegreen_env": {},
        "bluegreen_env_files": [str(stack.env_file)],
        "bluegreen_web_ports": dict(stack.ports),
        "bluegreen_celery_app": "tasks",
        "bluegreen_celery_command": ["python3", "-m", "celery"],
        "bluegreen_drain_timeout": 60,
        "bluegreen_stop_timeout": 60,
        "bluegreen_health_deadline": 60,
        "bluegreen_start_wait_timeout": 120,
        "bluegreen_worker_ready_timeout": 120,
        "bluegreen_pressure_wait": 60,
        "bluegreen_nginx_upstream_path": str(proxy.upstream_path),
        "bluegreen_nginx_test_command": proxy.test_command,
        "bluegreen_nginx_reload_command": proxy.reload_command,
        "bluegreen_public_url": proxy.url,
        "bluegreen_verify_gate": "off",
        "bluegreen_state_dir": str(stack.state_dir),
    }


def deploy_command(name, stack, rundir):
    """(argv, env, timeline path or None) of one strategy deploying v1 (blue) -> v2 (green)."""
    if name not in ROLE_STRATEGIES:
        return ["bash", str(BENCH / "strategies" / ("%s.sh" % name))], script_env(stack, "blue", "green"), None
    varfile = rundir / ("%s-vars.json" % stack.app)
    variables = role_variables(stack, "v2")
    if name == "shrink":
        variables.update(shrink_variables(stack.cfg))
    # For debugging the benchmark only (the reported runs use the role's defaults): extra role variables.
    variables.update(json.loads(os.environ.get("BENCH_ROLE_EXTRA_VARS", "{}")))
    varfile.write_text(json.dumps(variables))
    inventory = rundir / "localhost-inventory.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                         "      ansible_python_interpreter: %s\n" % sys.executable)
    timeline = rundir / ("%s-timeline.jsonl" % stack.app)
    env = dict(os.environ)
    env.update(ANSIBLE_CALLBACK_PLUGINS=str(BENCH / "callback_plugins"), ANSIBLE_CALLBACKS_ENABLED="bench_timeline",
               BENCH_TIMELINE=str(timeline), ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1")
    argv = ["ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / "deploy.yml"), "-e", "@%s" % varfile]
    return argv, env, timeline


class HealthProbe(threading.Thread):
    """Polls the new color's own /health/ every 0.1 s until it answers 200 naming the new release."""

    def __init__(self, port, release, deadline_s=300):
        super().__init__(daemon=True)
        self.url = "http://%s:%d/health/" % (LOOPBACK, port)
        self.release = release
        self.deadline = time.time() + deadline_s
        self.healthy_at = None
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set() and time.time() < self.deadline:
            status, body = http_get(self.url, timeout=1.0)
            if status == 200 and '"release":"%s"' % self.release in body.replace(" ", ""):
                self.healthy_at = time.time()
                return
            self.halt.wait(0.1)


# ---------------------------------------------------------------------------
# One measured run on a fresh stack
# ---------------------------------------------------------------------------

def start_measuring(stack, rundir, cfg, feed):
    ctx = multiprocessing.get_context("fork")
    stop_sampler, stop_load, feeding = ctx.Event(), ctx.Event(), ctx.Event()
    if feed:
        feeding.set()
    samples_path = rundir / ("%s-samples.json" % stack.app)
    load_path = rundir / ("%s-load.json" % stack.app)
    sampler_args = (stack.budget.name, str(stack.budget.memory), str(samples_path), stop_sampler, cfg.sample_hz)
    sampler = ctx.Process(target=sampler_main, args=sampler_args, daemon=True)
    load = ctx.Process(target=load_main, args=(stack.nginx.port, cfg.http_rate, 600, cfg.arrival_rate, cfg.task_seconds,
                                               feeding, stop_load, str(load_path)), daemon=True)
    sampler.start()
    load.start()
    return {"sampler": sampler, "load": load, "stop_sampler": stop_sampler, "stop_load": stop_load,
            "feeding": feeding, "samples_path": samples_path, "load_path": load_path}


def stop_measuring(m):
    m["feeding"].clear()
    m["stop_load"].set()
    m["load"].join(20)
    m["stop_sampler"].set()
    m["sampler"].join(20)
    for proc in (m["load"], m["sampler"]):
        if proc.is_alive():
            proc.kill()
    samples = json.loads(m["samples_path"].read_text()) if m["samples_path"].exists() else []
    load = json.loads(m["load_path"].read_text()) if m["load_path"].exists() else {"gets": [], "posts": []}
    return samples, load


def run_strategy(name, cfg, rundir, workdir):
    stack = Stack(name, cfg, workdir)
    say("%s: fresh stack %s (budget %s CPU, %d MB cap)" % (LABELS[name], stack.app, cfg.cpus, cfg.mem_cap_mb))
    m = None
    try:
        stack.create()
        if name in ROLE_STRATEGIES:
            stack.write_state("blue", "v1")
        m = start_measuring(stack, rundir, cfg, feed=True)
        records = stack.redis()
        t_backlog = time.time()
        http_post_json("http://%s:%d/enqueue" % (LOOPBACK, stack.ports["blue"]),
                       {"n": cfg.backlog, "seconds": cfg.task_seconds})
        say("%s: backlog of %d tasks queued, steady state for %.0f s" % (name, cfg.backlog, cfg.steady_s))
        time.sleep(cfg.steady_s)
        load_at_start = os.getloadavg()
        argv, env, timeline = deploy_command(name, stack, rundir)
        probe = HealthProbe(stack.ports["green"], "v2")
        probe.start()
        say("%s: deploying v1 -> v2 (load average %.2f)" % (name, load_at_start[0]))
        rc, t0, t_end, tool_cpu, lines = run_tool(argv, env, rundir / ("%s.log" % name), cfg.deploy_timeout)
        say("%s: deploy tool exited %d after %.1f s (its CPU: %.2f s)" % (name, rc, t_end - t0, tool_cpu))
        # Until the new workers consume (a task started by a new-color worker).
        t_consume = None
        deadline = time.time() + 90
        while time.time() < deadline and rc == 0:
            t_consume = first_new_consumption(records, "green")
            if t_consume:
                break
            time.sleep(0.2)
        m["feeding"].clear()
        time.sleep(1.0)
        settled = wait_settled(stack, cfg.settle_timeout)
        time.sleep(2.0)  # a late duplicate run or beat send still shows up
        t_settled = time.time()
        probe.halt.set()
        samples, load = stop_measuring(m)
        m = None
        data = {
            "strategy": name, "app": stack.app, "rc": rc, "t_backlog": t_backlog, "t0": t0, "t_end": t_end,
            "t_consume": t_consume, "t_settled": t_settled, "settled": settled, "healthy_at": probe.healthy_at,
            "tool_cpu_s": tool_cpu, "load_avg_at_start": load_at_start, "load_avg_at_end": os.getloadavg(),
            "marks": parse_marks(lines), "timeline": read_timeline(timeline),
            "containers": stack.containers(), "oom_kills": stack.budget.oom_kills(),
            "records": read_records(stack), "samples": samples, "load": load,
            "tail": [line for _t, line in lines[-15:]] if rc else [],
        }
        return data
    finally:
        if m is not None:
            stop_measuring(m)
        say("%s: tearing down %s" % (name, stack.app))
        stack.teardown()


def run_floor(cfg, rundir, workdir):
    """The floor: on the same budget, with v1 serving the same HTTP load (no task backlog),
    start the new web alone and time its first healthy answer; memory of both together."""
    stack = Stack("floor", cfg, workdir)
    say("floor: fresh stack %s" % stack.app)
    m = None
    try:
        stack.create()
        m = start_measuring(stack, rundir, cfg, feed=False)
        time.sleep(min(cfg.steady_s, 8))
        probe = HealthProbe(stack.ports["green"], "v2")
        t0 = time.time()
        probe.start()
        stack.color("green", "v2", "up", "-d", "web")
        probe.join(120)
        time.sleep(3.0)
        t_settled = time.time()
        samples, load = stop_measuring(m)
        m = None
        data = {"strategy": "floor", "app": stack.app, "t0": t0, "healthy_at": probe.healthy_at, "t_settled": t_settled,
                "containers": stack.containers(), "samples": samples, "load": load,
                "load_avg_at_start": os.getloadavg()}
        say("floor: new web healthy after %s s" % fmt(probe.healthy_at - t0 if probe.healthy_at else None))
        return data
    finally:
        if m is not None:
            stop_measuring(m)
        say("floor: tearing down %s" % stack.app)
        stack.teardown()


def first_new_consumption(records, color):
    """Start time of the first task a `color` worker ran (None yet)."""
    firsts = []
    for raw in records.lrange("demo:done", -400, -1):
        item = json.loads(raw)
        if item.get("color") == color:
            firsts.append(item.get("started", item["t"]))
    return min(firsts) if firsts else None


def wait_settled(stack, timeout):
    """Wait until every enqueued task completed and the queue is empty; True when it did."""
    records, broker = stack.redis(1), stack.redis(0)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if records.hlen("demo:runs") >= records.scard("demo:enqueued") and broker.llen("celery") == 0:
            return True
        time.sleep(0.5)
    return False


def read_records(stack):
    records = stack.redis(1)
    return {
        "enqueued": sorted(records.smembers("demo:enqueued")),
        "runs": {k: int(v) for k, v in records.hgetall("demo:runs").items()},
        "done": [json.loads(x) for x in records.lrange("demo:done", 0, -1)],
        "beat_sends": [json.loads(x) for x in records.lrange("demo:beat_sends", 0, -1)],
        "worker_ready": [json.loads(x) for x in records.lrange("demo:worker_ready", 0, -1)],
        "queue_left": stack.redis(0).llen("celery"),
    }


def parse_marks(lines):
    marks = {}
    for _t, line in lines:
        if line.startswith("MARK "):
            _m, name, at = line.split()
            marks[name] = float(at)
    return marks


def read_timeline(path):
    if not path or not Path(path).exists():
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------

def pct(values, q):
    if not values:
        return None
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def mean(values):
    return sum(values) / len(values) if values else None


def fmt(value, digits=1):
    if value is None:
        return "–"
    if isinstance(value, float):
        return "%.*f" % (digits, value)
    return str(value)


def http_stats(gets, start, end):
    """Requests scheduled in [start, end): count, failed, p50/p99 latency (ms, from the scheduled time)."""
    window = [g for g in gets if start <= g[0] < end]
    ok = [(g[2] - g[0]) * 1000 for g in window if g[3] == 200]
    failed = [g for g in window if g[3] != 200]
    return {"requests": len(window), "failed": len(failed), "p50_ms": pct(ok, 0.5), "p99_ms": pct(ok, 0.99),
            "max_ms": max(ok) if ok else None,
            "failures": sorted({str(g[3]) for g in failed})}


def sample_window(samples, start, end):
    return [s for s in samples if start <= s["t"] <= end]


def cpu_series(samples):
    """[(t, CPUs used)] from consecutive cpuacct readings."""
    series = []
    for a, b in zip(samples, samples[1:]):
        dt = b["t"] - a["t"]
        if dt > 0:
            series.append((b["t"], (b["cpu_ns"] - a["cpu_ns"]) / 1e9 / dt))
    return series


def container_cpu_at(samples, cid, at):
    """CPU seconds a container had used by time `at` (last sample at or before it)."""
    short = cid[:12]
    best = None
    for s in samples:
        if s["t"] > at + 0.05:
            break
        if short in s["c"]:
            best = s["c"][short][0]
    return best / 1e9 if best is not None else None


def summarize(data, cfg):
    """The figures of one strategy run."""
    samples, gets = data["samples"], data["load"]["gets"]
    t0, t_end = data["t0"], data["t_end"]
    t_consume = data["t_consume"]
    t_window_end = max(t_end, t_consume or t_end)
    steady_start = t0 - cfg.steady_s
    new = {c["service"]: c for c in data["containers"] if c["color"] == "green"}
    old = {c["service"]: c for c in data["containers"] if c["color"] == "blue"}
    steady = sample_window(samples, steady_start + 1, t0)
    deploy = sample_window(samples, t0, t_window_end)
    mem = [s["mem"] for s in deploy]
    cpu = [v for t, v in cpu_series(samples) if t0 <= t <= t_window_end]
    first_new = [g for g in gets if g[3] == 200 and g[4] == "v2"]
    t_switch = first_new[0][1] if first_new else None
    # Tasks: completions in the measured window (the queue holds work all along).
    done = sorted(d["t"] for d in data["records"]["done"] if d["t"] >= steady_start)
    gaps = [(b - a, a) for a, b in zip(done, done[1:])]
    longest = max(gaps) if gaps else (None, None)
    # Queue depth (queued, not yet started) over the deploy window, from the backlog, the
    # accepted POSTs and the recorded task starts: the task gap means something only while
    # work was waiting.
    events = [(data["t_backlog"], cfg.backlog)] + [(p[1], len(p[3])) for p in data["load"]["posts"] if p[2] == 200]
    events += [(d.get("started", d["t"]), -1) for d in data["records"]["done"]]
    depth, min_depth = 0, None
    for t, delta in sorted(events):
        depth += delta
        if t0 <= t <= t_window_end:
            min_depth = max(0, depth if min_depth is None else min(min_depth, depth))
    enqueued = set(data["records"]["enqueued"])
    runs = data["records"]["runs"]
    lost = sorted(u for u in enqueued if runs.get(u, 0) == 0)
    twice = sorted(u for u, n in runs.items() if n > 1)
    # Beat: sends in the measured window.
    sends = sorted((b["t"], b["color"]) for b in data["records"]["beat_sends"] if steady_start <= b["t"] <= data["t_settled"])
    period = cfg.beat_period
    dup, missed, beat_gap = 0, 0, 0.0
    for (ta, _ca), (tb, _cb) in zip(sends, sends[1:]):
        dt = tb - ta
        beat_gap = max(beat_gap, dt)
        if dt < 0.5 * period:
            dup += 1
        elif dt > 1.5 * period:
            missed += int(round(dt / period)) - 1
    colors_sending = sorted({c for _t, c in sends})
    # Boot cost of the new color: its web until healthy, its worker until ready.
    boot = {}
    if "web" in new and data["healthy_at"]:
        boot["web_to_healthy_cpu_s"] = container_cpu_at(samples, new["web"]["id"], data["healthy_at"])
    ready = [r for r in data["records"]["worker_ready"] if r.get("color") == "green"]
    if "worker" in new and ready:
        boot["worker_to_ready_cpu_s"] = container_cpu_at(samples, new["worker"]["id"], min(r["t"] for r in ready))
    t_first = first_change(data)
    # Phases observed the same way for every strategy (for the plot and the table).
    phases = {
        "deploy start": t0,
        "first change": t_first,
        "old workers stopped": old.get("worker", {}).get("finished") if old.get("worker", {}).get("status") != "running" else None,
        "new web up": new.get("web", {}).get("started"),
        "new web healthy": data["healthy_at"],
        "traffic on new": t_switch,
        "new workers consume": t_consume,
        "deploy tool done": t_end,
    }

    def rel(t):
        return (t - t0) if t else None

    cpu_s = (deploy[-1]["cpu_ns"] - deploy[0]["cpu_ns"]) / 1e9 if len(deploy) > 1 else None
    steady_cpu = (steady[-1]["cpu_ns"] - steady[0]["cpu_ns"]) / 1e9 / (steady[-1]["t"] - steady[0]["t"]) if len(steady) > 1 else None
    summary = {
        "rc": data["rc"],
        "mem_peak_mb": max(mem) / 2**20 if mem else None,
        "mem_mean_mb": sum(mem) / len(mem) / 2**20 if mem else None,
        "mem_steady_mb": sum(s["mem"] for s in steady) / len(steady) / 2**20 if steady else None,
        "workers_peak": max((s["workers"] for s in deploy), default=None),
        "workers_steady": max((s["workers"] for s in steady), default=None),
        "cpu_deploy_s": cpu_s,
        "cpu_mean_pct": (sum(cpu) / len(cpu) * 100) if cpu else None,
        "cpu_steady_pct": steady_cpu * 100 if steady_cpu is not None else None,
        "throttled_s": (deploy[-1]["throttled_ns"] - deploy[0]["throttled_ns"]) / 1e9 if len(deploy) > 1 else None,
        "http_steady": http_stats(gets, steady_start + 1, t0),
        "http_deploy": http_stats(gets, t0, t_window_end),
        "enqueue_failed": sum(1 for p in data["load"]["posts"] if p[2] != 200),
        "t_new_web_healthy": rel(data["healthy_at"]),
        "t_switch": rel(t_switch),
        "t_first_change": rel(t_first),
        "t_switch_from_first_change": (t_switch - t_first) if t_switch and t_first else None,
        "t_consume": rel(t_consume),
        "t_tool": t_end - t0,
        "deploy_window_s": t_window_end - t0,
        "longest_task_gap_s": longest[0],
        "longest_task_gap_at": rel(longest[1]) if longest[1] else None,
        "queue_min_depth_deploy": min_depth,
        "tasks_enqueued": len(enqueued),
        "tasks_completed": sum(1 for u in enqueued if runs.get(u, 0) > 0),
        "tasks_lost": len(lost),
        "tasks_run_twice": len(twice),
        "settled": data["settled"],
        "beat_sends": len(sends),
        "beat_duplicates": dup,
        "beat_missed": missed,
        "beat_longest_gap_s": beat_gap,
        "beat_colors": colors_sending,
        "tool_cpu_s": data["tool_cpu_s"],
        "boot": boot,
        "oom_kills": data["oom_kills"],
        "restarts": {c["project"] + "/" + c["service"]: c["restarts"] for c in data["containers"] if c["restarts"]},
        "load_avg_at_start": data["load_avg_at_start"][0],
        "host_cpu_pressure_steady_pct": mean([v for t, v in pressure_series(samples) if steady_start <= t <= t0]),
        "host_cpu_pressure_deploy_pct": mean([v for t, v in pressure_series(samples) if t0 <= t <= t_window_end]),
        "queue_left": data["records"]["queue_left"],
        "phases": {k: rel(v) for k, v in phases.items()},
        "marks": {k: rel(v) for k, v in data["marks"].items()},
        "role_steps": role_steps(data["timeline"], t0) if data["timeline"] else {},
    }
    return summary


QUIESCE_TASK = "Quiesce the old color's beat"  # the role's quiesce task (every mode), by its name's start


def first_change(data):
    """When the strategy first touched the running app: the start of the role's quiesce task
    (bench_timeline), or the scripts' `start` mark, printed just before their first docker
    compose call (naive: the new color's start; the article's script: its stop of the old
    worker and beat). None when the deploy never got there."""
    if data["timeline"]:
        for event in data["timeline"]:
            if event["event"] == "start" and event["task"].split(" : ", 1)[-1].startswith(QUIESCE_TASK):
                return event["t"]
        return None
    return data["marks"].get("start")


def role_steps(timeline, t0):
    """The role's tasks from the callback: start (s from the deploy start) and duration of
    each slow one, the start of the main steps, and the time spent waiting for pressure."""
    wanted = {
        "quiesce": QUIESCE_TASK,
        "start web": "Start only the new color's web",
        "health": "Check the new color's health on its own port",
        "start workers": "Start the new color's workers",
        "celery ping": "Wait until the new workers answer Celery's ping",
        "stop old beat": "Stop the old beat, confirmed exited",
        "start beat": "Start the new color's beat",
        "retire old workers": "Drain and stop the old workers",
        "reload nginx": "Reload nginx",
        "check via proxy": "Check through the proxy",
        "record": "Record the new active color",
        "grow": "Grow the new workers to their full pool",
    }
    starts = [dict(e, task=e["task"].split(" : ", 1)[-1]) for e in timeline if e["event"] == "start"]
    tasks = []
    for a, b in zip(starts, starts[1:] + [None]):
        end = b["t"] if b else None
        tasks.append({"task": a["task"], "at": a["t"] - t0, "s": (end - a["t"]) if end else None})
    steps = {}
    for key, prefix in wanted.items():
        for task in tasks:
            if task["task"].startswith(prefix) and key not in steps:
                steps[key] = task["at"]
    skipped = {e["task"].split(" : ", 1)[-1] for e in timeline if e["event"] == "skipped"}

    def spent(*prefixes):
        """Seconds spent in the tasks named so that ran (None when none ran)."""
        ran = [t["s"] or 0 for t in tasks if t["task"].startswith(prefixes) and t["task"] not in skipped]
        return sum(ran) if ran else None

    failed = ["%s: %s" % (e["task"], e.get("msg", "")) for e in timeline if e["event"] == "failed"]
    return {"steps": steps, "pressure_wait_s": spent("Wait for host pressure to settle"), "quiesce_s": spent(QUIESCE_TASK),
            # shrink mode: the old beat's stop and the old workers' drain, both before the switch
            "retire_s": spent("Stop the old beat, confirmed exited", "Drain and stop the old workers"),
            "grow_wait_s": spent("Wait for host pressure before growing"),
            "failed": failed, "slow_tasks": [t for t in tasks if (t["s"] or 0) >= 1.0]}


def pressure_series(samples):
    """[(t, % of time some task waited for a CPU, host-wide)] from /proc/pressure/cpu totals."""
    series = []
    for a, b in zip(samples, samples[1:]):
        dt = b["t"] - a["t"]
        if dt > 0 and "psi_cpu_us" in a:
            series.append((b["t"], min(100.0, (b["psi_cpu_us"] - a["psi_cpu_us"]) / 1e6 / dt * 100)))
    return series


def summarize_floor(data, cfg):
    samples = data["samples"]
    t0 = data["t0"]
    end = (data["healthy_at"] or data["t_settled"]) + 3.0
    before = sample_window(samples, t0 - min(cfg.steady_s, 8) + 1, t0)
    during = sample_window(samples, t0, end)
    new_web = [c for c in data["containers"] if c["color"] == "green" and c["service"] == "web"]
    web_mem = None
    if new_web and during:
        short = new_web[0]["id"][:12]
        vals = [s["c"][short][1] for s in during if short in s["c"]]
        web_mem = max(vals) / 2**20 if vals else None
    return {
        "t_new_web_healthy": (data["healthy_at"] - t0) if data["healthy_at"] else None,
        "mem_old_release_mb": sum(s["mem"] for s in before) / len(before) / 2**20 if before else None,
        "mem_new_web_mb": web_mem,
        "mem_peak_mb": max(s["mem"] for s in during) / 2**20 if during else None,
        "web_to_healthy_cpu_s": container_cpu_at(samples, new_web[0]["id"], data["healthy_at"]) if new_web and data["healthy_at"] else None,
        "http_steady": http_stats(data["load"]["gets"], t0 - min(cfg.steady_s, 8) + 1, t0),
        "load_avg_at_start": data["load_avg_at_start"][0],
    }


# ---------------------------------------------------------------------------
# Table, targets, plot
# ---------------------------------------------------------------------------

def table(results, floor, cfg, load_info):
    cols = [s for s in STRATEGIES if s in results]
    S = {s: results[s]["summary"] for s in cols}
    rows = []

    def row(label, fn, floor_value=""):
        rows.append("| %s | %s | %s |" % (label, " | ".join(fn(S[s]) for s in cols), floor_value))

    fl = floor or {}
    row("Deploy outcome", lambda x: "ok" if x["rc"] == 0 else "**failed** (exit %s)" % x["rc"])
    row("Peak memory, MB (all app containers)", lambda x: fmt(x["mem_peak_mb"], 0),
        fmt(fl.get("mem_peak_mb"), 0) + " (old release %s + new web %s)" % (
            fmt(fl.get("mem_old_release_mb"), 0), fmt(fl.get("mem_new_web_mb"), 0)) if fl else "")
    row("Mean memory during the deploy, MB", lambda x: fmt(x["mem_mean_mb"], 0))
    row("Memory before the deploy (steady), MB", lambda x: fmt(x["mem_steady_mb"], 0))
    row("Peak Celery worker processes (steady)", lambda x: "%s (%s)" % (fmt(x["workers_peak"]), fmt(x["workers_steady"])))
    row("App CPU during the deploy, CPU-s (mean % of one CPU)", lambda x: "%s (%s %%)" % (fmt(x["cpu_deploy_s"]), fmt(x["cpu_mean_pct"], 0)))
    row("Time throttled by the CPU quota during the deploy, s", lambda x: fmt(x["throttled_s"]))
    row("HTTP requests / failed during the deploy", lambda x: "%d / %d%s" % (
        x["http_deploy"]["requests"], x["http_deploy"]["failed"],
        " (%s)" % ", ".join(x["http_deploy"]["failures"]) if x["http_deploy"]["failures"] else ""))
    row("HTTP p50 / p99 during the deploy, ms", lambda x: "%s / %s" % (fmt(x["http_deploy"]["p50_ms"], 0), fmt(x["http_deploy"]["p99_ms"], 0)))
    row("HTTP p50 / p99 steady state, ms", lambda x: "%s / %s" % (fmt(x["http_steady"]["p50_ms"], 0), fmt(x["http_steady"]["p99_ms"], 0)),
        "%s / %s" % (fmt(fl.get("http_steady", {}).get("p50_ms"), 0), fmt(fl.get("http_steady", {}).get("p99_ms"), 0)) if fl else "")
    row("New web healthy after, s", lambda x: fmt(x["t_new_web_healthy"]), fmt(fl.get("t_new_web_healthy")) if fl else "")
    row("Traffic on the new color after, s (deploy wall time)", lambda x: fmt(x["t_switch"]))
    row("From the first change to traffic on the new color, s (first change at, s)",
        lambda x: "%s (at %s)" % (fmt(x["t_switch_from_first_change"]), fmt(x["t_first_change"])))
    row("New workers consuming after, s", lambda x: fmt(x["t_consume"]))
    row("Deploy tool running, s", lambda x: fmt(x["t_tool"]))
    row("Longest gap with no task completing, s", lambda x: fmt(x["longest_task_gap_s"]))
    row("Fewest tasks waiting in the queue during the deploy", lambda x: fmt(x["queue_min_depth_deploy"]))
    row("Tasks enqueued / lost / run twice", lambda x: "%d / %s / %d" % (
        x["tasks_enqueued"], x["tasks_lost"] if x["settled"] else "%d not run at the end (unsettled)" % x["tasks_lost"],
        x["tasks_run_twice"]))
    row("Beat sends duplicated / missed", lambda x: "%d / %d" % (x["beat_duplicates"], x["beat_missed"]))
    row("Deploy tool's own CPU on the host, CPU-s", lambda x: fmt(x["tool_cpu_s"], 2))
    row("New color's boot CPU: web to healthy + worker to ready, CPU-s",
        lambda x: "%s + %s" % (fmt(x["boot"].get("web_to_healthy_cpu_s"), 2), fmt(x["boot"].get("worker_to_ready_cpu_s"), 2)),
        fmt(fl.get("web_to_healthy_cpu_s"), 2) + " (web)" if fl else "")
    row("Role: waiting for host pressure / quiescing / shrink's old beat stop + old workers' drain, s",
        lambda x: "%s / %s / %s" % (fmt(x["role_steps"].get("pressure_wait_s")), fmt(x["role_steps"].get("quiesce_s")),
                                    fmt(x["role_steps"].get("retire_s"))) if x["role_steps"] else "–")
    row("Host CPU pressure (some, all processes) steady / deploy, %", lambda x: "%s / %s" % (
        fmt(x["host_cpu_pressure_steady_pct"], 0), fmt(x["host_cpu_pressure_deploy_pct"], 0)))
    row("Load average (1 min) at the deploy start", lambda x: fmt(x["load_avg_at_start"], 2), fmt(fl.get("load_avg_at_start"), 2) if fl else "")
    head = "| | %s | floor |\n|---|%s---|" % (" | ".join(LABELS[s] for s in cols), "---|" * len(cols))
    return head + "\n" + "\n".join(rows)


def targets(results, floor, name):
    """[(target, measured, ratio text, verdict)] for one role strategy, as issue 8 states them.
    Time to switch is given both ways: from the deploy start (the deploy wall time, the
    role's preflight included) and from the strategy's first change to the running app."""
    out = []
    if name not in results:
        return out
    r = results[name]["summary"]
    a = results.get("article", {}).get("summary")
    failed = r["rc"] != 0

    def add(target, measured, ratio, met):
        verdict = "met" if met else ("missed" if met is not None else "–")
        if failed and met is not None:
            verdict += " (deploy failed)"
        out.append((target, measured, ratio, verdict))

    if failed:
        out.append(("The deploy succeeds", "exit %s: %s" % (r["rc"], "; ".join(r["role_steps"].get("failed", []))[:300]), "–", "missed"))

    def div(x, y):
        return x / y if x is not None and y else None

    if floor and floor.get("mem_peak_mb") and r["mem_peak_mb"]:
        ratio = div(r["mem_peak_mb"], floor["mem_peak_mb"])
        add("Peak memory <= floor + 5 %", "%s MB vs floor %s MB" % (fmt(r["mem_peak_mb"], 0), fmt(floor["mem_peak_mb"], 0)),
            "%.2fx floor" % ratio, ratio <= 1.05)
    add("Failed requests during the deploy = 0", str(r["http_deploy"]["failed"]), "–", r["http_deploy"]["failed"] == 0)
    p99r = div(r["http_deploy"]["p99_ms"], r["http_steady"]["p99_ms"])
    add("p99 during the deploy <= 2x steady-state p99",
        "%s ms vs %s ms" % (fmt(r["http_deploy"]["p99_ms"], 0), fmt(r["http_steady"]["p99_ms"], 0)),
        "%.2fx" % p99r if p99r is not None else "–", p99r <= 2 if p99r is not None else None)
    add("Tasks lost = 0", str(r["tasks_lost"]), "–", r["tasks_lost"] == 0)
    add("Tasks run twice = 0", str(r["tasks_run_twice"]), "–", r["tasks_run_twice"] == 0)
    add("Duplicate beat sends = 0", str(r["beat_duplicates"]), "–", r["beat_duplicates"] == 0)
    for key, how in (("t_switch", "deploy wall time"), ("t_switch_from_first_change", "from the first change")):
        if a:
            sw = div(r[key], a[key])
            add("Time to switch (%s) <= 0.3x the article's script" % how, "%s s vs %s s" % (fmt(r[key]), fmt(a[key])),
                "%.2fx" % sw if sw is not None else "–", sw <= 0.3 if sw is not None else None)
        if floor and floor.get("t_new_web_healthy") is not None:
            extra = r[key] - floor["t_new_web_healthy"] if r[key] is not None else None
            add("Time to switch (%s) <= floor + 3 s" % how, "%s s vs floor %s s" % (fmt(r[key]), fmt(floor["t_new_web_healthy"])),
                "floor + %.1f s" % extra if extra is not None else "–", extra <= 3 if extra is not None else None)
    if a:
        gr = div(r["longest_task_gap_s"], a["longest_task_gap_s"])
        add("Longest task gap <= 0.4x the article's script", "%s s vs %s s" % (fmt(r["longest_task_gap_s"]), fmt(a["longest_task_gap_s"])),
            "%.2fx" % gr if gr is not None else "–", gr <= 0.4 if gr is not None else None)
    boot = r["boot"]
    app_boot = sum(v for v in boot.values() if v is not None)
    add("Ansible's on-host CPU (reported beside the app's boot cost)",
        "%.2f CPU-s vs app boot %.2f CPU-s" % (r["tool_cpu_s"], app_boot),
        "%.1fx the app's boot" % (r["tool_cpu_s"] / app_boot) if app_boot else "–", None)
    return out


def targets_table(by_strategy):
    """One row per target, one column per role strategy: measured; ratio; verdict."""
    names = list(by_strategy)
    order = []
    for rows in by_strategy.values():
        order += [row[0] for row in rows if row[0] not in order]
    cells = {n: {row[0]: row[1:] for row in rows} for n, rows in by_strategy.items()}

    def cell(n, target):
        if target not in cells[n]:
            return "–"
        measured, ratio, verdict = cells[n][target]
        verdict = "**%s**" % verdict if verdict.startswith("missed") else verdict
        return "%s; %s; %s" % (measured, ratio, verdict) if ratio != "–" else "%s; %s" % (measured, verdict)

    lines = ["| target | %s |" % " | ".join("%s: measured; ratio; verdict" % LABELS[n] for n in names),
             "|---|%s" % ("---|" * len(names))]
    lines += ["| %s | %s |" % (target, " | ".join(cell(n, target) for n in names)) for target in order]
    return "\n".join(lines)


PHASE_STYLE = {
    "first change": ("tab:olive", "first change to the running app"),
    "old workers stopped": ("tab:red", "old workers stopped"),
    "new web up": ("tab:gray", "new web up"),
    "new web healthy": ("tab:green", "new web healthy"),
    "traffic on new": ("tab:blue", "switch"),
    "new workers consume": ("tab:purple", "new workers consume"),
    "deploy tool done": ("black", "tool done"),
}


def plot(results, floor, cfg, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [s for s in STRATEGIES if s in results]
    fig, axes = plt.subplots(2, len(cols), figsize=(max(4.6 * len(cols), 11), 7.6), sharex=True, sharey="row", squeeze=False)
    mem_max = max(max((s["mem"] for s in results[n]["samples"]), default=0) for n in cols) / 2**20
    for j, name in enumerate(cols):
        data, summ = results[name], results[name]["summary"]
        t0 = data["t0"]
        samples = [s for s in data["samples"] if s["t"] >= t0 - cfg.steady_s]
        ts = [s["t"] - t0 for s in samples]
        ax_m, ax_c = axes[0][j], axes[1][j]
        ax_m.plot(ts, [s["mem"] / 2**20 for s in samples], color="tab:orange", lw=1.4, label="memory (working set)")
        if floor and floor.get("mem_peak_mb"):
            ax_m.axhline(floor["mem_peak_mb"], color="tab:green", ls=":", lw=1.2, label="floor: old release + new web")
        ax_w = ax_m.twinx()
        ax_w.step(ts, [s["workers"] for s in samples], where="post", color="tab:brown", lw=0.9, alpha=0.6,
                  label="Celery worker processes")
        ax_w.set_ylim(0, 10)
        if j == len(cols) - 1:
            ax_w.set_ylabel("Celery worker processes")
        else:
            ax_w.set_yticklabels([])
        series = cpu_series(samples)
        # 0.5 s moving average of the 10 Hz CPU readings, plus the raw readings faintly.
        raw_t = [t - t0 for t, _v in series]
        raw_v = [v * 100 for _t, v in series]
        k = 5
        smooth = [sum(raw_v[max(0, i - k + 1):i + 1]) / len(raw_v[max(0, i - k + 1):i + 1]) for i in range(len(raw_v))]
        ax_c.plot(raw_t, raw_v, color="tab:blue", lw=0.5, alpha=0.3)
        ax_c.plot(raw_t, smooth, color="tab:blue", lw=1.3, label="app CPU (0.5 s mean)")
        ax_c.axhline(cfg.cpus * 100, color="black", ls="--", lw=0.8, label="budget")
        psi = pressure_series(samples)
        ax_c.plot([t - t0 for t, _v in psi], [v for _t, v in psi], color="tab:gray", lw=0.6, alpha=0.45,
                  label="host CPU pressure (some, whole machine), %")
        for ax in (ax_m, ax_c):
            ax.axvspan(0, summ["deploy_window_s"], color="tab:gray", alpha=0.08)
            for key, (color, _label) in PHASE_STYLE.items():
                at = summ["phases"].get(key)
                if at is not None:
                    ax.axvline(at, color=color, lw=1.0, ls="-" if key != "deploy tool done" else "--", alpha=0.8)
            ax.grid(alpha=0.3)
        ax_m.set_title("%s\nswitch %s s (%s s from the first change)\npeak %s MB, %d failed req., task gap %s s" % (
            LABELS[name], fmt(summ["t_switch"]), fmt(summ["t_switch_from_first_change"]), fmt(summ["mem_peak_mb"], 0),
            summ["http_deploy"]["failed"], fmt(summ["longest_task_gap_s"])), fontsize=9)
        ax_m.set_ylim(0, mem_max * 1.15)
        ax_c.set_ylim(0, max(cfg.cpus * 100 * 1.6, 100))
        ax_c.set_xlabel("seconds from the deploy start")
        if j == 0:
            ax_m.set_ylabel("memory of all app containers, MB")
            ax_c.set_ylabel("CPU, % of one CPU (cgroup cpuacct)")
    handles = [matplotlib.lines.Line2D([], [], color=c, lw=1.2, ls="-" if k != "deploy tool done" else "--", label=lab)
               for k, (c, lab) in PHASE_STYLE.items()]
    h1, l1 = axes[0][0].get_legend_handles_labels()
    h2, l2 = axes[1][0].get_legend_handles_labels()
    wh = [matplotlib.lines.Line2D([], [], color="tab:brown", lw=0.9, label="Celery worker processes")]
    fig.legend(h1 + wh + h2 + handles, l1 + ["Celery worker processes"] + l2 + [h.get_label() for h in handles],
               loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle("Deploy v1 -> v2 of the demo app under %s CPU / %d MB\n(web %s ms CPU/request at %s req/s, "
                 "worker boot %s s + %d MB, concurrency %d, prefetch multiplier %d, beat every %s s)" % (
                     fmt(cfg.cpus), cfg.mem_cap_mb, fmt(cfg.web_cpu_ms, 0), fmt(cfg.http_rate, 0), fmt(cfg.worker_boot_cpu_s, 0),
                     cfg.worker_boot_mb, cfg.concurrency, cfg.prefetch, fmt(cfg.beat_period, 0)), fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.94))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def code_provenance():
    """The commit the role and modules came from, and which of their files differed from it."""
    def git(*args):
        return subprocess.run(["git", "-C", str(ROOT)] + list(args), capture_output=True, text=True, check=False).stdout

    dirty = [line[3:] for line in git("status", "--porcelain", "--", "roles", "plugins", "playbooks").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "dirty": dirty}


def knob_text(cfg):
    return ("DEMO_WEB_CPU_MS=%s, DEMO_WORKER_BOOT_CPU_S=%s, DEMO_WORKER_BOOT_MB=%d, DEMO_CONCURRENCY=%d, "
            "DEMO_PREFETCH=%d (every strategy), DEMO_BEAT_PERIOD=%s, DEMO_WEB_WORKERS=%d; "
            "budget %s CPU (cfs quota) and %d MB (memory.limit_in_bytes) for all app containers incl. Redis; "
            "load: GET / through nginx at %s/s, backlog %d tasks of %s s CPU, %s tasks/s arriving through nginx, "
            "%s s steady state before the deploy; sampling at %s Hz" % (
                fmt(cfg.web_cpu_ms, 0), fmt(cfg.worker_boot_cpu_s, 1), cfg.worker_boot_mb, cfg.concurrency, cfg.prefetch,
                fmt(cfg.beat_period, 1), cfg.web_workers, fmt(cfg.cpus), cfg.mem_cap_mb, fmt(cfg.http_rate, 0),
                cfg.backlog, fmt(cfg.task_seconds, 2), fmt(cfg.arrival_rate, 1), fmt(cfg.steady_s, 0), fmt(cfg.sample_hz, 0)))


# ---------------------------------------------------------------------------

def main(argv=None):
    cfg = parse_args(argv)
    LABELS["shrink"] = shrink_label(cfg)
    if os.geteuid() != 0:
        sys.exit("the benchmark needs root (cgroups)")
    stamp = time.strftime("%Y%m%dT%H%M%S")
    rundir = Path(cfg.out) / stamp
    rundir.mkdir(parents=True)
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / ("lowspec-bench-" + stamp)
    workdir.mkdir(parents=True)
    started = time.time()
    load_start = os.getloadavg()
    say("benchmark run %s (load average %.2f %.2f %.2f); results in %s" % ((stamp,) + load_start + (rundir,)))
    say("knobs: " + knob_text(cfg))
    results, floor_data, floor = {}, None, None
    errors = {}
    try:
        if "floor" in cfg.only:
            try:
                floor_data = run_floor(cfg, rundir, workdir)
                floor = summarize_floor(floor_data, cfg)
            except Exception as exc:  # noqa: BLE001 - reported, the other runs go on
                errors["floor"] = repr(exc)
                say("floor failed: %r" % exc)
        for name in STRATEGIES:
            if name not in cfg.only:
                continue
            try:
                data = run_strategy(name, cfg, rundir, workdir)
                data["summary"] = summarize(data, cfg)
                results[name] = data
                s = data["summary"]
                say("%s: switch %s s (%s s from the first change), peak %s MB, %d failed, p99 %s ms, gap %s s, lost %d, "
                    "twice %d, beat dup %d missed %d" % (
                        name, fmt(s["t_switch"]), fmt(s["t_switch_from_first_change"]), fmt(s["mem_peak_mb"], 0),
                        s["http_deploy"]["failed"], fmt(s["http_deploy"]["p99_ms"], 0), fmt(s["longest_task_gap_s"]),
                        s["tasks_lost"], s["tasks_run_twice"], s["beat_duplicates"], s["beat_missed"]))
            except Exception as exc:  # noqa: BLE001 - reported, the other runs go on
                errors[name] = repr(exc)
                say("%s failed: %r" % (name, exc))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.time() - started
    load_end = os.getloadavg()
    load_info = {"start": load_start, "end": load_end,
                 "per_strategy": {n: results[n]["summary"]["load_avg_at_start"] for n in results}}
    provenance = code_provenance()
    doc = {"run": stamp, "elapsed_s": elapsed, "code": provenance, "config": vars(cfg), "knobs": knobs(cfg), "load_avg": load_info,
           "errors": errors, "floor": floor, "floor_raw": floor_data,
           "strategies": {n: results[n] for n in results}}
    (rundir / "run.json").write_text(json.dumps(doc))
    (rundir / "summary.json").write_text(json.dumps(
        {"run": stamp, "elapsed_s": elapsed, "code": provenance, "knobs": knobs(cfg), "config": vars(cfg), "load_avg": load_info,
         "errors": errors, "floor": floor, "summaries": {n: results[n]["summary"] for n in results}}, indent=1))
    md = ["# Benchmark run %s" % stamp, "",
          "Demo app v1 -> v2 on this machine (%d cores), %s. Load average (1/5/15 min) at the start %.2f/%.2f/%.2f, "
          "at the end %.2f/%.2f/%.2f; per deploy start: %s. Whole run %.0f s." % (
              os.cpu_count(), knob_text(cfg), *load_start, *load_end,
              ", ".join("%s %.2f" % (n, v) for n, v in load_info["per_strategy"].items()), elapsed),
          "", "Strategies: %s (the role's defaults, verify gate off); %s: the same wiring plus %s (%s)." % (
              LABELS["role"], LABELS["shrink"], json.dumps(shrink_variables(cfg), sort_keys=True),
              "worker warm-up on: the new workers start with %d pool process(es) and grow to %d after the switch, "
              "as a small host would run it" % (cfg.shrink_warmup, cfg.concurrency)
              if cfg.shrink_warmup > 0 else "worker warm-up off"),
          "", "Role variables beyond the benchmark's stack wiring, for both role strategies: %s." % (
              os.environ.get("BENCH_ROLE_EXTRA_VARS") or "none"),
          "", "Code: commit %s%s." % (provenance["commit"], "; uncommitted changes in " + ", ".join(provenance["dirty"])
                                      if provenance["dirty"] else ", clean"), ""]
    if results:
        md += [table(results, floor, cfg, load_info), ""]
        rows = {n: targets(results, floor, n) for n in ROLE_STRATEGIES if n in results}
        if rows:
            md += ["Targets (each role strategy against issue 8's targets; reported, not enforced):", "",
                   targets_table(rows), ""]
        plot(results, floor, cfg, rundir / "plot.png")
        md += ["![memory and CPU over time](plot.png)", ""]
    if errors:
        md += ["Errors: " + "; ".join("%s: %s" % kv for kv in errors.items()), ""]
    (rundir / "table.md").write_text("\n".join(md))
    print("\n".join(md))
    if results and not cfg.no_latest:
        shutil.copy(rundir / "plot.png", BENCH / "latest.png")
        (BENCH / "latest.md").write_text("\n".join(md).replace("](plot.png)", "](latest.png)"))
    say("done in %.0f s: %s" % (elapsed, rundir))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
