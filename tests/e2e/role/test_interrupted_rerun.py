# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A run interrupted after its quiesce, then a re-run that fails too.

The operator presses Ctrl-C (on a terminal: SIGINT reaches Ansible and its
modules) once the old workers and beat are stopped. No rescue runs, so they stay
stopped. The documented recovery re-runs the deploy, taking the lock over; here
that re-run fails as well (its release is broken). Its own quiesce stops
nothing, since nothing runs: only the journal the interrupted run wrote before
each stop (<state_dir>/<app>.journal.json) tells its rescue what to put back.
The old release must end as it was before the first run: same containers
running, tasks consumed, one beat.
"""

from __future__ import annotations

import json
import time

from tests.support.docker_cli import container_state, project_containers
from tests.support.runner import BREAK_LOCK, FAST_DEPLOY, deploy, playbook_argv, run_on_pty
from tests.support.stack import role_vars

FAST = dict(FAST_DEPLOY, bluegreen_health_successes=2)


def test_a_failing_rerun_after_ctrl_c_brings_back_the_old_workers_the_lost_run_stopped(demo_stack, nginx, tmp_path):
    state_dir = tmp_path / "state"
    journal = state_dir / ("%s.journal.json" % demo_stack.app)
    first = deploy(role_vars(demo_stack, nginx, state_dir, "v1", **FAST))
    assert first.returncode == 0, first.stdout[-3000:]
    old = {svc: project_containers(demo_stack.project("blue"), svc) for svc in ("worker", "beat")}
    assert all(len(ids) == 1 for ids in old.values()), old

    # Interrupted while the new web's call checks its health, slowly, slice by slice: the same call
    # quiesced the old color first.
    slow_web = dict(FAST, bluegreen_health_successes=40, bluegreen_health_delay=0.2, bluegreen_progress_interval=2)
    code, output = run_on_pty(playbook_argv(role_vars(demo_stack, nginx, state_dir, "v2", **slow_web)),
                              [("RETRYING: [localhost]: Quiesce the old color", b"\x03")])
    assert code != 0, output[-3000:]
    assert "Quiesce the old color" in output and "failed at step" not in output, "no rescue may have run"
    # Told to stop before the new web started; their warm shutdown ends by itself.
    deadline = time.monotonic() + 60
    while [container_state(ids[0])[0] for ids in old.values()] != ["exited", "exited"]:
        assert time.monotonic() < deadline, output[-3000:]
        time.sleep(0.5)
    written = json.loads(journal.read_text())["entries"]
    assert sorted(entry["id"] for entry in written) == sorted(ids[0] for ids in old.values())
    assert all(entry["project"] == demo_stack.project("blue") for entry in written)
    # status names the lock left behind and the old containers the journal holds.
    status = deploy(role_vars(demo_stack, nginx, state_dir, "v2"), playbook="status.yml")
    assert status.returncode == 0, status.stdout[-3000:]
    assert "deploy lock: held by " in status.stdout, status.stdout[-3000:]
    for svc, ids in old.items():
        assert "%s %s %s stopped" % (demo_stack.project("blue"), svc, ids[0][:12]) in status.stdout, status.stdout[-3000:]

    rerun = deploy(dict(role_vars(demo_stack, nginx, state_dir, "broken", **FAST), **BREAK_LOCK))
    out = rerun.stdout
    assert rerun.returncode != 0 and "failed at step 'web'" in out, out[-4000:]
    assert "is serving again" in out, out[-4000:]

    for svc, ids in old.items():
        assert project_containers(demo_stack.project("blue"), svc) == ids, "%s was recreated" % svc
        assert container_state(ids[0])[0] == "running", "%s of the old release was not brought back" % svc
    assert not journal.exists(), "the rescue brought everything back: nothing is left to put back"
    assert not (state_dir / ("%s.lock" % demo_stack.app)).exists()
    state = json.loads((state_dir / ("%s.json" % demo_stack.app)).read_text())
    assert (state["active_color"], state["release"]) == ("blue", "v1")
    uids = demo_stack.enqueue("blue", n=3, seconds=0.1)
    demo_stack.assert_each_ran_once(uids, timeout=60)
    # The old beat sends again, and no other scheduler ever ran.
    sent = demo_stack.records.llen("demo:beat_sends")
    deadline = time.monotonic() + 15
    while demo_stack.records.llen("demo:beat_sends") == sent and time.monotonic() < deadline:
        time.sleep(0.5)
    assert demo_stack.records.llen("demo:beat_sends") > sent, "the old beat does not send"
    assert demo_stack.beat_runs() == ["blue"]
