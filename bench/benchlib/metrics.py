# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The figures of one run: timings, memory, CPU apart per side, task and beat accounting,
the counts (module executions, docker CLI calls, docker execs, Celery app boots) and the
role's phase timeline, keyed on the callback's `phase` field (never on task names)."""

from __future__ import annotations

from .common import mean, pct

RESULT_EVENTS = ("ok", "failed", "retry")  # each one is a module execution when on_host


def http_stats(gets, start, end):
    """Requests scheduled in [start, end): count, failed, p50/p99 latency (ms, from the scheduled time)."""
    window = [g for g in gets if start <= g[0] < end]
    ok = [(g[2] - g[0]) * 1000 for g in window if g[3] == 200]
    failed = [g for g in window if g[3] != 200]
    return {"requests": len(window), "failed": len(failed), "p50_ms": pct(ok, 0.5), "p99_ms": pct(ok, 0.99),
            "max_ms": max(ok) if ok else None, "failures": sorted({str(g[3]) for g in failed})}


def sample_window(samples, start, end):
    return [s for s in samples if start <= s["t"] <= end]


def cpu_series(samples, key="cpu_ns"):
    """[(t, CPUs used)] from consecutive cpuacct readings."""
    series = []
    for a, b in zip(samples, samples[1:]):
        dt = b["t"] - a["t"]
        if dt > 0:
            series.append((b["t"], (b[key] - a[key]) / 1e9 / dt))
    return series


def pressure_series(samples):
    """[(t, % of time some task waited for a CPU, host-wide)] from /proc/pressure/cpu totals."""
    series = []
    for a, b in zip(samples, samples[1:]):
        dt = b["t"] - a["t"]
        if dt > 0 and "psi_cpu_us" in a:
            series.append((b["t"], min(100.0, (b["psi_cpu_us"] - a["psi_cpu_us"]) / 1e6 / dt * 100)))
    return series


def delta(window, key, scale=1e9):
    return (window[-1][key] - window[0][key]) / scale if len(window) > 1 else None


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


# ---------------------------------------------------------------------------
# The callback's timeline
# ---------------------------------------------------------------------------

def short_action(action):
    return (action or "").rsplit(".", 1)[-1]


def tasks_of(timeline):
    """The tasks in order: start, end (last result), phase, action, and their result events."""
    tasks = []
    for event in sorted(timeline, key=lambda e: e["t"]):
        if event["event"] == "start":
            tasks.append({"start": event["t"], "end": event["t"], "phase": event.get("phase"),
                          "action": event.get("action"), "on_host": event.get("on_host"), "results": []})
        elif tasks:
            tasks[-1]["results"].append(event)
            tasks[-1]["end"] = max(tasks[-1]["end"], event["t"])
    return tasks


def module_runs(task):
    return [r for r in task["results"] if r["event"] in RESULT_EVENTS and r.get("on_host")]


def celery_figures(results):
    """Agent boots, CLI runs, the agents' CPU and boot time, from the module results' `celery`."""
    boots, cli, cpu, boot_s, calls = 0, 0, 0.0, 0.0, 0
    for c in celery_of(results):
        if c.get("transport") == "agent":
            boots += 1
            cpu += float(c.get("cpu_s") or 0)
            boot_s += float(c.get("boot_s") or 0)
        elif c.get("transport") == "cli":
            cli += int(c.get("calls") or 0)
        calls += int(c.get("calls") or 0)
    return {"agent_boots": boots, "cli_runs": cli, "agent_cpu_s": cpu, "agent_boot_s": boot_s, "calls": calls}


def celery_of(results):
    """The `celery` figures of each result: its own, and those of the quiesce the new web's call makes."""
    for r in results:
        for c in (r.get("celery"), (r.get("quiesce") or {}).get("celery") if isinstance(r.get("quiesce"), dict) else None):
            if isinstance(c, dict) and c:
                yield c


# Parts of a compose_project_color call whose stages sum up in their own `total`.
NESTED_TOTALS = ("quiesce ", "retire ", "grow ")


def own_time(timings):
    """The seconds a module timed itself: its `total`, else the sum of its stages
    (compose_project_color's `ready` already holds its `workers_ready`, and the quiesce, retire
    and grow it makes count as their `total`)."""
    if "total" in timings:
        return float(timings["total"])
    return sum(float(v) for k, v in timings.items() if isinstance(v, (int, float)) and k != "workers_ready"
               and not (k.startswith(NESTED_TOTALS) and not k.endswith(" total")))


def all_timings(result):
    """A module result's stage timings, those of the quiesce, switch, retire and grow compose_project_color
    makes included."""
    timings = dict(result.get("timings") or {}) if isinstance(result.get("timings"), dict) else {}
    for part in ("quiesce", "switch", "retire", "grow"):
        nested = result.get(part)
        if isinstance(nested, dict) and isinstance(nested.get("timings"), dict):
            timings.update(("%s %s" % (part, k), v) for k, v in nested["timings"].items())
    return timings


def short_command(command):
    """An exec's command for a table: the Celery agent's program (`-c SOURCE`) shortened."""
    command = " ".join(command.split())
    if " -c " in command and len(command) > 80:
        head, _sep, rest = command.partition(" -c ")
        return "%s -c <program of %d chars> %s" % (head, len(rest), rest.rsplit(" ", 1)[-1])
    return command[:80]


def phase_at(tasks, t):
    for task in tasks:
        if task["start"] - 0.05 <= t <= task["end"] + 0.05:
            return task["phase"] or "(no phase)"
    return "(between tasks)"


def _timings_text(results):
    parts = []
    for r in results:
        timings = all_timings(r)
        if timings:
            parts.append(", ".join("%s %s" % (k, v) for k, v in timings.items()))
        for c in celery_of([r]):
            if c.get("transport"):
                parts.append("Celery %s: boot %s s, CPU %s s, %s calls" % (
                    c.get("transport"), c.get("boot_s"), c.get("cpu_s"), c.get("calls")))
        if r["event"] == "retry":
            parts.append("(waiting: repeated)")
        if r["event"] == "failed":
            parts.append("FAILED: %s" % r.get("msg", "")[:120])
    return "; ".join(parts)


def assign_host_processes(tasks, procs):
    """{task index: wall seconds of the module Python processes it ran on the host}, from the
    process accounting (elapsed in 10 ms ticks). Modules run one after the other, each
    execution (a repeat too) one `python` process under the host's sshd: the processes in
    the order they ended go one to one to the executions in the order of their results.
    When the counts differ (Mitogen keeps one interpreter for the whole deploy), nothing."""
    pythons = sorted((p for p in procs if p["comm"] == "python"), key=lambda p: p["btime"] + p["etime_s"])
    runs = sorted(((r["t"], i) for i, task in enumerate(tasks) for r in module_runs(task)))
    if not pythons or len(pythons) != len(runs):
        return {}, {}
    if any("pid" not in p for p in procs):  # a run.json from before the pids were kept
        return {i: p["etime_s"] for (_t, i), p in zip(runs, pythons)} if len(set(i for _t, i in runs)) == len(runs) else {}, {}
    found, owner = {}, {}
    for (_t, i), p in zip(runs, pythons):
        found[i] = found.get(i, 0.0) + p["etime_s"]
        owner[(p.get("pid"), p["btime"])] = i
    return found, owner


def cli_by_task(procs, owner):
    """{task index: docker CLI invocations its module process made} ('orphan': those whose
    parent had exited, e.g. a `docker stop` a module left running in the background)."""
    counts = {}
    for p in procs:
        if p["comm"] not in ("docker", "docker-compose") or p.get("parent_comm") in ("docker", "docker-compose"):
            continue
        key = owner.get((p.get("ppid"), p.get("parent_btime")), "orphan" if p.get("parent_comm") is None else None)
        if key is not None:
            counts[key] = counts.get(key, 0) + 1
    return counts


def phase_timeline(timeline, t0, t_end, procs=()):
    """Where each second of the role's run went: contiguous runs of tasks of the same phase
    (tasks without a phase grouped as "no phase", named by their actions), from the tool's
    start (ansible-playbook's own start-up first) to its exit."""
    tasks = tasks_of(timeline)
    if not tasks:
        return []
    on_host_s, owner = assign_host_processes(tasks, procs)
    cli = cli_by_task(procs, owner)
    index = {id(t): i for i, t in enumerate(tasks)}
    groups = []
    for task in tasks:
        key = task["phase"] or None
        if groups and groups[-1]["phase"] == key:
            groups[-1]["tasks"].append(task)
        else:
            groups.append({"phase": key, "tasks": [task]})
    rows = [{"phase": "(start-up)", "what": "ansible-playbook: parse, inventory, templating before the first task",
             "start": 0.0, "s": tasks[0]["start"] - t0, "busy_s": None, "modules": 0, "module_s": None, "host_s": None,
             "docker_cli": None,
             "said": ""}]
    for i, group in enumerate(groups):
        start = group["tasks"][0]["start"]
        end = groups[i + 1]["tasks"][0]["start"] if i + 1 < len(groups) else group["tasks"][-1]["end"]
        runs = [r for t in group["tasks"] for r in module_runs(t)]
        actions = []
        for t in group["tasks"]:
            name = short_action(t["action"])
            if name not in actions:
                actions.append(name)
        totals = [own_time(timings) for timings in map(all_timings, runs) if timings]
        on_host = [on_host_s.get(index[id(t)]) for t in group["tasks"] if module_runs(t)]
        group_cli = [cli.get(index[id(t)], 0) for t in group["tasks"] if module_runs(t)]
        rows.append({
            "phase": group["phase"] or "(no phase)",
            "what": ", ".join(actions),
            "start": start - t0,
            "s": end - start,
            "busy_s": sum(t["end"] - t["start"] for t in group["tasks"]),
            "modules": len(runs),
            "module_s": sum(totals) if totals else None,
            "host_s": sum(on_host) if on_host and None not in on_host else None,
            "docker_cli": sum(group_cli) if owner and group_cli else None,
            "said": _timings_text(runs),
        })
    last_end = tasks[-1]["end"]
    rows.append({"phase": "(exit)", "what": "after the last task until ansible-playbook exited", "start": last_end - t0,
                 "s": t_end - last_end, "busy_s": None, "modules": 0, "module_s": None, "host_s": None,
                 "docker_cli": None, "said": ""})
    if cli.get("orphan"):
        rows[-1]["orphan_cli"] = cli["orphan"]
    return rows


def phase_totals(rows):
    totals = {}
    for row in rows:
        totals[row["phase"]] = totals.get(row["phase"], 0.0) + row["s"]
    return totals


def first_change(data):
    """When the strategy first touched the running app: for the role, the time celery_quiesce wrote
    its first container down, just before changing it (its results' `containers[].at`), or, without
    it, the start of the first task of phase `quiesce`; for the scripts, their `start` mark, printed
    just before their first docker compose call. None when the deploy never got there."""
    if data["timeline"]:
        written = [e["first_change_at"] for e in data["timeline"] if e.get("first_change_at")]
        if written:
            return min(written)
        return quiesce_start(data)
    return data["marks"].get("start")


def quiesce_start(data):
    """The start of the role's first task that quiesces: of phase `quiesce`, or the new web's call
    (phase `web`), which quiesces the old color first (the callback's phase markers)."""
    for event in sorted(data["timeline"], key=lambda e: e["t"]):
        if event["event"] == "start" and event.get("phase") in ("quiesce", "web"):
            return event["t"]
    return None


# ---------------------------------------------------------------------------
# One strategy
# ---------------------------------------------------------------------------

def summarize(data, cfg):
    """The figures of one strategy run."""
    samples, gets = data["samples"], data["load"]["gets"]
    t0, t_end = data["t0"], data["t_end"]
    t_consume = data["t_consume"]
    t_window_end = max(t_end, t_consume or t_end)
    steady_start = t0 - cfg.steady_s
    new = {c["service"]: c for c in data["containers"] if c["color"] == "green"}
    old = {c["service"]: c for c in data["containers"] if c["color"] == "blue"}
    old_workers = [c for c in data["containers"] if c["color"] == "blue" and c["service"] == "worker"]
    steady = sample_window(samples, steady_start + 1, t0)
    deploy = sample_window(samples, t0, t_window_end)
    mem = [s["mem_app"] for s in deploy]
    peak = max(deploy, key=lambda s: s["mem_app"]) if deploy else None
    names = {c["id"][:12]: "%s %s" % (c["color"], c["service"]) for c in data["containers"]}
    peak_breakdown = {names.get(cid, cid): round(v[1] / 2**20) for cid, v in peak["c"].items() if v[1]} if peak else {}
    mem_all = [s["mem_all"] for s in deploy]
    app_cpu_series = [v for t, v in cpu_series(samples, "cpu_app") if t0 <= t <= t_window_end]
    first_new = [g for g in gets if g[3] == 200 and g[4] == "v2"]
    t_switch = first_new[0][1] if first_new else None
    # Tasks: completions in the measured window (the queue holds work all along).
    done = sorted(d["t"] for d in data["records"]["done"] if d["t"] >= steady_start)
    gaps = [(b - a, a) for a, b in zip(done, done[1:])]
    longest = max(gaps) if gaps else (None, None)
    # Queue depth (queued, not yet started) over the deploy window: the task gap means
    # something only while work was waiting.
    events = [(data["t_backlog"], cfg.backlog)] + [(p[1], len(p[3])) for p in data["load"]["posts"] if p[2] == 200]
    events += [(d.get("started", d["t"]), -1) for d in data["records"]["done"]]
    depth, min_depth = 0, None
    for t, step in sorted(events):
        depth += step
        if t0 <= t <= t_window_end:
            min_depth = max(0, depth if min_depth is None else min(min_depth, depth))
    enqueued = set(data["records"]["enqueued"])
    runs = data["records"]["runs"]
    lost = sorted(u for u in enqueued if runs.get(u, 0) == 0)
    twice = sorted(u for u, n in runs.items() if n > 1)
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
    # Boot cost of the new color: its web until healthy, each new worker until ready.
    boot = {}
    if "web" in new and data["healthy_at"]:
        boot["web_to_healthy_cpu_s"] = container_cpu_at(samples, new["web"]["id"], data["healthy_at"])
    by_host = {c["hostname"]: c for c in data["containers"] if c["color"] == "green" and c["service"] == "worker"}
    ready_at = {}
    for r in data["records"]["worker_ready"]:
        if r.get("color") == "green" and r.get("host") in by_host:
            ready_at[r["host"]] = min(ready_at.get(r["host"], r["t"]), r["t"])
    if ready_at:
        costs = [container_cpu_at(samples, by_host[h]["id"], at) for h, at in ready_at.items()]
        boot["workers_to_ready_cpu_s"] = sum(c for c in costs if c is not None)
    t_first = first_change(data)
    t_quiesce = quiesce_start(data) if data["timeline"] else None
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

    # CPU apart per side, over the tool's run (until its ControlPersist master ended).
    before, after = data["cpu_before"], data["cpu_after"]
    side = {k: after[k] - before[k] for k in before}
    results = [r for r in data["timeline"] if r["event"] in RESULT_EVENTS and r.get("on_host")]
    celery = celery_figures(results)
    timeline_rows = phase_timeline(data["timeline"], t0, t_end, data["counts"].get("processes", [])) if data["timeline"] else []
    tasks = tasks_of(data["timeline"]) if data["timeline"] else []
    counts = data["counts"]
    tool_execs = [e for e in counts["execs"] if e["command"] not in {c["healthcheck"] for c in data["containers"] if c["healthcheck"]}]
    app_cpu = delta(deploy, "cpu_app")
    summary = {
        "rc": data["rc"],
        "mem_peak_mb": max(mem) / 2**20 if mem else None,
        "mem_peak_all_mb": max(mem_all) / 2**20 if mem_all else None,
        "mem_peak_at": (peak["t"] - t0) if peak else None,
        "mem_peak_breakdown": dict(sorted(peak_breakdown.items())),
        "mem_mean_mb": sum(mem) / len(mem) / 2**20 if mem else None,
        "mem_steady_mb": sum(s["mem_app"] for s in steady) / len(steady) / 2**20 if steady else None,
        "mem_tool_peak_mb": max((s["mem_tool"] for s in deploy), default=0) / 2**20 if deploy else None,
        "mem_daemon_peak_mb": max((s["mem_daemon"] for s in deploy), default=0) / 2**20 if deploy else None,
        "workers_peak": max((s["workers"] for s in deploy), default=None),
        "workers_steady": max((s["workers"] for s in steady), default=None),
        "app_cpu_deploy_s": app_cpu,
        "app_cpu_less_agent_s": app_cpu - celery["agent_cpu_s"] if app_cpu is not None else None,
        "app_cpu_mean_pct": (sum(app_cpu_series) / len(app_cpu_series) * 100) if app_cpu_series else None,
        "budget_cpu_deploy_s": delta(deploy, "cpu_ns"),
        "app_cpu_steady_pct": (delta(steady, "cpu_app") / (steady[-1]["t"] - steady[0]["t"]) * 100) if len(steady) > 1 else None,
        "throttled_s": delta(deploy, "throttled_ns"),
        "controller_cpu_s": side["controller"],
        "controller_rusage_cpu_s": data["rusage_cpu_s"],
        "tool_cpu_s": side["tool"],
        "daemon_cpu_s": side["daemon"],
        "net_cpu_s": side["net"],
        "agent_cpu_s": celery["agent_cpu_s"],
        "agent_boot_s": celery["agent_boot_s"],
        "target_tool_cpu_s": side["tool"] + celery["agent_cpu_s"],
        "module_executions": len(results) if data["timeline"] else None,
        "module_failed": sum(1 for r in results if r["event"] == "failed"),
        "module_retries": sum(1 for r in results if r["event"] == "retry"),
        "docker_cli": counts["cli"],
        "docker_execs": len(tool_execs),
        "docker_exec_list": ["%s in %s: %s" % (phase_at(tasks, e["t"]) if tasks else "-", e["container"], short_command(e["command"]))
                             for e in tool_execs],
        "health_execs": len(counts["execs"]) - len(tool_execs),
        "old_worker_containers": len(old_workers),
        "celery_boots": celery["agent_boots"] + celery["cli_runs"],
        "celery": celery,
        "http_steady": http_stats(gets, steady_start + 1, t0),
        "http_deploy": http_stats(gets, t0, t_window_end),
        "enqueue_failed": sum(1 for p in data["load"]["posts"] if p[2] != 200),
        "t_new_web_healthy": rel(data["healthy_at"]),
        "t_switch": rel(t_switch),
        "t_first_change": rel(t_first),
        "t_switch_from_first_change": (t_switch - t_first) if t_switch and t_first else None,
        "t_switch_from_quiesce_start": (t_switch - t_quiesce) if t_switch and t_quiesce else None,
        "t_consume": rel(t_consume),
        "t_tool": t_end - t0,
        "deploy_window_s": t_window_end - t0,
        "longest_task_gap_s": longest[0],
        "longest_task_gap_at": rel(longest[1]) if longest[1] else None,
        "queue_min_depth_deploy": min_depth,
        "tasks_enqueued": len(enqueued),
        "tasks_done_in_window": sum(1 for d in data["records"]["done"] if t0 <= d["t"] <= t_window_end),
        "tasks_completed": sum(1 for u in enqueued if runs.get(u, 0) > 0),
        "tasks_lost": len(lost),
        "tasks_lost_whereabouts": data["records"].get("whereabouts", {}),
        "tasks_run_twice": len(twice),
        "settled": data["settled"],
        "beat_sends": len(sends),
        "beat_duplicates": dup,
        "beat_missed": missed,
        "beat_longest_gap_s": beat_gap,
        "beat_colors": sorted({c for _t, c in sends}),
        "boot": boot,
        "oom_kills": data["oom_kills"],
        "restarts": {c["project"] + "/" + c["service"]: c["restarts"] for c in data["containers"] if c["restarts"]},
        "load_avg_at_start": data["load_avg_at_start"][0],
        "host_cpu_pressure_steady_pct": mean([v for t, v in pressure_series(samples) if steady_start <= t <= t0]),
        "host_cpu_pressure_deploy_pct": mean([v for t, v in pressure_series(samples) if t0 <= t <= t_window_end]),
        "queue_left": data["records"]["queue_left"],
        "phases": {k: rel(v) for k, v in phases.items()},
        "marks": {k: rel(v) for k, v in data["marks"].items()},
        "timeline": timeline_rows,
        "phase_totals": phase_totals(timeline_rows),
        "failed_tasks": ["%s (phase %s): %s" % (e.get("action"), e.get("phase"), e.get("msg", ""))
                         for e in data["timeline"] if e["event"] == "failed"],
    }
    return summary


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
        "mem_old_release_mb": sum(s["mem_app"] for s in before) / len(before) / 2**20 if before else None,
        "mem_new_web_mb": web_mem,
        "mem_peak_mb": max(s["mem_app"] for s in during) / 2**20 if during else None,
        "mem_peak_all_mb": max(s["mem_all"] for s in during) / 2**20 if during else None,
        "web_to_healthy_cpu_s": container_cpu_at(samples, new_web[0]["id"], data["healthy_at"]) if new_web and data["healthy_at"] else None,
        "http_steady": http_stats(data["load"]["gets"], t0 - min(cfg.steady_s, 8) + 1, t0),
        "load_avg_at_start": data["load_avg_at_start"][0],
        "ssh_to_compose_s": t0 - data["t_ssh"],
    }
