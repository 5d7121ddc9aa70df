# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The tables (figures, per-deploy counts, the role's phase timelines, the targets) and the plot."""

from __future__ import annotations

from .common import LABELS, ROLE_STRATEGIES, STRATEGIES, fmt
from .metrics import cpu_series, pressure_series

OURS = ROLE_STRATEGIES


def _cli(x):
    c = x["docker_cli"]
    return "%d (%d processes: %d docker, %d docker-compose)" % (
        c["invocations"], c["processes"], c["by_name"]["docker"], c["by_name"]["docker-compose"])


def table(results, floor):
    cols = [s for s in STRATEGIES if s in results]
    S = {s: results[s]["summary"] for s in cols}
    rows = []
    fl = floor or {}

    def row(label, fn, floor_value=""):
        rows.append("| %s | %s | %s |" % (label, " | ".join(fn(S[s]) for s in cols), floor_value))

    row("Deploy outcome", lambda x: "ok" if x["rc"] == 0 else "**failed** (exit %s)" % x["rc"])
    row("Peak memory of the app's containers, MB", lambda x: fmt(x["mem_peak_mb"], 0),
        fmt(fl.get("mem_peak_mb"), 0) + " (old release %s + new web %s)" % (
            fmt(fl.get("mem_old_release_mb"), 0), fmt(fl.get("mem_new_web_mb"), 0)) if fl else "")
    row("Peak memory of the whole small host (app + tool + Docker + proxy), MB", lambda x: fmt(x["mem_peak_all_mb"], 0),
        fmt(fl.get("mem_peak_all_mb"), 0) if fl else "")
    row("Peak memory of the tool's target side / of Docker, MB",
        lambda x: "%s / %s" % (fmt(x["mem_tool_peak_mb"], 0), fmt(x["mem_daemon_peak_mb"], 0)))
    row("Mean memory of the app during the deploy, MB", lambda x: fmt(x["mem_mean_mb"], 0))
    row("Memory of the app before the deploy (steady), MB", lambda x: fmt(x["mem_steady_mb"], 0))
    row("Peak Celery worker processes (steady)", lambda x: "%s (%s)" % (fmt(x["workers_peak"]), fmt(x["workers_steady"])))
    row("App CPU during the deploy, CPU-s (mean % of one CPU)",
        lambda x: "%s (%s %%)" % (fmt(x["app_cpu_deploy_s"]), fmt(x["app_cpu_mean_pct"], 0)))
    row("App CPU during the deploy less the Celery agent's, CPU-s", lambda x: fmt(x["app_cpu_less_agent_s"]))
    row("The whole budget's CPU during the deploy, CPU-s", lambda x: fmt(x["budget_cpu_deploy_s"]))
    row("Time throttled by the CPU quota during the deploy, s", lambda x: fmt(x["throttled_s"]))
    row("HTTP requests / failed during the deploy", lambda x: "%d / %d%s" % (
        x["http_deploy"]["requests"], x["http_deploy"]["failed"],
        " (%s)" % ", ".join(x["http_deploy"]["failures"]) if x["http_deploy"]["failures"] else ""))
    row("HTTP p50 / p99 during the deploy, ms", lambda x: "%s / %s" % (fmt(x["http_deploy"]["p50_ms"], 0), fmt(x["http_deploy"]["p99_ms"], 0)))
    row("HTTP p50 / p99 steady state, ms", lambda x: "%s / %s" % (fmt(x["http_steady"]["p50_ms"], 0), fmt(x["http_steady"]["p99_ms"], 0)),
        "%s / %s" % (fmt(fl.get("http_steady", {}).get("p50_ms"), 0), fmt(fl.get("http_steady", {}).get("p99_ms"), 0)) if fl else "")
    row("New web healthy after, s", lambda x: fmt(x["t_new_web_healthy"]), fmt(fl.get("t_new_web_healthy")) + " (from compose issued)" if fl else "")
    row("Traffic on the new color after, s (deploy wall time)", lambda x: fmt(x["t_switch"]))
    row("From the first change to traffic on the new color, s (first change at, s)",
        lambda x: "%s (at %s)" % (fmt(x["t_switch_from_first_change"]), fmt(x["t_first_change"])))
    row("From the start of the task that quiesces to traffic on the new color, s (the role: before its first "
        "change, its module starts and boots the Celery agent)", lambda x: fmt(x.get("t_switch_from_quiesce_start")))
    row("New workers consuming after, s", lambda x: fmt(x["t_consume"]))
    row("Deploy tool running, s", lambda x: fmt(x["t_tool"]))
    row("Longest gap with no task completing, s", lambda x: fmt(x["longest_task_gap_s"]))
    row("Fewest tasks waiting in the queue during the deploy", lambda x: fmt(x["queue_min_depth_deploy"]))
    row("Tasks completed during the deploy (until the new workers consume)", lambda x: fmt(x.get("tasks_done_in_window")))
    row("Tasks enqueued / lost / run twice", lambda x: "%d / %d%s / %d" % (
        x["tasks_enqueued"], x["tasks_lost"],
        " (%s)" % "; ".join("%s: %s" % kv for kv in sorted(x["tasks_lost_whereabouts"].items())[:5]) if x["tasks_lost"] else "",
        x["tasks_run_twice"]))
    row("Beat sends duplicated / missed", lambda x: "%d / %d" % (x["beat_duplicates"], x["beat_missed"]))
    row("**Controller CPU** (outside the budget: ansible-playbook, ssh), CPU-s",
        lambda x: "%s (rusage %s)" % (fmt(x["controller_cpu_s"], 2), fmt(x["controller_rusage_cpu_s"], 2)))
    row("**Target-side tool CPU** (sshd sessions, module Python, docker CLI; in the budget), CPU-s",
        lambda x: fmt(x["tool_cpu_s"], 2))
    row("**Celery agent CPU** (in the app's containers, from the module results), CPU-s (agent boot wall, s)",
        lambda x: "%s (%s)" % (fmt(x["agent_cpu_s"], 2), fmt(x["agent_boot_s"], 1)) if x["module_executions"] is not None else "–")
    row("**Docker daemon CPU** (dockerd, containerd, shims; in the budget), CPU-s", lambda x: fmt(x["daemon_cpu_s"], 2))
    row("Proxy CPU (nginx, docker-proxy; in the budget), CPU-s", lambda x: fmt(x["net_cpu_s"], 2))
    row("New color's boot CPU: web to healthy + workers to ready, CPU-s",
        lambda x: "%s + %s" % (fmt(x["boot"].get("web_to_healthy_cpu_s"), 2), fmt(x["boot"].get("workers_to_ready_cpu_s"), 2)),
        fmt(fl.get("web_to_healthy_cpu_s"), 2) + " (web)" if fl else "")
    row("**Module executions** (failed, repeated)", lambda x: "%d (%d, %d)" % (
        x["module_executions"], x["module_failed"], x["module_retries"]) if x["module_executions"] is not None else "–")
    row("**docker CLI calls** on the target (process accounting)", _cli)
    row("CPU of those docker CLI processes / of all target-side processes (count), CPU-s", lambda x: "%s / %s (%d)" % (
        fmt(x["docker_cli"]["cpu_s"], 2), fmt(x["docker_cli"]["all_cpu_s"], 2), x["docker_cli"]["all_processes"]))
    row("**docker exec** per deploy (the daemon's exec_create events, health checks apart)",
        lambda x: "%d (+%d health checks)" % (x["docker_execs"], x["health_execs"]))
    row("**Celery app boots** (agent boots + celery CLI runs)", lambda x: "%d (%d + %d)" % (
        x["celery_boots"], x["celery"]["agent_boots"], x["celery"]["cli_runs"]))
    row("Host CPU pressure (some, whole machine) steady / deploy, %", lambda x: "%s / %s" % (
        fmt(x["host_cpu_pressure_steady_pct"], 0), fmt(x["host_cpu_pressure_deploy_pct"], 0)))
    row("Load average (1 min) at the deploy start", lambda x: fmt(x["load_avg_at_start"], 2), fmt(fl.get("load_avg_at_start"), 2) if fl else "")
    head = "| | %s | floor |\n|---|%s---|" % (" | ".join(LABELS[s] for s in cols), "---|" * len(cols))
    return head + "\n" + "\n".join(rows)


def timeline_table(name, summary):
    """Where each second of one role deploy went, from the callback's phase markers."""
    rows = summary["timeline"]
    if not rows:
        return ""
    lines = ["%s: the deploy tool ran %s s; phases in order (start from the tool's start; duration until the next "
             "phase starts; *in tasks*: between each task's start and its last result, the rest is the controller "
             "between tasks; *module processes on the host*: the wall time of the module's Python process on the "
             "host, from the process accounting; *in tasks* minus it is the controller and SSH, it minus the "
             "modules' own timings is Python start-up, imports and AnsiballZ on the host):" % (LABELS[name], fmt(summary["t_tool"])), "",
             "| phase | actions | start, s | duration, s | in tasks, s | module executions | docker CLI calls "
             "| module processes on the host, s | modules' own timings, s | what the modules reported |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["phase"], r["what"], fmt(r["start"]), fmt(r["s"]), fmt(r["busy_s"]), r["modules"] or "",
            fmt(r.get("docker_cli")) if r.get("docker_cli") is not None else "", fmt(r.get("host_s")), fmt(r["module_s"]),
            r["said"].replace("|", "/") or ""))
    totals = summary["phase_totals"]
    lines += ["", "Per phase: " + ", ".join("%s %s s" % (k, fmt(v)) for k, v in totals.items()) + "."]
    if rows[-1].get("orphan_cli"):
        lines += ["", "docker CLI calls whose module had exited before them (left running in the background, e.g. "
                      "`docker stop`): %d, counted in no phase above." % rows[-1]["orphan_cli"]]
    if summary["docker_exec_list"]:
        lines += ["", "docker execs (phase, container, command): " + "; ".join("`%s`" % e for e in summary["docker_exec_list"]) + "."]
    if summary.get("mem_peak_breakdown"):
        lines += ["", "App memory at its peak (%s s): %s MB." % (fmt(summary["mem_peak_at"]), ", ".join(
            "%s %s" % kv for kv in summary["mem_peak_breakdown"].items()))]
    return "\n".join(lines)


def targets(results, floor, name):
    """[(target, measured, ratio text, verdict)] for one of our strategies: the targets of the benchmark."""
    r = results[name]["summary"]
    a = results.get("article", {}).get("summary")
    out = []
    failed = r["rc"] != 0

    def add(target, measured, ratio, met):
        verdict = "met" if met else ("missed" if met is not None else "–")
        if failed and met is not None:
            verdict += " (deploy failed)"
        out.append((target, measured, ratio, verdict))

    def div(x, y):
        return x / y if x is not None and y else None

    if failed:
        out.append(("The deploy succeeds", "exit %s: %s" % (r["rc"], "; ".join(r["failed_tasks"])[:300]), "–", "missed"))
    fl_t = (floor or {}).get("t_new_web_healthy")
    sw = r["t_switch_from_first_change"]
    add("Traffic on the new color, from the first change <= floor + 3 s",
        "%s s vs floor %s s" % (fmt(sw), fmt(fl_t)), "floor + %.1f s" % (sw - fl_t) if sw is not None and fl_t is not None else "–",
        (sw - fl_t <= 3) if sw is not None and fl_t is not None else None)
    ratio = div(r["t_tool"], (a or {}).get("t_tool"))
    add("Deploy tool running (whole deploy, gate off) <= 0.7x the article's script",
        "%s s vs %s s" % (fmt(r["t_tool"]), fmt((a or {}).get("t_tool"))), "%.2fx" % ratio if ratio else "–",
        ratio <= 0.7 if ratio else None)
    boot = r["boot"]
    boot_cpu = (boot.get("web_to_healthy_cpu_s") or 0) + (boot.get("workers_to_ready_cpu_s") or 0)
    ratio = div(r["target_tool_cpu_s"], boot_cpu)
    add("Tool's target-side CPU <= 0.5x the new color's boot CPU (web to healthy + workers to ready)",
        "%.2f CPU-s (tool %.2f + Celery agent %.2f) vs boot %.2f CPU-s" % (
            r["target_tool_cpu_s"], r["tool_cpu_s"], r["agent_cpu_s"], boot_cpu),
        "%.2fx" % ratio if ratio else "–", ratio <= 0.5 if ratio else None)
    ratio = div(r["app_cpu_less_agent_s"], (a or {}).get("app_cpu_less_agent_s"))
    add("App CPU during the deploy <= the article's script's",
        "%s CPU-s vs %s CPU-s (less the Celery agent; with it %s)" % (
            fmt(r["app_cpu_less_agent_s"]), fmt((a or {}).get("app_cpu_less_agent_s")), fmt(r["app_cpu_deploy_s"])),
        "%.2fx" % ratio if ratio else "–", ratio <= 1.0 if ratio else None)
    if name != "shrink":
        ratio = div(r["mem_peak_mb"], (floor or {}).get("mem_peak_mb"))
        add("Peak memory in stop mode <= 1.05x the floor (old release + new web)",
            "%s MB vs floor %s MB" % (fmt(r["mem_peak_mb"], 0), fmt((floor or {}).get("mem_peak_mb"), 0)),
            "%.2fx" % ratio if ratio else "–", ratio <= 1.05 if ratio else None)
    allowed = r["old_worker_containers"] + 1
    add("docker exec per deploy <= one per old worker container (quiesce) + one (new workers' readiness)",
        "%d vs %d allowed (%d old worker container(s))" % (r["docker_execs"], allowed, r["old_worker_containers"]),
        "%d/%d" % (r["docker_execs"], allowed), r["docker_execs"] <= allowed)
    if name == "shrink":
        add("Shrink's longest task gap < 2 s", "%s s" % fmt(r["longest_task_gap_s"]), "–",
            r["longest_task_gap_s"] < 2 if r["longest_task_gap_s"] is not None else None)
    add("Failed requests = 0", str(r["http_deploy"]["failed"]), "–", r["http_deploy"]["failed"] == 0)
    add("Tasks lost = 0 (not run within %s after the deploy)" % "the settle bound", str(r["tasks_lost"]), "–", r["tasks_lost"] == 0)
    add("Tasks run twice = 0", str(r["tasks_run_twice"]), "–", r["tasks_run_twice"] == 0)
    add("Duplicate beat sends = 0", str(r["beat_duplicates"]), "–", r["beat_duplicates"] == 0)
    return out


def targets_table(by_strategy):
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
    fig, axes = plt.subplots(2, len(cols), figsize=(max(4.4 * len(cols), 11), 7.8), sharex=True, sharey="row", squeeze=False)
    mem_max = max(max((s["mem_all"] for s in results[n]["samples"]), default=0) for n in cols) / 2**20
    for j, name in enumerate(cols):
        data, summ = results[name], results[name]["summary"]
        t0 = data["t0"]
        samples = [s for s in data["samples"] if s["t"] >= t0 - cfg.steady_s]
        ts = [s["t"] - t0 for s in samples]
        ax_m, ax_c = axes[0][j], axes[1][j]
        ax_m.plot(ts, [s["mem_app"] / 2**20 for s in samples], color="tab:orange", lw=1.4, label="app memory (working set)")
        ax_m.plot(ts, [s["mem_all"] / 2**20 for s in samples], color="tab:brown", lw=0.9, ls="--",
                  label="whole small host (app + tool + Docker + proxy)")
        if floor and floor.get("mem_peak_mb"):
            ax_m.axhline(floor["mem_peak_mb"], color="tab:green", ls=":", lw=1.2, label="floor: old release + new web")
        k = 5

        def smooth(key):
            series = cpu_series(samples, key)
            vals = [v * 100 for _t, v in series]
            return [t - t0 for t, _v in series], [sum(vals[max(0, i - k + 1):i + 1]) / len(vals[max(0, i - k + 1):i + 1])
                                                  for i in range(len(vals))]

        for key, color, label in (("cpu_ns", "black", "whole budget"), ("cpu_app", "tab:blue", "app containers"),
                                  ("cpu_tool", "tab:red", "tool (target side)"), ("cpu_daemon", "tab:purple", "Docker daemon")):
            xs, ys = smooth(key)
            ax_c.plot(xs, ys, color=color, lw=1.0 if key != "cpu_app" else 1.3, label="%s CPU (0.5 s mean)" % label,
                      alpha=0.8 if key == "cpu_ns" else 1.0)
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
        ax_m.set_title("%s\nswitch %s s (%s s from the first change), tool %s s\npeak %s MB, %d failed req., task gap %s s" % (
            LABELS[name], fmt(summ["t_switch"]), fmt(summ["t_switch_from_first_change"]), fmt(summ["t_tool"]),
            fmt(summ["mem_peak_mb"], 0), summ["http_deploy"]["failed"], fmt(summ["longest_task_gap_s"])), fontsize=8.5)
        ax_m.set_ylim(0, mem_max * 1.15)
        ax_c.set_ylim(0, max(cfg.cpus * 100 * 1.6, 100))
        ax_c.set_xlabel("seconds from the deploy start")
        if j == 0:
            ax_m.set_ylabel("memory, MB")
            ax_c.set_ylabel("CPU, % of one CPU (cgroup cpuacct)")
    handles = [matplotlib.lines.Line2D([], [], color=c, lw=1.2, ls="-" if k != "deploy tool done" else "--", label=lab)
               for k, (c, lab) in PHASE_STYLE.items()]
    h1, l1 = axes[0][0].get_legend_handles_labels()
    h2, l2 = axes[1][0].get_legend_handles_labels()
    fig.legend(h1 + h2 + handles, l1 + l2 + [h.get_label() for h in handles], loc="lower center", ncol=5, fontsize=7.5,
               frameon=False)
    fig.suptitle("Deploy v1 -> v2 of the demo app on a test host under %s CPU / %d MB for everything it runs\n"
                 "(web %s ms CPU/request at %s req/s, worker boot %s s + %d MB, concurrency %d, prefetch multiplier %d, "
                 "beat every %s s)" % (
                     fmt(cfg.cpus), cfg.mem_cap_mb, fmt(cfg.web_cpu_ms, 0), fmt(cfg.http_rate, 0), fmt(cfg.worker_boot_cpu_s, 0),
                     cfg.worker_boot_mb, cfg.concurrency, cfg.prefetch, fmt(cfg.beat_period, 0)), fontsize=9.5)
    fig.tight_layout(rect=(0, 0.1, 1, 0.94))
    fig.savefig(path, dpi=105)
    plt.close(fig)
