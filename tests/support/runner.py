# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Ansible as a user runs it, from the tests: a module on its own, ad hoc, a playbook, on a terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
import uuid
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]


COLLECTIONS = ROOT / ".build" / "collections"


PYTHON = sys.executable


def ansible_env(extra=None):
    """The environment of every ansible command of the tests: this checkout's collection, this interpreter."""
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
            capture_output=True, text=True, env=ansible_env(env), timeout=timeout, check=False,
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
    proc = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(env), timeout=timeout, check=False)
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
                          env=ansible_env(env), timeout=timeout, check=False, stdin=subprocess.DEVNULL)


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


def timeline_env(path):
    """The environment that has the benchmark's callback write each task's start and end to `path` (JSON lines)."""
    return {"ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "bench" / "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "bench_timeline", "BENCH_TIMELINE": str(path)}


def module_tasks(path):
    """The names of a timeline's tasks that ran a module on the host (a task repeated by until counts once)."""
    return sorted({e["task"] for e in map(json.loads, Path(path).read_text().splitlines())
                   if e["event"] in ("ok", "failed", "retry") and e.get("on_host")})


def run_on_pty(argv, script, timeout=600):
    """Run argv on a terminal; `script` is a list of (text to wait for, bytes to type)."""
    pid, leader = pty.fork()
    if pid == 0:
        os.execvpe(argv[0], argv, ansible_env())
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
