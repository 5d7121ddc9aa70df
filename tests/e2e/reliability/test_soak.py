# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The soak: deploys in a row, alternating v1/v2, under steady HTTP load through nginx
and a steady task stream with a backlog; then what a user would count: failed
requests, tasks lost (not run within a bound after the last deploy) or run twice,
with the whereabouts of each lost one, overlapping beat sends, leaked
containers/networks/volumes, the state file and its history bounded, and the time
per deploy (first vs last).

The short soak (8 deploys, in `stop` and in `shrink` mode) runs in `make test`;
the full one (20 deploys each) is marked `heavy` and runs with
`bash tests/e2e/reliability/soak.sh`.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.support.docker_cli import docker, project_containers
from tests.support.runner import ROOT, deploy
from tests.support.stack import TaskStream, TrafficProbe, role_vars

SHORT = int(os.environ.get("LOWSPEC_SOAK_DEPLOYS", "8"))
FULL = int(os.environ.get("LOWSPEC_SOAK_FULL_DEPLOYS", "20"))
SOAK = {
    "bluegreen_health_deadline": 60,
    "bluegreen_drain_timeout": 60,
    "bluegreen_stop_timeout": 60,
    "bluegreen_worker_ready_timeout": 120,
    "bluegreen_start_wait_timeout": 120,
    "bluegreen_pressure_wait": 60,
    # The machine is shared with other suites: measure, but do not stall on their load.
    "bluegreen_pressure_cpu_max": 100,
    "bluegreen_pressure_memory_max": 100,
}
MODES = {
    "stop": {},
    "shrink": {"bluegreen_quiesce_mode": "shrink", "bluegreen_quiesce_keep_processes": 1},
}
# Tasks not run this long after the last deploy count as lost.
LOST_AFTER = 300


def _labelled(kind, app):
    out = docker(kind, "ls", "-q", "--filter", "label=com.docker.compose.project")
    names = []
    for ident in out.split():
        project = docker(kind, "inspect", "--format", '{{index .Labels "com.docker.compose.project"}}', ident).strip()
        if project in (app + "-blue", app + "-green"):  # the shared project's network is meant to stay
            names.append((ident, project))
    return names


def soak(stack, nginx, tmp_path, deploys, mode):
    state_dir = tmp_path / "state"
    state_file = state_dir / ("%s.json" % stack.app)
    enqueue_url = "http://127.0.0.1:%d/enqueue" % nginx.port
    timings, sizes, windows, restored = [], [], [], 0
    releases = ["v1" if i % 2 == 0 else "v2" for i in range(deploys)]

    def one_deploy(index, release):
        started = time.time()
        variables = role_vars(stack, nginx, state_dir, release, **dict(SOAK, **MODES[mode]))
        result = deploy(variables)
        windows.append((index + 1, release, started, time.time()))
        timings.append(round(time.time() - started, 1))
        assert result.returncode == 0, "deploy %d (%s) failed:\n%s" % (index + 1, release, result.stdout[-5000:])
        sizes.append(state_file.stat().st_size)

    # The first deploy has nothing to switch from: nginx answers 502 until its web is up.
    with TrafficProbe(nginx.url, period=0.02) as first:
        one_deploy(0, releases[0])
    backlog = stack.enqueue("blue", n=30, seconds=0.5)
    with TrafficProbe(nginx.url, period=0.02) as probe, TaskStream(enqueue_url) as stream:
        for index, release in enumerate(releases[1:], start=1):
            one_deploy(index, release)
    uids = backlog + stream.uids
    runs = stack.wait_done(uids, timeout=LOST_AFTER)
    lost = [uid for uid, n in runs.items() if n == 0]

    state = json.loads(state_file.read_text())
    restored = sum(entry.get("restored") or 0 for entry in state["history"])
    sends = sorted((json.loads(s) for s in stack.records.lrange("demo:beat_sends", 0, -1)), key=lambda s: s["t"])
    color_runs = []
    for send in sends:
        if not color_runs or color_runs[-1] != send["color"]:
            color_runs.append(send["color"])
    # Two live schedulers: sends of both colors closer together than half a period.
    overlaps = sum(1 for a, b in zip(sends, sends[1:]) if a["color"] != b["color"] and b["t"] - a["t"] < 0.5)
    containers = project_containers(stack.project("blue"))
    containers.update({"green-" + k: v for k, v in project_containers(stack.project("green")).items()})
    figures = {
        "mode": mode,
        "deploys": deploys,
        "first_deploy_requests": len(first.answers),
        "first_deploy_failed_requests": len(first.failures),
        "requests": len(probe.answers),
        "failed_requests": len(probe.failures),
        "failed_request_samples": probe.failures[:5],
        "enqueue_errors": len(stream.errors),
        "tasks": len(uids),
        "tasks_lost": len(lost),
        "tasks_run_twice": sum(1 for n in runs.values() if n > 1),
        "lost_whereabouts": stack.whereabouts(lost),
        "messages_put_back_by_the_deploys": restored,
        "beat_sends": len(sends),
        "beat_color_runs": len(color_runs),
        "beat_overlapping_sends": overlaps,
        "containers_per_service": {k: len(v) for k, v in containers.items()},
        "leaked_networks": _labelled("network", stack.app),
        "leaked_volumes": _labelled("volume", stack.app),
        "state_file_bytes_after_each_deploy": sizes,
        "history_entries": len(state["history"]),
        "seconds_per_deploy": timings,
        "deploy_windows": windows,
    }
    report = ROOT / ".build" / "reliability" / ("soak-%s-%d.json" % (mode, deploys))
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(figures, indent=1))
    shown = {k: v for k, v in figures.items() if k != "deploy_windows"}
    print("\nsoak figures (%s):\n%s" % (report, json.dumps(shown, indent=1)))

    assert figures["failed_requests"] == 0, figures["failed_request_samples"]
    assert figures["enqueue_errors"] == 0, stream.errors[:5]
    assert not lost, "%d of %d tasks not run within %d s after the last deploy; where they are: %s\n%s" % (
        len(lost), len(uids), LOST_AFTER, figures["lost_whereabouts"], stack.worker_logs(lost))
    assert figures["tasks_run_twice"] == 0
    assert figures["beat_overlapping_sends"] == 0
    assert figures["beat_color_runs"] == deploys, "a deploy left no beat, or two took turns: %d runs" % len(color_runs)
    assert all(n == 1 for n in figures["containers_per_service"].values()), figures["containers_per_service"]
    assert figures["leaked_networks"] == [] and figures["leaked_volumes"] == []
    assert figures["history_entries"] == min(10, deploys), "the history must stay bounded (bluegreen_history_size)"
    assert max(sizes[9:] or [0]) - min(sizes[9:] or [0]) < 1024, "the state file keeps growing once the history is full"
    assert (state["active_color"], state["release"]) == ("green" if deploys % 2 == 0 else "blue", releases[-1])
    assert timings[-1] < 2 * timings[1] + 30, "deploys get slower: %s" % timings


@pytest.mark.parametrize("mode", sorted(MODES))
def test_short_soak(demo_stack, nginx, tmp_path, mode):
    soak(demo_stack, nginx, tmp_path, SHORT, mode)


@pytest.mark.heavy
@pytest.mark.parametrize("mode", sorted(MODES))
def test_soak_twenty_deploys_under_load(demo_stack, nginx, tmp_path, mode):
    soak(demo_stack, nginx, tmp_path, FULL, mode)
