# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The CI part of the reliability suite: faults injected into real deploys.

One v1 release is deployed once; then each fault breaks a v2 deploy in a
different step and the test asserts what a user would notice: the proxy kept
answering from the old release, the old workers and beat run again with their
original container ids, the failed color is stopped, the state file and the
proxy's upstream file are byte for byte as before, the lock is free and the old
workers still consume. The last deploy (with a task longer than the drain
timeout running at quiesce) must then succeed with no manual step.

Faults 7 (the Docker daemon stopped mid-deploy) and 10 (a host lost
mid-rollout) need test hosts of their own: test_fleet_faults.py. The heavy
parts (20-deploy soak, Ctrl-C) run with `bash tests/e2e/reliability/soak.sh`.

Traffic moves to the new web before the new workers start, so a fault of the
workers phase shows the new color answering for a moment; the rescue puts
traffic back, and the old color answers at the end.
"""

from __future__ import annotations

import json
import subprocess
import time

from tests.support.docker_cli import container_state, project_containers
from tests.support.runner import ROOT, ansible_env, deploy, localhost_inventory
from tests.support.stack import TrafficProbe, role_vars

# Short deadlines: every fault must fail fast, and the rescue still has time to
# bring the old workers back.
FAST = {
    # A deadline costs only when the check fails, and no fault here fails it: generous, for loaded machines.
    "bluegreen_health_deadline": 60,
    "bluegreen_health_timeout": 5,
    "bluegreen_health_successes": 2,
    "bluegreen_drain_timeout": 10,
    "bluegreen_stop_timeout": 30,
    "bluegreen_worker_ready_timeout": 40,
    "bluegreen_start_wait_timeout": 40,
    "bluegreen_pressure_wait": 5,
    # Other suites share this machine: only the disk fault measures pressure here.
    "bluegreen_pressure_cpu_max": 100,
    "bluegreen_pressure_memory_max": 100,
}

# Runs, but no Celery worker ever answers in it.
NEVER_READY_WORKER = """\
services:
  worker:
    command: [sleep, "3600"]
    healthcheck:
      disable: true
"""


def faults(nginx, override):
    """(name, role variable overrides, step named in the failure, extra text expected)."""
    return [
        ("12 disk under the Docker root below the preflight threshold",
         {"bluegreen_pressure_disk_free_min_mb": 100000000, "bluegreen_pressure_wait": 1},
         "prepare", "disk"),
        ("2 new worker crashes at start",
         {"bluegreen_compose_variables_extra": {"DEMO_WORKER_CRASH_AT_START": "1"}},
         "workers", "DEMO_WORKER_CRASH_AT_START=1, exiting"),
        ("3 new worker never ready",
         {"bluegreen_compose_files": ["compose.yml", str(override)]},
         "workers", "answer no Celery ping"),
        ("4 nginx config invalid after render",
         {"bluegreen_nginx_upstream_host": "bad host"},
         "switch", "nginx rejected the upstream"),
        ("5 nginx reload fails",
         {"bluegreen_nginx_reload_command": ["false"]},
         "switch", "could not be reloaded"),
        ("6 reload silently ignored: the proxy still answers the old color",
         {"bluegreen_nginx_reload_command": ["true"]},
         "switch", "does not answer as green v2"),
    ]


class Snapshot:
    """What must be byte for byte (or id for id) the same after a rescued deploy."""

    def __init__(self, stack, nginx, state_dir):
        self.stack = stack
        self.nginx = nginx
        self.state_file = state_dir / ("%s.json" % stack.app)
        self.lock_file = state_dir / ("%s.lock" % stack.app)
        self.old = {svc: project_containers(stack.project("blue"), svc) for svc in ("web", "worker", "beat")}
        self.state = self.state_file.read_bytes()
        self.upstream = nginx.upstream_path.read_bytes()

    def assert_rescued(self, name, result, step, text, probe):
        out = result.stdout
        assert result.returncode != 0, "%s: the deploy did not fail\n%s" % (name, out[-3000:])
        assert "failed at step '%s'" % step in out, "%s: wrong or no step named\n%s" % (name, out[-5000:])
        assert text.lower() in out.lower(), "%s: %r not in the output\n%s" % (name, text, out[-5000:])
        assert probe.failures == [], "%s: requests failed through the proxy: %s" % (name, probe.failures[:5])
        # Until the switch, and again once the rescue put traffic back, only the old color answers.
        allowed = {("blue", "v1"), ("green", "v2")} if step == "workers" else {("blue", "v1")}
        assert {a[1:] for a in probe.answers} <= allowed, "%s: %s" % (name, set(probe.answers))
        assert probe.answers[-1][1:] == ("blue", "v1"), "%s: traffic did not end on the old color" % name
        for svc, ids in self.old.items():
            assert project_containers(self.stack.project("blue"), svc) == ids, "%s: old %s recreated" % (name, svc)
            assert [container_state(cid)[0] for cid in ids] == ["running"], "%s: old %s not running" % (name, svc)
        new = project_containers(self.stack.project("green"))
        running = {svc: [cid for cid in ids if container_state(cid)[0] in ("running", "restarting", "paused")]
                   for svc, ids in new.items()}
        assert not any(running.values()), "%s: the failed color still runs: %s" % (name, running)
        assert self.state_file.read_bytes() == self.state, "%s: the state file changed" % name
        assert self.nginx.upstream_path.read_bytes() == self.upstream, "%s: the upstream file changed" % name
        assert not self.lock_file.exists(), "%s: the deploy lock was not released" % name
        uids = self.stack.enqueue("blue", n=2, seconds=0.1)
        self.stack.assert_each_ran_once(uids, timeout=30, what="%s: old workers idle" % name)


def _vars(stack, nginx, state_dir, release, overrides):
    overrides = dict(FAST, **overrides)
    extra = overrides.pop("bluegreen_compose_variables_extra", {})
    variables = role_vars(stack, nginx, state_dir, release, **overrides)
    variables["bluegreen_compose_variables"] = dict(variables.get("bluegreen_compose_variables", {}), **extra)
    return variables


def _deploy_queueing_at(variables, banner, stack, seconds):
    """Run a deploy; when its output shows `banner`, queue one task of `seconds` on blue."""
    argv = ["ansible-playbook", "-i", str(localhost_inventory()), str(ROOT / "playbooks" / "deploy.yml"),
            "-e", json.dumps(variables)]
    lines, uids = [], []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=ansible_env({"PYTHONUNBUFFERED": "1"}),
                          stdin=subprocess.DEVNULL) as proc:
        for line in proc.stdout:
            lines.append(line)
            if not uids and banner in line:
                uids = stack.enqueue("blue", n=1, seconds=seconds)
        proc.wait(timeout=600)
    return subprocess.CompletedProcess(argv, proc.returncode, "".join(lines)), uids


def beat_overlaps(stack, period=1.0):
    """Sends of two colors closer together than half a beat period: two live schedulers."""
    sends = sorted((json.loads(s) for s in stack.records.lrange("demo:beat_sends", 0, -1)), key=lambda s: s["t"])
    return sum(1 for a, b in zip(sends, sends[1:]) if a["color"] != b["color"] and b["t"] - a["t"] < period / 2)


def test_faults_leave_the_old_release_serving_and_the_next_deploy_succeeds(demo_stack, nginx, tmp_path):
    state_dir = tmp_path / "state"
    override = tmp_path / "never-ready.yml"
    override.write_text(NEVER_READY_WORKER)
    first = deploy(_vars(demo_stack, nginx, state_dir, "v1", {}))
    assert first.returncode == 0, first.stdout[-4000:]
    snapshot = Snapshot(demo_stack, nginx, state_dir)
    report = []

    for name, overrides, step, text in faults(nginx, override):
        started = time.monotonic()
        with TrafficProbe(nginx.url) as probe:
            result = deploy(_vars(demo_stack, nginx, state_dir, "v2", overrides))
        snapshot.assert_rescued(name, result, step, text, probe)
        report.append("%s: failed at '%s', rescued (%.0fs)" % (name, step, time.monotonic() - started))
        print(report[-1], flush=True)

    # 11: a task longer than the drain timeout is running at quiesce. It is queued
    # when the deploy reaches its preparation (the step before the quiesce), so
    # it runs when the quiesce starts however loaded the machine is. The drain
    # deadline passes, the task is reported, and the warm shutdown (a grace of
    # stop_timeout) lets it finish: it runs exactly once, and the deploy succeeds.
    variables = _vars(demo_stack, nginx, state_dir, "v2", {"bluegreen_drain_timeout": 2, "bluegreen_stop_timeout": 60})
    with TrafficProbe(nginx.url) as probe:
        result, long_task = _deploy_queueing_at(variables, "Prepare the release while the old one serves", demo_stack,
                                                seconds=25)
    assert long_task, "the deploy never reached its preparation"
    assert result.returncode == 0, result.stdout[-5000:]
    assert probe.failures == [], probe.failures[:5]
    assert "task(s) still held when drain_timeout (2 s) passed, left to the warm shutdown" in result.stdout, result.stdout[-5000:]
    assert demo_stack.wait_done(long_task, timeout=60) == {long_task[0]: 1}, "the long task was lost or ran twice"
    state = json.loads(snapshot.state_file.read_text())
    assert (state["active_color"], state["release"]) == ("green", "v2")
    assert state["history"][0]["drained"] is False and state["history"][0]["still_active"] == 1
    assert [h["release"] for h in state["history"]] == ["v2", "v1"], "rescued deploys must leave no history"
    assert not snapshot.lock_file.exists()
    # No fault got as far as the new beat (the workers come after the switch, and the
    # beat after the workers): colors alternate, but two beats must never send at once.
    assert beat_overlaps(demo_stack) == 0, "two beats sent at the same time"
    assert demo_stack.beat_runs()[-1] == "green", "the old beat still sends after the switch"
    report.append("11 task longer than the drain timeout: reported, finished once by the warm shutdown, deploy ok")
    print("\n".join(report))
