# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 9, soak: 20 consecutive deploys alternating v1/v2 under steady HTTP load
through nginx and a steady task stream with a backlog; then what a user would
count: failed requests, tasks lost or run twice, duplicate beat ticks, leaked
containers/networks/volumes, growth of the state file and its history, and the
time per deploy (first vs last)."""

from __future__ import annotations

import json
import os
import threading
import time

import requests

from conftest import integration

DEPLOYS = int(os.environ.get("LOWSPEC_SOAK_DEPLOYS", "20"))
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


class TaskStream:
    """Enqueues `n` tasks every `period` seconds through the proxy (whichever color serves)."""

    def __init__(self, url, n=2, seconds=0.2, period=1.0):
        self.url, self.n, self.seconds, self.period = url, n, seconds, period
        self.uids, self.errors = [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                # A connection per request, as TrafficProbe does (nginx's reload closes idle keep-alive ones).
                reply = requests.post(self.url, json={"n": self.n, "seconds": self.seconds}, timeout=10,
                                      headers={"Connection": "close"})
                reply.raise_for_status()
                self.uids.extend(reply.json()["enqueued"])
            except (requests.RequestException, ValueError, KeyError) as exc:
                self.errors.append(repr(exc))
            self._stop.wait(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(15)


def _labelled(kind, app):
    out = integration.docker(kind, "ls", "-q", "--filter", "label=com.docker.compose.project")
    names = []
    for ident in out.split():
        project = integration.docker(kind, "inspect", "--format",
                                     '{{index .Labels "com.docker.compose.project"}}', ident).strip()
        if project in (app + "-blue", app + "-green"):  # the shared project's network is meant to stay
            names.append((ident, project))
    return names


def test_soak_twenty_deploys_under_load(demo_stack, nginx, tmp_path):
    state_dir = tmp_path / "state"
    state_file = state_dir / ("%s.json" % demo_stack.app)
    enqueue_url = "http://127.0.0.1:%d/enqueue" % nginx.port
    timings, sizes = [], []
    releases = ["v1" if i % 2 == 0 else "v2" for i in range(DEPLOYS)]

    def one_deploy(index, release):
        started = time.monotonic()
        result = integration.deploy(integration.role_vars(demo_stack, nginx, state_dir, release, **SOAK))
        timings.append(round(time.monotonic() - started, 1))
        assert result.returncode == 0, "deploy %d (%s) failed:\n%s" % (index + 1, release, result.stdout[-5000:])
        sizes.append(state_file.stat().st_size)

    # The first deploy has nothing to switch from: nginx answers 502 until its web is up.
    with integration.TrafficProbe(nginx.url, period=0.02) as first:
        one_deploy(0, releases[0])
    backlog = demo_stack.enqueue("blue", n=30, seconds=0.5)
    with integration.TrafficProbe(nginx.url, period=0.02) as probe, TaskStream(enqueue_url) as stream:
        for index, release in enumerate(releases[1:], start=1):
            one_deploy(index, release)
    uids = backlog + stream.uids
    runs = demo_stack.wait_done(uids, timeout=300)

    state = json.loads(state_file.read_text())
    sends = sorted((json.loads(s) for s in demo_stack.records.lrange("demo:beat_sends", 0, -1)), key=lambda s: s["t"])
    color_runs = []
    for send in sends:
        if not color_runs or color_runs[-1] != send["color"]:
            color_runs.append(send["color"])
    # Two live schedulers: sends of both colors closer together than one period.
    overlaps = sum(1 for a, b in zip(sends, sends[1:]) if a["color"] != b["color"] and b["t"] - a["t"] < 0.5)
    containers = integration.project_containers(demo_stack.project("blue"))
    containers.update({"green-" + k: v for k, v in integration.project_containers(demo_stack.project("green")).items()})
    figures = {
        "deploys": DEPLOYS,
        "first_deploy_requests": len(first.answers),
        "first_deploy_failed_requests": len(first.failures),
        "requests": len(probe.answers),
        "failed_requests": len(probe.failures),
        "failed_request_samples": probe.failures[:5],
        "enqueue_errors": len(stream.errors),
        "tasks": len(uids),
        "tasks_lost": sum(1 for n in runs.values() if n == 0),
        "tasks_run_twice": sum(1 for n in runs.values() if n > 1),
        "beat_sends": len(sends),
        "beat_color_runs": len(color_runs),
        "beat_overlapping_sends": overlaps,
        "containers_per_service": {k: len(v) for k, v in containers.items()},
        "leaked_networks": _labelled("network", demo_stack.app),
        "leaked_volumes": _labelled("volume", demo_stack.app),
        "state_file_bytes_after_each_deploy": sizes,
        "history_entries": len(state["history"]),
        "seconds_per_deploy": timings,
        "first_deploy_s": timings[0],
        "last_deploy_s": timings[-1],
    }
    report = integration.ROOT / ".build" / "reliability" / "soak.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(figures, indent=1))
    print("\nsoak figures:\n" + json.dumps(figures, indent=1))

    assert figures["failed_requests"] == 0
    assert figures["enqueue_errors"] == 0
    assert figures["tasks_lost"] == 0 and figures["tasks_run_twice"] == 0
    assert figures["beat_overlapping_sends"] == 0 and figures["beat_color_runs"] == DEPLOYS
    assert all(n == 1 for n in figures["containers_per_service"].values()), figures["containers_per_service"]
    assert figures["leaked_networks"] == [] and figures["leaked_volumes"] == []
    assert figures["history_entries"] == min(10, DEPLOYS), "the history must stay bounded (bluegreen_history_size)"
    assert max(sizes[9:] or [0]) - min(sizes[9:] or [0]) < 512, "the state file keeps growing once the history is full"
    assert (state["active_color"], state["release"]) == ("green" if DEPLOYS % 2 == 0 else "blue", releases[-1])
    assert timings[-1] < 2 * timings[1] + 30, "deploys get slower: %s" % timings
