# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The role end to end on the real stack: Docker, Compose v2, Celery, Redis and a real nginx.

What a user would notice is asserted: which color and release the proxy answers,
that the old workers and beat really stopped (and came back after a failure),
that requests through the proxy never failed, that only one beat ever sent.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time

from tests.support.docker_cli import container_state, project_containers
from tests.support.runner import ROOT, ansible_env, deploy, localhost_inventory
from tests.support.stack import TaskStream, TrafficProbe, assert_deployed, role_vars, states


def test_deploys_alternate_colors_with_old_workers_stopped_and_one_beat(demo_stack, nginx, tmp_path):
    state_dir = tmp_path / "state"
    with TrafficProbe(nginx.url) as first:
        result = deploy(role_vars(demo_stack, nginx, state_dir, "v1"))
    assert_deployed(result, demo_stack, nginx, state_dir, "blue", "v1")

    uids = demo_stack.enqueue("blue", n=6, seconds=0.5)
    with TrafficProbe(nginx.url) as probe:
        result = deploy(role_vars(demo_stack, nginx, state_dir, "v2"))
    state = assert_deployed(result, demo_stack, nginx, state_dir, "green", "v2")
    # The old color: web still up for a rollback, workers and beat stopped, containers kept.
    assert states(demo_stack, "blue", "web") == ["running"]
    assert states(demo_stack, "blue", "worker") == ["exited"]
    assert states(demo_stack, "blue", "beat") == ["exited"]
    assert probe.failures == [], "requests failed through the proxy during the deploy: %s" % probe.failures[:5]
    assert {a[1:] for a in probe.answers} <= {("blue", "v1"), ("green", "v2")}
    demo_stack.assert_each_ran_once(uids, timeout=60)
    assert [h["release"] for h in state["history"]] == ["v2", "v1"]  # newest first
    assert state["history"][0]["previous_color"] == "blue"

    with TrafficProbe(nginx.url) as probe:
        result = deploy(role_vars(demo_stack, nginx, state_dir, "v1"))
    assert_deployed(result, demo_stack, nginx, state_dir, "blue", "v1")
    assert states(demo_stack, "green", "worker") == ["exited"]
    assert states(demo_stack, "green", "beat") == ["exited"]
    assert probe.failures == [], probe.failures[:5]
    assert demo_stack.beat_runs() == ["blue", "green", "blue"], "two beats sent at the same time"
    assert first.failures == [] or all(a[0] in (502, "error") for a in first.failures)

    # The same release again changes nothing (idempotent).
    result = deploy(role_vars(demo_stack, nginx, state_dir, "v1"))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "changed=0" in result.stdout


def test_broken_release_is_rescued_and_the_old_release_keeps_serving(demo_stack, nginx, tmp_path):
    state_dir = tmp_path / "state"
    assert_deployed(deploy(role_vars(demo_stack, nginx, state_dir, "v1")), demo_stack, nginx, state_dir, "blue", "v1")
    before = {svc: project_containers(demo_stack.project("blue"), svc) for svc in ("web", "worker", "beat")}
    state_before = (state_dir / ("%s.json" % demo_stack.app)).read_text()

    with TrafficProbe(nginx.url) as probe:
        result = deploy(role_vars(demo_stack, nginx, state_dir, "broken", bluegreen_health_deadline=8))
    assert result.returncode != 0
    assert "failed at step 'web'" in result.stdout
    assert probe.failures == [], "the old release stopped answering during the failed deploy: %s" % probe.failures[:5]
    assert {a[1:] for a in probe.answers} == {("blue", "v1")}
    # Exactly the same old containers run again (started by id, not recreated).
    for svc, ids in before.items():
        assert project_containers(demo_stack.project("blue"), svc) == ids
        assert [container_state(cid)[0] for cid in ids] == ["running"]
    assert all(s != "running" for s in states(demo_stack, "green", "web"))
    assert (state_dir / ("%s.json" % demo_stack.app)).read_text() == state_before
    assert not (state_dir / ("%s.lock" % demo_stack.app)).exists()
    # The old workers consume again.
    uids = demo_stack.enqueue("blue", n=2, seconds=0.1)
    demo_stack.assert_each_ran_once(uids, timeout=30)

    # The next good release deploys without manual steps.
    assert_deployed(deploy(role_vars(demo_stack, nginx, state_dir, "v2")), demo_stack, nginx, state_dir, "green", "v2")


def test_second_deploy_is_refused_naming_the_holder(demo_stack, nginx, tmp_path):
    state_dir = tmp_path / "state"
    inventory = localhost_inventory()
    first = subprocess.Popen(  # pylint: disable=consider-using-with
        ["ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / "deploy.yml"),
         "-e", json.dumps(role_vars(demo_stack, nginx, state_dir, "v1"))],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(tmp_path),
        # A USER with no account: Ansible's default remote_tmp (~/.ansible/tmp) would expand to a literal
        # "~first-operator/.ansible/tmp" created in the working directory. Give this run its own temp dirs.
        env=ansible_env({"USER": "first-operator", "ANSIBLE_REMOTE_TMP": str(tmp_path / "remote-tmp"),
                         "ANSIBLE_LOCAL_TEMP": str(tmp_path / "local-tmp")}),
    )
    try:
        lock = state_dir / ("%s.lock" % demo_stack.app)
        deadline = time.monotonic() + 60
        while not lock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lock.exists(), "the first deploy never took the lock"
        second = deploy(role_vars(demo_stack, nginx, state_dir, "v2"))
        assert second.returncode != 0
        assert "locked by first-operator" in second.stdout
        assert "since" in second.stdout
    finally:
        out = first.communicate(timeout=600)[0]
    assert first.returncode == 0, out[-3000:]
    assert_deployed(subprocess.CompletedProcess([], 0, out), demo_stack, nginx, state_dir, "blue", "v1")


def test_rollback_answered_at_the_gate_restores_the_previous_release(demo_stack, nginx, tmp_path):
    state_dir = tmp_path / "state"
    assert_deployed(deploy(role_vars(demo_stack, nginx, state_dir, "v1")), demo_stack, nginx, state_dir, "blue", "v1")
    workers = project_containers(demo_stack.project("blue"), "worker")

    variables = role_vars(demo_stack, nginx, state_dir, "v2", bluegreen_verify_gate="prompt")
    argv = ["ansible-playbook", "-i", str(localhost_inventory()),
            str(ROOT / "playbooks" / "deploy.yml"), "-e", json.dumps(variables)]
    # Tasks keep arriving through the proxy while v2's workers consume and while the rescue stops them.
    with TaskStream("http://127.0.0.1:%d/enqueue" % nginx.port, period=0.5) as stream:
        output = _run_answering_gate(argv, "rollback")
    assert "failed at step 'gate'" in output, output[-4000:]
    assert "answered 'rollback'" in output
    assert "Drain the failed color's workers, then stop them and its beat." in output
    assert "could not be drained" not in output, output[-4000:]
    assert not stream.errors and stream.uids, stream.errors[:3]
    demo_stack.assert_each_ran_once(stream.uids, timeout=120, what="tasks enqueued through the gate's rollback")

    import requests

    body = requests.get(nginx.url, timeout=5).json()
    assert (body["color"], body["release"]) == ("blue", "v1")
    assert project_containers(demo_stack.project("blue"), "worker") == workers
    assert states(demo_stack, "blue", "worker") == ["running"]
    assert states(demo_stack, "blue", "beat") == ["running"]
    assert all(s != "running" for s in states(demo_stack, "green", "worker"))
    state = json.loads((state_dir / ("%s.json" % demo_stack.app)).read_text())
    assert (state["active_color"], state["release"]) == ("blue", "v1")


def _run_answering_gate(argv, answer, timeout=600):
    """Run a playbook on a pseudo-terminal (its controlling terminal, as for an
    operator) and type `answer` at the verify gate's prompt.

    Ansible may flush the terminal's input when the prompt opens, so the answer
    is typed again every few seconds until the play moves on.
    """
    env = ansible_env()
    pid, leader = pty.fork()
    if pid == 0:  # the child: ansible-playbook on the terminal
        os.execvpe(argv[0], argv, env)
    output = b""
    prompt_seen_at = None
    last_typed = 0.0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready = select.select([leader], [], [], 0.5)[0]
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            if prompt_seen_at is None and b"type 'rollback'" in output:
                prompt_seen_at = len(output)
            still_at_prompt = prompt_seen_at is not None and b"TASK [" not in output[prompt_seen_at:]
            if still_at_prompt and time.monotonic() - last_typed > 3:
                os.write(leader, answer.encode() + b"\r")
                last_typed = time.monotonic()
    finally:
        os.close(leader)
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    return output.decode(errors="replace")


def test_wrong_variable_type_is_rejected_before_any_task(demo_stack, nginx, tmp_path):
    state_dir = tmp_path / "state"
    result = deploy(role_vars(demo_stack, nginx, state_dir, "v1", bluegreen_web_ports="8001"))
    assert result.returncode != 0
    assert "bluegreen_web_ports" in result.stdout
    assert "Validating arguments against arg spec" in result.stdout
    assert project_containers(demo_stack.project("blue")) == {}
    assert not state_dir.exists()


def test_check_mode_changes_no_container_file_or_proxy(demo_stack, nginx, tmp_path):
    state_dir = tmp_path / "state"
    assert_deployed(deploy(role_vars(demo_stack, nginx, state_dir, "v1")), demo_stack, nginx, state_dir, "blue", "v1")
    containers = {color: project_containers(demo_stack.project(color)) for color in ("blue", "green")}
    states_before = {cid: container_state(cid) for ids in containers["blue"].values() for cid in ids}
    upstream = nginx.upstream_path.read_text()
    state = (state_dir / ("%s.json" % demo_stack.app)).read_text()

    result = deploy(role_vars(demo_stack, nginx, state_dir, "v2"), check=True)
    assert result.returncode == 0, result.stdout[-4000:]
    assert {color: project_containers(demo_stack.project(color)) for color in ("blue", "green")} == containers
    assert {cid: container_state(cid) for cid in states_before} == states_before
    assert nginx.upstream_path.read_text() == upstream
    assert (state_dir / ("%s.json" % demo_stack.app)).read_text() == state
