# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The operator presses Ctrl-C during a deploy and at the verify gate.

The playbook runs on a pseudo-terminal, as for an operator, and Ctrl-C is typed
there (the terminal sends SIGINT to the whole foreground process group, modules
included). Then the recovery documented in the role README is followed, and the
host must end consistent: one color serving with its workers and beat running,
the state file naming it, the lock free, one beat.
"""

from __future__ import annotations

import json

import pytest
import requests

from tests.support.docker_cli import container_state, project_containers
from tests.support.runner import BREAK_LOCK, FAST_DEPLOY, deploy, playbook_argv, run_on_pty
from tests.support.stack import TrafficProbe, role_vars

pytestmark = pytest.mark.heavy

FAST = FAST_DEPLOY


def assert_consistent(stack, nginx, state_dir, color, release):
    body = requests.get(nginx.url, timeout=5).json()
    assert (body["color"], body["release"]) == (color, release)
    state = json.loads((state_dir / ("%s.json" % stack.app)).read_text())
    assert (state["active_color"], state["release"]) == (color, release)
    for svc in ("web", "worker", "beat"):
        ids = project_containers(stack.project(color), svc)
        assert [container_state(cid)[0] for cid in ids] == ["running"], (color, svc)
    other = "green" if color == "blue" else "blue"
    for svc in ("worker", "beat"):
        ids = project_containers(stack.project(other), svc)
        assert all(container_state(cid)[0] != "running" for cid in ids), (other, svc)
    assert not (state_dir / ("%s.lock" % stack.app)).exists()
    uids = stack.enqueue(color, n=2, seconds=0.1)
    stack.assert_each_ran_once(uids, timeout=60)


def test_ctrl_c_mid_deploy_then_documented_recovery(demo_stack, nginx, tmp_path):
    state_dir = tmp_path / "state"
    first = deploy(role_vars(demo_stack, nginx, state_dir, "v1", **FAST))
    assert first.returncode == 0, first.stdout[-3000:]

    variables = role_vars(demo_stack, nginx, state_dir, "v2", **FAST)
    with TrafficProbe(nginx.url) as probe:
        code, output = run_on_pty(playbook_argv(variables), [("Start the new workers", b"\x03")])
    assert code != 0, output[-3000:]
    assert probe.failures == [], "the old release stopped answering when the deploy was interrupted: %s" % probe.failures[:5]
    lock = state_dir / ("%s.lock" % demo_stack.app)
    assert lock.exists(), "an interrupted run cannot release its lock: the lock must show it"

    # A plain re-run is refused, naming the holder and how to take over.
    refused = deploy(variables)
    assert refused.returncode != 0
    assert "locked by" in refused.stdout and "bluegreen_lock_break_stale" in refused.stdout, refused.stdout[-3000:]

    # The documented recovery: re-run, taking over the lock deliberately.
    with TrafficProbe(nginx.url) as probe:
        again = deploy(dict(variables, **BREAK_LOCK))
    assert again.returncode == 0, again.stdout[-5000:]
    assert probe.failures == [], probe.failures[:5]
    assert_consistent(demo_stack, nginx, state_dir, "green", "v2")


def test_ctrl_c_at_the_gate_then_documented_recovery(demo_stack, nginx, tmp_path):
    state_dir = tmp_path / "state"
    first = deploy(role_vars(demo_stack, nginx, state_dir, "v1", **FAST))
    assert first.returncode == 0, first.stdout[-3000:]
    blue_workers = project_containers(demo_stack.project("blue"), "worker")

    variables = role_vars(demo_stack, nginx, state_dir, "v2", bluegreen_verify_gate="prompt", **FAST)
    code, output = run_on_pty(playbook_argv(variables), [("type 'rollback'", b"\x03"), ("abort", b"a")])
    print(output[-1500:])
    assert code != 0, output[-3000:]
    lock = state_dir / ("%s.lock" % demo_stack.app)
    if "failed at step 'gate'" in output:
        # Ctrl-C, then A(bort) at pause's question: the play fails at the gate and the rescue rolls back.
        assert_consistent(demo_stack, nginx, state_dir, "blue", "v1")
    else:
        # The run died at the gate: the new release is live and recorded; the documented
        # recovery returns to the old one with rollback.yml.
        assert lock.exists()
        back = deploy(dict(variables, **BREAK_LOCK), playbook="rollback.yml")
        assert back.returncode == 0, back.stdout[-5000:]
        assert_consistent(demo_stack, nginx, state_dir, "blue", "v1")
    assert project_containers(demo_stack.project("blue"), "worker") == blue_workers
