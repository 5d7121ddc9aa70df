# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Settings and small helpers shared by the benchmark's parts."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
ROOT = BENCH.parent
DEMO = ROOT / "examples" / "demo"
CG = Path("/sys/fs/cgroup")
STRATEGIES = ("naive", "article", "role", "shrink", "mitogen")
ROLE_STRATEGIES = ("role", "shrink", "mitogen")
SCRIPT_STRATEGIES = ("naive", "article")
LABELS = {"naive": "naive blue-green", "article": "article's script", "role": "role (stop)",
          "shrink": "role (shrink)", "mitogen": "role (stop) + Mitogen", "floor": "floor"}
LOOPBACK = "127.0.0.1"
# Where the benchmark may send traffic: loopback and the test host's address (set once known).
_ALLOWED_HOSTS = {LOOPBACK}


def allow_host(addr):
    _ALLOWED_HOSTS.add(addr)


def parse_args(argv=None, doc=""):
    env = os.environ.get
    every = ",".join(STRATEGIES + ("floor",))
    p = argparse.ArgumentParser(description=doc.split("\n\n", maxsplit=1)[0])
    p.add_argument("--quick", action="store_true", help="short settings for debugging the benchmark")
    p.add_argument("--only", default=env("BENCH_ONLY", every), help="comma-separated subset of %s" % every)
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
    # Budget: everything the small host runs (app, the tool's target side, Docker, the proxy).
    p.add_argument("--cpus", type=float, default=float(env("BENCH_CPUS", "1")), help="CPU time of the budget, in CPUs")
    p.add_argument("--mem-cap-mb", type=int, default=int(env("BENCH_MEM_CAP_MB", "1536")))
    # Load.
    p.add_argument("--http-rate", type=float, default=float(env("BENCH_HTTP_RATE", "20")), help="GET / per second")
    p.add_argument("--task-seconds", type=float, default=float(env("BENCH_TASK_SECONDS", "0.4")))
    p.add_argument("--backlog", type=int, default=int(env("BENCH_BACKLOG", "200")))
    p.add_argument("--arrival-rate", type=float, default=float(env("BENCH_ARRIVAL_RATE", "2")), help="tasks per second")
    p.add_argument("--steady-s", type=float, default=float(env("BENCH_STEADY_S", "12")))
    p.add_argument("--sample-hz", type=float, default=float(env("BENCH_SAMPLE_HZ", "10")))
    p.add_argument("--settle-timeout", type=float, default=float(env("BENCH_SETTLE_TIMEOUT", "120")),
                   help="bound after the deploy within which every task must have run (else: lost)")
    p.add_argument("--deploy-timeout", type=float, default=float(env("BENCH_DEPLOY_TIMEOUT", "300")))
    p.add_argument("--out", default=env("BENCH_OUT", str(BENCH / "results")))
    p.add_argument("--no-latest", action="store_true", help="do not update bench/latest.md and latest.png")
    p.add_argument("--render", metavar="RUNDIR", help="re-summarize and re-render a run from its run.json (no measuring)")
    args = p.parse_args(argv)
    if args.quick:
        args.backlog = min(args.backlog, 40)
        args.steady_s = min(args.steady_s, 5)
        args.worker_boot_cpu_s = min(args.worker_boot_cpu_s, 2)
        args.settle_timeout = min(args.settle_timeout, 60)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(STRATEGIES + ("floor",))
    if unknown:
        p.error("unknown strategies: %s" % ", ".join(sorted(unknown)))
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


def shrink_variables(cfg):
    """The shrink strategy's role variables, beyond the stack wiring the role strategies share:
    what a small host would configure. Old workers keep one pool process each; the new
    workers start with a one-process pool (warm-up) and grow to the full concurrency once
    the host has settled (after the switch). BENCH_SHRINK_WARMUP=0 turns warm-up off."""
    variables = {"bluegreen_quiesce_mode": "shrink", "bluegreen_quiesce_keep_processes": 1}
    if cfg.shrink_warmup > 0:
        variables.update(bluegreen_worker_warmup_concurrency=cfg.shrink_warmup, bluegreen_worker_concurrency=cfg.concurrency,
                         bluegreen_worker_concurrency_variable="DEMO_CONCURRENCY")
    return variables


def shrink_label(cfg):
    if cfg.shrink_warmup > 0:
        return "role (shrink, warm-up %d->%d)" % (cfg.shrink_warmup, cfg.concurrency)
    return "role (shrink, no warm-up)"


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


def free_port():
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _check_url(url):
    host = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]
    assert host in _ALLOWED_HOSTS, "traffic only to %s, not %s" % (sorted(_ALLOWED_HOSTS), url)


def http_get(url, timeout=2.0):
    """(status, body) of a GET; status None on a connection error."""
    _check_url(url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (test host or loopback only)
            return answer.status, answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (OSError, http.client.HTTPException):
        return None, ""


def http_post_json(url, payload, timeout=30.0):
    _check_url(url)
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as answer:  # noqa: S310 (test host or loopback only)
        return json.loads(answer.read())


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
