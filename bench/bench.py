# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The benchmark: five ways to deploy the demo app v1 -> v2 on a small host, the host apart from the controller.

Run through `bash bench/run.sh` (it sets the machine up, installs process accounting,
brings up one fleet test host and takes it down again). The small host is a fleet test
host (tests/e2e/fleet/fleet.sh: a network namespace with its own sshd and Docker daemon);
everything it runs is in one budget, a cgroup v1 parent with one CPU of cfs quota and a
memory cap: the app's containers, the tool's target side (the host's sshd, so every SSH
session, module process and docker CLI call), the host's dockerd and containerd, and the
proxy (nginx, docker-proxy), each measured apart (bench/benchlib/target.py). The
controller (ansible-playbook, ssh) runs outside the budget, in a cpuacct group of its own.

Per strategy, on a fresh stack of its own (app name, Redis, nginx, ports):

  load     a task backlog queued before the deploy, tasks arriving steadily through
           nginx during it, beat every second, GET / through nginx at a fixed rate,
           all from a separate process on the controller side, to the test host only
  measure  the budget's CPU and memory per child and per container at 10 Hz, every
           request's status and latency, every task run and beat send (the demo app
           records them in Redis), the controller's CPU; per deploy the module executions
           (the callback's results), the docker CLI calls on the target (process
           accounting), the daemon's execs (its exec_create events), the Celery app boots
           (the modules' `celery` figures) and the role's phase timeline (the callback's
           `phase` field)

Strategies: naive (bench/strategies/naive.sh) and the article's script
(bench/strategies/article.sh), each run on the target through one ssh; this collection's
role (playbooks/deploy.yml over SSH, verify gate off) in quiesce mode `stop` (its default)
and in mode `shrink` (see common.shrink_variables); and the role in mode stop with Mitogen's
strategy (PyPI mitogen, installed apart by bench/run.sh; the collection does not depend on
it). A floor run measures the new web started alone, through ssh too.

Output: bench/results/<timestamp>/{run.json,summary.json,table.md,plot.png,*.log}, copied
to bench/latest.md and bench/latest.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import common, report  # noqa: E402  pylint: disable=wrong-import-position
from benchlib.common import BENCH, LABELS, ROLE_STRATEGIES, ROOT, STRATEGIES, fmt, say  # noqa: E402
from benchlib.metrics import summarize, summarize_floor  # noqa: E402
from benchlib.runs import mitogen_dir, run_floor, run_strategy  # noqa: E402
from benchlib.target import Accounting, Budget, TestHost  # noqa: E402


class Context:
    """What every run shares: settings, the test host, the budget, the accounting, the directories."""

    def __init__(self, cfg, host, budget, accounting, rundir, workdir):
        self.cfg = cfg
        self.host = host
        self.budget = budget
        self.accounting = accounting
        self.rundir = rundir
        self.workdir = workdir


def knob_text(cfg):
    return ("DEMO_WEB_CPU_MS=%s, DEMO_WORKER_BOOT_CPU_S=%s, DEMO_WORKER_BOOT_MB=%d, DEMO_CONCURRENCY=%d, "
            "DEMO_PREFETCH=%d (every strategy), DEMO_BEAT_PERIOD=%s, DEMO_WEB_WORKERS=%d; "
            "budget %s CPU (cfs quota) and %d MB (memory.limit_in_bytes) for everything the test host runs; "
            "load: GET / through nginx at %s/s, backlog %d tasks of %s s CPU, %s tasks/s arriving through nginx, "
            "%s s steady state before the deploy; tasks not run within %s s after the deploy count as lost; "
            "sampling at %s Hz" % (
                fmt(cfg.web_cpu_ms, 0), fmt(cfg.worker_boot_cpu_s, 1), cfg.worker_boot_mb, cfg.concurrency, cfg.prefetch,
                fmt(cfg.beat_period, 1), cfg.web_workers, fmt(cfg.cpus), cfg.mem_cap_mb, fmt(cfg.http_rate, 0),
                cfg.backlog, fmt(cfg.task_seconds, 2), fmt(cfg.arrival_rate, 1), fmt(cfg.steady_s, 0),
                fmt(cfg.settle_timeout, 0), fmt(cfg.sample_hz, 0)))


def code_provenance():
    def git(*args):
        return subprocess.run(["git", "-C", str(ROOT)] + list(args), capture_output=True, text=True, check=False).stdout

    dirty = [line[3:] for line in git("status", "--porcelain", "--", "roles", "plugins", "playbooks").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "dirty": dirty}


def design_text(host):
    return (
        "The small host is fleet test host %s (%s): a network namespace with its own sshd and Docker daemon "
        "(tests/e2e/fleet/fleet.sh). One budget holds everything it runs, a cgroup v1 parent `%s` (one CPU of cfs quota, "
        "the memory cap), with children measured apart: `app` (every container, compose `cgroup_parent: %s`), "
        "`tool` (the host's sshd: every SSH session, module process and docker CLI call a deploy makes), `daemon` "
        "(its dockerd and containerd, and the shims they start) and `net` (the stack's nginx and the daemon's "
        "docker-proxy processes). The controller (ansible-playbook with SSH pipelining and ControlPersist, or the "
        "scripts' one ssh) runs outside the budget in a cpuacct group of its own. The scripts and the floor run "
        "their docker commands on the host through ssh too. Counts: module executions from the callback's "
        "results of on-host tasks (ok, failed, repeated); docker CLI calls from process accounting (acct v3 "
        "records, every `docker`/`docker-compose` process descended from the host's sshd or seen in `tool`; "
        "an invocation is one not started by another docker process); docker exec from the test daemon's "
        "exec_create events (CLI and SDK alike; the containers' own health checks apart); Celery app boots "
        "from the modules' `celery` figures (agent boots + celery CLI runs). The Celery agent runs inside the "
        "app's containers: its CPU (the modules' `celery.cpu_s`) is inside `app` and is reported apart; the "
        "tool's target-side CPU in the targets is `tool` + the agent. The first change to the running app: for "
        "the role, the moment its quiesce (in the new web's call) wrote its first container down, just before "
        "changing it (the old beat's stop in stop mode, the first pool shrink in shrink mode; the results' "
        "`quiesce.containers[].at`), the start of that task shown apart; for the scripts, their mark printed just before their first docker "
        "compose call."
        % (host["name"], host["addr"], host["budget"], host["cgroup_parent"]))


def mitogen_note(results, errors):
    if "mitogen" in errors:
        return "Mitogen (PyPI mitogen, strategy mitogen_linear): did not run: %s" % errors["mitogen"]
    data = results.get("mitogen")
    if not data:
        return ""
    if data["rc"] == 0:
        return ("Mitogen (PyPI mitogen %s, strategy mitogen_linear) runs the role with this ansible-core; "
                "its column above." % data.get("mitogen_version", "?"))
    return ("Mitogen (PyPI mitogen %s, strategy mitogen_linear) ran but the deploy failed (exit %s); the "
            "tool's last lines:\n\n```\n%s```" % (data.get("mitogen_version", "?"), data["rc"], "".join(data["tail"])[-3000:]))


def write_report(doc, cfg, rundir):
    """summary.json, table.md, plot.png of a run (and bench/latest.* unless --no-latest)."""
    results, floor, errors = doc["strategies"], doc["floor"], doc["errors"]
    load_start, load_end = doc["load_avg"]["start"], doc["load_avg"]["end"]
    provenance, hostinfo, stamp = doc["code"], doc["host"], doc["run"]
    (rundir / "summary.json").write_text(json.dumps(
        {"run": stamp, "elapsed_s": doc["elapsed_s"], "code": provenance, "knobs": doc["knobs"], "config": doc["config"],
         "load_avg": doc["load_avg"], "errors": errors, "floor": floor,
         "summaries": {n: results[n]["summary"] for n in results}}, indent=1))
    md = ["# Benchmark run %s" % stamp, "",
          "Demo app v1 -> v2 on this machine (%d cores), %s. Load average (1/5/15 min) at the start %.2f/%.2f/%.2f, "
          "at the end %.2f/%.2f/%.2f; per deploy start: %s. Whole run %.0f s." % (
              os.cpu_count(), knob_text(cfg), *load_start, *load_end,
              ", ".join("%s %.2f" % (n, v) for n, v in doc["load_avg"]["per_strategy"].items()), doc["elapsed_s"]),
          "", design_text(hostinfo),
          "", "Strategies: %s (the role's defaults, verify gate off); %s: the same wiring plus %s (%s); %s: %s with "
          "Mitogen's mitogen_linear strategy." % (
              LABELS["role"], LABELS["shrink"], json.dumps(common.shrink_variables(cfg), sort_keys=True),
              "worker warm-up on: the new workers start with %d pool process(es) and grow to %d after the switch"
              % (cfg.shrink_warmup, cfg.concurrency) if cfg.shrink_warmup > 0 else "worker warm-up off",
              LABELS["mitogen"], LABELS["role"]),
          "", "Role variables beyond the benchmark's stack wiring: %s. The wiring sets bluegreen_pressure_cpu_max and "
          "bluegreen_pressure_memory_max to 100: /proc/pressure is the whole shared machine's, not the small host's "
          "(read, never blocking, as tests/e2e/fleet's inventory sets them)." % (os.environ.get("BENCH_ROLE_EXTRA_VARS") or "none"),
          "", "Code: commit %s%s." % (provenance["commit"], "; uncommitted changes in " + ", ".join(provenance["dirty"])
                                      if provenance["dirty"] else ", clean"), ""]
    if results:
        md += [report.table(results, floor), ""]
        ours = [n for n in ROLE_STRATEGIES if n in results]
        if ours:
            md += ["## Targets", "", "Each of our strategies against the benchmark's targets (README, Benchmark), in this run (reported, not enforced):", "",
                   report.targets_table({n: report.targets(results, floor, n) for n in ours}), ""]
            md += ["## Where each second went", ""]
            for n in ours:
                md += [report.timeline_table(n, results[n]["summary"]), ""]
        report.plot(results, floor, cfg, rundir / "plot.png")
        md += ["![memory and CPU over time](plot.png)", ""]
    note = mitogen_note(results, errors)
    if note:
        md += ["## Mitogen", "", note, ""]
    if errors:
        md += ["Errors: " + "; ".join("%s: %s" % kv for kv in errors.items()), ""]
    (rundir / "table.md").write_text("\n".join(md))
    print("\n".join(md))
    if results and not cfg.no_latest:
        shutil.copy(rundir / "plot.png", BENCH / "latest.png")
        (BENCH / "latest.md").write_text("\n".join(md).replace("](plot.png)", "](latest.png)"))


def render(rundir, no_latest):
    """Re-summarize and re-render a run from its run.json (no measuring)."""
    rundir = Path(rundir)
    doc = json.loads((rundir / "run.json").read_text())
    cfg = argparse.Namespace(**doc["config"])
    cfg.no_latest = no_latest
    doc["host"].setdefault("cgroup_parent", "/%s/app" % doc["host"]["budget"])
    LABELS["shrink"] = common.shrink_label(cfg)
    for data in doc["strategies"].values():
        data["summary"] = summarize(data, cfg)
    if doc.get("floor_raw"):
        doc["floor"] = summarize_floor(doc["floor_raw"], cfg)
    doc["load_avg"]["per_strategy"] = {n: d["summary"]["load_avg_at_start"] for n, d in doc["strategies"].items()}
    write_report(doc, cfg, rundir)
    return 0


def main(argv=None):
    cfg = common.parse_args(argv, __doc__)
    if cfg.render:
        return render(cfg.render, cfg.no_latest)
    LABELS["shrink"] = common.shrink_label(cfg)
    if os.geteuid() != 0:
        sys.exit("the benchmark needs root (cgroups, namespaces, process accounting)")

    def interrupted(signum, _frame):
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupted)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    rundir = Path(cfg.out) / stamp
    rundir.mkdir(parents=True)
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / ("lsb-" + stamp)  # short: ControlPath sockets live here
    workdir.mkdir(parents=True)
    host = TestHost()
    host.check()
    common.allow_host(host.addr)
    budget = Budget("lsbench-" + stamp, cfg.cpus, cfg.mem_cap_mb)
    accounting = Accounting(workdir / "pacct")
    ctx = Context(cfg, host, budget, accounting, rundir, workdir)
    started = time.time()
    load_start = os.getloadavg()
    say("benchmark run %s (load average %.2f %.2f %.2f); results in %s" % ((stamp,) + load_start + (rundir,)))
    say("knobs: " + knob_text(cfg))
    results, floor_data, floor = {}, None, None
    errors = {}
    try:
        budget.create()
        budget.place(host.sshd_pid, "tool")
        budget.place(host.dockerd_pid, "daemon")
        for pid in host.containerd_pids():
            budget.place(pid, "daemon")
        accounting.start()
        say("test host %s (%s) in budget %s: sshd -> tool, dockerd + containerd -> daemon; controller apart"
            % (host.name, host.addr, budget.name))
        if "floor" in cfg.only:
            try:
                floor_data = run_floor(ctx)
                floor = summarize_floor(floor_data, cfg)
            except Exception as exc:  # noqa: BLE001 - reported, the other runs go on
                errors["floor"] = repr(exc)
                say("floor failed: %r" % exc)
        for name in STRATEGIES:
            if name not in cfg.only:
                continue
            if name == "mitogen" and not (mitogen_dir() / "ansible_mitogen").is_dir():
                errors["mitogen"] = "not installed in %s (bench/run.sh installs it)" % mitogen_dir()
                continue
            try:
                data = run_strategy(name, ctx)
                if name == "mitogen":
                    info = list(mitogen_dir().glob("mitogen-*.dist-info"))
                    data["mitogen_version"] = info[0].name[:-len(".dist-info")].split("-")[1] if info else None
                data["summary"] = summarize(data, cfg)
                results[name] = data
                s = data["summary"]
                say("%s: exit %d, switch %s s (%s s from the first change), tool %s s, peak %s MB, %d failed, gap %s s, "
                    "lost %d, twice %d, beat dup %d; controller %.2f / tool %.2f / agent %.2f / daemon %.2f CPU-s; "
                    "%s modules, %d docker CLI, %d exec, %d Celery boots" % (
                        name, data["rc"], fmt(s["t_switch"]), fmt(s["t_switch_from_first_change"]), fmt(s["t_tool"]),
                        fmt(s["mem_peak_mb"], 0), s["http_deploy"]["failed"], fmt(s["longest_task_gap_s"]),
                        s["tasks_lost"], s["tasks_run_twice"], s["beat_duplicates"], s["controller_cpu_s"], s["tool_cpu_s"],
                        s["agent_cpu_s"], s["daemon_cpu_s"], fmt(s["module_executions"]), s["docker_cli"]["invocations"],
                        s["docker_execs"], s["celery_boots"]))
            except Exception as exc:  # noqa: BLE001 - reported, the other runs go on
                errors[name] = repr(exc)
                say("%s failed: %r" % (name, exc))
    finally:
        accounting.stop()
        budget.release()
        budget.remove()
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.time() - started
    load_end = os.getloadavg()
    load_info = {"start": load_start, "end": load_end,
                 "per_strategy": {n: results[n]["summary"]["load_avg_at_start"] for n in results}}
    provenance = code_provenance()
    hostinfo = {"name": host.name, "addr": host.addr, "budget": budget.name, "cgroup_parent": budget.cgroup_parent}
    doc = {"run": stamp, "elapsed_s": elapsed, "code": provenance, "config": vars(cfg), "knobs": common.knobs(cfg),
           "load_avg": load_info, "errors": errors, "floor": floor, "floor_raw": floor_data, "host": hostinfo,
           "strategies": {n: results[n] for n in results}}
    (rundir / "run.json").write_text(json.dumps(doc))
    write_report(doc, cfg, rundir)
    say("done in %.0f s: %s" % (elapsed, rundir))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
