# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One measured deploy v1 (blue) -> v2 (green) on a fresh stack, and the floor.

Every strategy runs its deploy on the target: the scripts through one `ssh` to the test
host, the role through ansible-playbook on the controller talking SSH (pipelining, the
ControlPersist default) to it; the floor's `docker compose up` through ssh as well. The
controller side of each (ansible-playbook, its ssh clients and ControlPersist master; the
scripts' ssh client) runs in the controller's cpuacct group, outside the budget.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import threading
import time
from pathlib import Path

from .common import BENCH, LABELS, ROLE_STRATEGIES, ROOT, http_post_json, say, shrink_variables
from .measure import HealthProbe, start_measuring, stop_measuring
from .stack import Stack
from .target import ExecWatcher, docker_cli_counts, target_processes


def run_tool(argv, env, log_path, timeout, budget):
    """Run a deploy tool in the controller's cgroup; return (rc, start, end, rusage CPU s, lines).

    os.wait4 gives the rusage of the child and of every descendant it waited for; the
    controller cgroup also holds what it did not wait for (a ControlPersist master)."""
    procs_file = budget.controller_procs_file()

    def into_controller():
        with open(procs_file, "w", encoding="ascii") as handle:
            handle.write(str(os.getpid()))

    start = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,  # pylint: disable=consider-using-with
                                stdin=subprocess.DEVNULL, preexec_fn=into_controller)  # noqa: PLW1509
        lines = []

        def pump():
            for line in proc.stdout:
                lines.append((time.time(), line))
                log.write(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        killer = threading.Timer(timeout, proc.kill)
        killer.daemon = True
        killer.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            # Interrupted (the benchmark was told to stop): the tool goes too, nothing left running.
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        reader.join(10)
    end = time.time()
    return proc.returncode, start, end, usage.ru_utime + usage.ru_stime, lines


def script_command(name, stack):
    """The remote command of a scripted strategy: its environment, then bash and the script."""
    env = dict(stack.app_env)
    env.update(
        DOCKER_HOST=stack.host.docker_host,
        PROJECT_DIR=str(stack.dir), COMPOSE_FILES=" ".join(stack.files), APP=stack.app,
        OLD_COLOR="blue", OLD_RELEASE="v1", OLD_PORT=str(stack.ports["blue"]),
        NEW_COLOR="green", NEW_RELEASE="v2", NEW_PORT=str(stack.ports["green"]),
        NGINX_PREFIX=str(stack.nginx.prefix), UPSTREAM_NAME=stack.nginx.upstream_name,
    )
    argv = ["env"] + ["%s=%s" % kv for kv in sorted(env.items())] + ["bash", str(BENCH / "strategies" / ("%s.sh" % name))]
    return " ".join(shlex.quote(a) for a in argv)


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
        "bluegreen_docker_host": stack.host.docker_host,
        # /proc/pressure is the whole shared machine's (every test host, every other engineer's
        # job), not the small host's: read, never blocking (as tests/e2e/fleet's inventory sets it).
        "bluegreen_pressure_cpu_max": 100,
        "bluegreen_pressure_memory_max": 100,
    }


def mitogen_dir():
    return Path(os.environ.get("BENCH_MITOGEN_DIR", str(ROOT / ".build" / "bench-mitogen")))


def deploy_command(name, stack, rundir, workdir):
    """(argv, env, timeline path or None, ControlPath directory or None) of one strategy."""
    host = stack.host
    if name not in ROLE_STRATEGIES:
        return host.ssh_argv(script_command(name, stack)), dict(os.environ), None, None
    varfile = Path(rundir) / ("%s-vars.json" % stack.app)
    variables = role_variables(stack, "v2")
    if name == "shrink":
        variables.update(shrink_variables(stack.cfg))
    # For debugging the benchmark only (the reported runs use the role's defaults): extra role variables.
    variables.update(json.loads(os.environ.get("BENCH_ROLE_EXTRA_VARS", "{}")))
    varfile.write_text(json.dumps(variables))
    inventory = Path(rundir) / "fleet-inventory.yml"
    inventory.write_text(
        "# The test host of tests/e2e/fleet/fleet.sh, as its inventory reaches it (SSH, pipelining).\n"
        "all:\n  hosts:\n    %s:\n      ansible_host: %s\n      ansible_user: root\n"
        "      ansible_ssh_private_key_file: %s\n      ansible_ssh_common_args: %s\n"
        "      ansible_ssh_pipelining: true\n      ansible_python_interpreter: %s\n"
        % (host.name, host.addr, host.key, json.dumps(host.ssh_common_args), host.python))
    timeline = Path(rundir) / ("%s-timeline.jsonl" % stack.app)
    control_dir = Path(workdir) / ("cp-%s" % stack.app[-6:])
    control_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(ANSIBLE_CALLBACK_PLUGINS=str(BENCH / "callback_plugins"), ANSIBLE_CALLBACKS_ENABLED="bench_timeline",
               BENCH_TIMELINE=str(timeline), ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="False",
               ANSIBLE_SSH_CONTROL_PATH_DIR=str(control_dir), ANSIBLE_DEPRECATION_WARNINGS="False")
    env.pop("ANSIBLE_PYTHON_INTERPRETER", None)  # the inventory names the test host's interpreter
    if name == "mitogen":
        env.update(ANSIBLE_STRATEGY_PLUGINS=str(mitogen_dir() / "ansible_mitogen" / "plugins" / "strategy"),
                   ANSIBLE_STRATEGY="mitogen_linear")
    argv = ["ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / "deploy.yml"), "-e", "@%s" % varfile]
    return argv, env, timeline, control_dir


def close_control_masters(control_dir):
    """End the ControlPersist masters a deploy left (their sshd session on the host ends too)."""
    if not control_dir or not Path(control_dir).is_dir():
        return
    for sock in Path(control_dir).iterdir():
        subprocess.run(["ssh", "-o", "ControlPath=%s" % sock, "-O", "exit", "bench-control-master"],
                       capture_output=True, check=False, timeout=10)
    deadline = time.time() + 5
    while time.time() < deadline and any(Path(control_dir).iterdir()):
        time.sleep(0.1)


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
    broker = stack.redis(0)
    enqueued = sorted(records.smembers("demo:enqueued"))
    runs = {k: int(v) for k, v in records.hgetall("demo:runs").items()}
    not_run = [u for u in enqueued if runs.get(u, 0) == 0]
    return {
        "enqueued": enqueued,
        "runs": runs,
        "done": [json.loads(x) for x in records.lrange("demo:done", 0, -1)],
        "beat_sends": [json.loads(x) for x in records.lrange("demo:beat_sends", 0, -1)],
        "worker_ready": [json.loads(x) for x in records.lrange("demo:worker_ready", 0, -1)],
        "queue_left": broker.llen("celery"),
        "unacked_left": broker.hlen("unacked"),
        "whereabouts": stack.whereabouts(not_run) if not_run else {},
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


def target_counts(ctx, t_from, t_to, seen, execs):
    """docker CLI processes on the target (process accounting) and the daemon's execs in [t_from, t_to]."""
    procs = target_processes(ctx.accounting.records(), ctx.host.sshd_pid, t_from, t_to, seen)
    return {"cli": docker_cli_counts(procs), "execs": ExecWatcher.window(execs, t_from, t_to),
            "processes": [{k: p[k] for k in ("pid", "ppid", "comm", "parent_comm", "parent_btime", "btime", "etime_s", "cpu_s")}
                          for p in procs]}


def run_strategy(name, ctx):
    """One strategy on a fresh stack: the data summarize() reads."""
    cfg = ctx.cfg
    stack = Stack(name, cfg, ctx.workdir, ctx.host, ctx.budget)
    say("%s: fresh stack %s on %s (%s)" % (LABELS[name], stack.app, ctx.host.name, ctx.host.addr))
    m, watcher, control_dir = None, None, None
    try:
        stack.create()
        if name in ROLE_STRATEGIES:
            stack.write_state("blue", "v1")
        m = start_measuring(stack, ctx.rundir, cfg, feed=True)
        records = stack.redis()
        t_backlog = time.time()
        http_post_json(stack.url(stack.ports["blue"], "/enqueue"), {"n": cfg.backlog, "seconds": cfg.task_seconds})
        say("%s: backlog of %d tasks queued, steady state for %.0f s" % (name, cfg.backlog, cfg.steady_s))
        time.sleep(cfg.steady_s)
        load_at_start = os.getloadavg()
        argv, env, timeline, control_dir = deploy_command(name, stack, ctx.rundir, ctx.workdir)
        probe = HealthProbe(stack.url(stack.ports["green"], "/health/"), "v2")
        probe.start()
        watcher = ExecWatcher(ctx.host)
        time.sleep(0.5)
        before = {"controller": ctx.budget.controller_cpu_s(), "tool": ctx.budget.cpu_s("tool"),
                  "daemon": ctx.budget.cpu_s("daemon"), "net": ctx.budget.cpu_s("net"), "app": ctx.budget.cpu_s("app")}
        say("%s: deploying v1 -> v2 (load average %.2f)" % (name, load_at_start[0]))
        rc, t0, t_end, rusage_cpu, lines = run_tool(argv, env, Path(ctx.rundir) / ("%s.log" % name), cfg.deploy_timeout,
                                                    ctx.budget)
        close_control_masters(control_dir)
        time.sleep(0.3)
        after = {"controller": ctx.budget.controller_cpu_s(), "tool": ctx.budget.cpu_s("tool"),
                 "daemon": ctx.budget.cpu_s("daemon"), "net": ctx.budget.cpu_s("net"), "app": ctx.budget.cpu_s("app")}
        t_closed = time.time()
        execs = watcher.stop()
        say("%s: deploy tool exited %d after %.1f s (controller CPU %.2f s, target-side tool CPU %.2f s)" % (
            name, rc, t_end - t0, after["controller"] - before["controller"], after["tool"] - before["tool"]))
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
        sampled, load = stop_measuring(m)
        m = None
        counts = target_counts(ctx, t0, t_closed, sampled.get("seen_tool"), execs)
        data = {
            "strategy": name, "app": stack.app, "rc": rc, "t_backlog": t_backlog, "t0": t0, "t_end": t_end,
            "t_closed": t_closed, "t_consume": t_consume, "t_settled": t_settled, "settled": settled,
            "healthy_at": probe.healthy_at, "rusage_cpu_s": rusage_cpu, "cpu_before": before, "cpu_after": after,
            "load_avg_at_start": load_at_start, "load_avg_at_end": os.getloadavg(),
            "marks": parse_marks(lines), "timeline": read_timeline(timeline),
            "containers": stack.containers(), "oom_kills": ctx.budget.oom_kills(),
            "records": read_records(stack), "samples": sampled.get("samples", []), "load": load,
            "moved_proxies": sampled.get("moved_proxies"), "counts": counts,
            "tail": [line for _t, line in lines[-25:]] if rc else [],
        }
        return data
    finally:
        close_control_masters(control_dir)
        if watcher is not None and watcher.proc.poll() is None:
            watcher.stop()
        if m is not None:
            stop_measuring(m)
        say("%s: tearing down %s" % (name, stack.app))
        stack.teardown()


def run_floor(ctx):
    """The floor: on the same budget, with v1 serving the same HTTP load (no task backlog),
    start the new web alone on the target (one ssh, as the scripts run) and time its first
    healthy answer from the moment compose is issued; memory of both together."""
    cfg = ctx.cfg
    stack = Stack("floor", cfg, ctx.workdir, ctx.host, ctx.budget)
    say("floor: fresh stack %s" % stack.app)
    m = None
    try:
        stack.create()
        m = start_measuring(stack, ctx.rundir, cfg, feed=False)
        time.sleep(min(cfg.steady_s, 8))
        probe = HealthProbe(stack.url(stack.ports["green"], "/health/"), "v2")
        probe.start()
        remote = 'echo "MARK start $(date +%%s.%%N)"; %s' % stack.remote_color_command("green", "v2", "up", "-d", "web")
        rc, t_ssh, t_end, _cpu, lines = run_tool(ctx.host.ssh_argv(remote), dict(os.environ),
                                                 Path(ctx.rundir) / "floor.log", 120, ctx.budget)
        t0 = parse_marks(lines).get("start", t_ssh)
        probe.join(120)
        time.sleep(3.0)
        t_settled = time.time()
        sampled, load = stop_measuring(m)
        m = None
        data = {"strategy": "floor", "app": stack.app, "rc": rc, "t0": t0, "t_ssh": t_ssh, "t_end": t_end,
                "healthy_at": probe.healthy_at, "t_settled": t_settled,
                "containers": stack.containers(), "samples": sampled.get("samples", []), "load": load,
                "load_avg_at_start": os.getloadavg()}
        say("floor: new web healthy %s s after compose was issued (exit %d)" % (
            "%.1f" % (probe.healthy_at - t0) if probe.healthy_at else "never", rc))
        return data
    finally:
        if m is not None:
            stop_measuring(m)
        say("floor: tearing down %s" % stack.app)
        stack.teardown()
