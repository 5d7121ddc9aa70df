# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The test bed itself: the demo's v1 runs as one color on the real daemon,
serves its color, runs a task through the worker and beat sends."""

from __future__ import annotations

import json
import time

import requests

from tests.support.docker_cli import compose, container_state, project_containers


def test_demo_v1_serves_runs_tasks_and_beat_sends(demo_stack):
    demo_stack.up_color("blue", "v1")

    answer = requests.get(demo_stack.url("blue"), timeout=5)
    assert answer.status_code == 200
    assert answer.json()["color"] == "blue"
    assert answer.json()["release"] == "v1"

    worker = project_containers(demo_stack.project("blue"), "worker")
    assert len(worker) == 1
    assert container_state(worker[0])[:2] == ("running", "healthy")

    uids = demo_stack.enqueue("blue", n=2, seconds=0.1)
    runs = demo_stack.wait_done(uids, timeout=30)
    assert runs == {uid: 1 for uid in uids}
    done = [json.loads(item) for item in demo_stack.records.lrange("demo:done", 0, -1)]
    assert {item["color"] for item in done} == {"blue"}

    deadline = time.monotonic() + 15
    while not demo_stack.records.llen("demo:beat_sends") and time.monotonic() < deadline:
        time.sleep(0.3)
    sends = [json.loads(item) for item in demo_stack.records.lrange("demo:beat_sends", 0, -1)]
    assert sends, "beat never sent"
    assert {send["color"] for send in sends} == {"blue"}


def test_releases_differ_and_broken_is_never_healthy(demo_stack):
    demo_stack.up_color("green", "v2")
    assert requests.get(demo_stack.url("green"), timeout=5).json()["release"] == "v2"
    assert requests.get(demo_stack.url("green", "/"), timeout=5).text.startswith("v2 is here")

    compose(demo_stack.project("blue"), "up", "-d", "web", env=demo_stack.env_for("blue", "broken"))
    time.sleep(1.5)
    answer = requests.get(demo_stack.url("blue"), timeout=5)
    assert answer.status_code == 500
    assert answer.json()["status"] == "broken"
