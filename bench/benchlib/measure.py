# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Measuring, in processes of their own on the controller side (outside the budget):
the cgroup sampler, the HTTP load, and the new color's health probe."""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import threading
import time
from pathlib import Path

from .common import CG, http_get, read, write

PLACED = ("cpu", "cpuacct", "memory")


def _mem_stat(path):
    stat = {}
    for line in (read(path / "memory.stat", "") or "").splitlines():
        key, _sep, value = line.partition(" ")
        if key in ("total_inactive_file", "total_rss", "total_cache"):
            stat[key] = int(value)
    return stat


def _working_set(path):
    usage = int(read(path / "memory.usage_in_bytes", "0") or 0)
    return usage - _mem_stat(path).get("total_inactive_file", 0) if usage else 0


def sampler_main(budget_name, out_path, stop, hz):
    """Every 1/hz s: the budget's CPU (cpuacct.usage) in all and per child (app, tool, daemon,
    net), memory (working set: usage minus inactive file cache, as `docker stats` shows it),
    throttling, and per app container its CPU, memory and Celery worker processes. It also
    keeps the docker-proxy processes in `net` (the daemon starts one per published port) and
    notes every process seen in `tool` (pid -> name), for the process accounting."""
    top_acct = CG / "cpuacct" / budget_name
    top_cpu = CG / "cpu" / budget_name
    top_mem = CG / "memory" / budget_name
    app_acct, app_mem, app_pids = top_acct / "app", top_mem / "app", CG / "pids" / budget_name / "app"
    samples, seen_tool = [], {}
    moved_proxies = 0
    period = 1.0 / hz
    nxt = time.monotonic()
    while not stop.is_set():
        t = time.time()
        for pid in (read(top_acct / "daemon" / "cgroup.procs", "") or "").split():
            if (read("/proc/%s/comm" % pid, "") or "").strip() == "docker-proxy":
                try:
                    for ctl in PLACED:
                        write(CG / ctl / budget_name / "net" / "cgroup.procs", pid)
                    moved_proxies += 1
                except OSError:
                    pass
        for pid in (read(top_acct / "tool" / "cgroup.procs", "") or "").split():
            if pid not in seen_tool:
                seen_tool[pid] = (read("/proc/%s/comm" % pid, "") or "").strip()
        throttled = 0
        for line in (read(top_cpu / "cpu.stat", "") or "").splitlines():
            if line.startswith("throttled_time "):
                throttled = int(line.split()[1])
        per = {}
        try:
            ids = [e.name for e in os.scandir(app_acct) if e.is_dir()]
        except OSError:
            ids = []
        for cid in ids:
            c_cpu = int(read(app_acct / cid / "cpuacct.usage", "0") or 0)
            workers = 0
            for pid in (read(app_pids / cid / "cgroup.procs", "") or "").split():
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as handle:
                        cmd = handle.read()
                except OSError:
                    continue
                if b"celery" in cmd and b"\0worker\0" in cmd:
                    workers += 1
            per[cid[:12]] = [c_cpu, _working_set(app_mem / cid), workers]
        psi = 0
        for line in (read("/proc/pressure/cpu", "") or "").splitlines():
            if line.startswith("some "):
                psi = int(line.rsplit("total=", 1)[1])
        sample = {
            "t": t,
            "psi_cpu_us": psi,
            "cpu_ns": int(read(top_acct / "cpuacct.usage", "0") or 0),
            "mem_all": _working_set(top_mem),
            "throttled_ns": throttled,
            "workers": sum(v[2] for v in per.values()),
            "c": per,
        }
        for child in ("app", "tool", "daemon", "net"):
            sample["cpu_" + child] = int(read(top_acct / child / "cpuacct.usage", "0") or 0)
            sample["mem_" + child] = _working_set(top_mem / child)
        sample["mem"] = sample["mem_app"]
        samples.append(sample)
        nxt += period
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            nxt = time.monotonic()
    with open(out_path, "w", encoding="utf-8") as out:
        json.dump({"samples": samples, "seen_tool": seen_tool, "moved_proxies": moved_proxies}, out)


def _parse_index(body):
    """'hello: demo v1 on blue' -> ('v1', 'blue')."""
    words = body.split()
    try:
        return words[words.index("demo") + 1], words[-1]
    except (ValueError, IndexError):
        return None, None


def load_main(host, port, rate, max_s, arrival_rate, task_seconds, feeding, stop, out_path):
    """GET / through nginx at `rate` per second (open loop: each request has a scheduled
    time; latency counts from it), and POST /enqueue one task every 1/arrival_rate s while
    `feeding` is set. To the test host only; bounded by `max_s` and by rate * max_s requests."""
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


class HealthProbe(threading.Thread):
    """Polls the new color's own /health/ every 0.1 s until it answers 200 naming the new release."""

    def __init__(self, url, release, deadline_s=300):
        super().__init__(daemon=True)
        self.url = url
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


def start_measuring(stack, rundir, cfg, feed):
    ctx = multiprocessing.get_context("fork")
    stop_sampler, stop_load, feeding = ctx.Event(), ctx.Event(), ctx.Event()
    if feed:
        feeding.set()
    samples_path = Path(rundir) / ("%s-samples.json" % stack.app)
    load_path = Path(rundir) / ("%s-load.json" % stack.app)
    sampler = ctx.Process(target=sampler_main, args=(stack.budget.name, str(samples_path), stop_sampler, cfg.sample_hz),
                          daemon=True)
    load = ctx.Process(target=load_main, args=(stack.host.addr, stack.nginx.port, cfg.http_rate, 600, cfg.arrival_rate,
                                               cfg.task_seconds, feeding, stop_load, str(load_path)), daemon=True)
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
    sampled = json.loads(m["samples_path"].read_text()) if m["samples_path"].exists() else {"samples": [], "seen_tool": {}}
    load = json.loads(m["load_path"].read_text()) if m["load_path"].exists() else {"gets": [], "posts": []}
    return sampled, load
