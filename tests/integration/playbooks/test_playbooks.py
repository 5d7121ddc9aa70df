# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rollback, cleanup and status playbooks on the real stack: Docker, Compose v2, Celery, Redis, nginx.

Two stacks, each shared by the tests of one scenario (module scope, torn down
even when a test fails), so that the file runs in a few minutes:

- the demo app (broker in the shared project), deployed v1 (blue) then v2
  (green): rollback and cleanup refused under another run's lock, rollback, a
  second rollback, status, cleanup. The tests run in file
  order and each one starts from where the previous one left the stack;
- a variant that keeps its Redis broker inside each colored project
  (colored_broker/compose.yml, docs/architecture.md decision 7, as the article's script
  does), v1 started by hand and v2 deployed by the role: cleanup
  refuses while the old color's broker holds messages, removes it once drained;
  then a rollback to the removed color is refused.

What a user would notice is asserted: which color and release the public URL
(through the real nginx) answers, that no request failed meanwhile, which
containers run (the same ids, resumed, not recreated), the state file and the
messages the playbooks print.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.support.docker_cli import compose, container_state, docker, project_containers
from tests.support.runner import deploy, module_tasks, run_module, timeline_env
from tests.support.stack import DemoStack, Nginx, TrafficProbe, role_vars

COLORED_BROKER_DIR = Path(__file__).resolve().parent / "colored_broker"


class Site:
    """One deployed app behind its own nginx, with its state directory."""

    def __init__(self, stack, proxy, state_dir, **overrides):
        self.stack = stack
        self.proxy = proxy
        self.state_dir = state_dir
        self.overrides = overrides

    def vars(self, release=None, **overrides):
        """Role variables; without `release`, none is passed (rollback, cleanup and status need none)."""
        variables = role_vars(self.stack, self.proxy, self.state_dir, release or "-", **self.overrides)
        variables.update(overrides)
        if release is None:
            del variables["bluegreen_release"]
        return variables

    def run(self, playbook, release=None, timeline=None, **overrides):
        """Run a playbook; with `timeline`, the benchmark's callback writes its tasks there."""
        return deploy(self.vars(release, **overrides), playbook=playbook,
                      env=timeline_env(timeline) if timeline else None)

    @property
    def state_file(self):
        return self.state_dir / ("%s.json" % self.stack.app)

    def state(self):
        return json.loads(self.state_file.read_text())

    def public(self):
        """(color, release) that the public URL answers through nginx."""
        body = requests.get(self.proxy.url, timeout=5).json()
        return body["color"], body["release"]

    def ids(self, color, service):
        return project_containers(self.stack.project(color), service)

    def states(self, color, service):
        return [container_state(cid)[0] for cid in self.ids(color, service)]

    def assert_unlocked(self):
        assert not (self.state_dir / ("%s.lock" % self.stack.app)).exists(), "the deploy lock was not released"


def ok(result):
    assert result.returncode == 0, result.stdout[-6000:]
    return result


def failed(result):
    assert result.returncode != 0, result.stdout[-6000:]
    return result


def recap_changed(result):
    """The `changed=` count of the play recap."""
    line = [ln for ln in result.stdout.splitlines() if ln.startswith("localhost") and "changed=" in ln][-1]
    return int(line.split("changed=")[1].split()[0])


def _deploy_v1_then_v2(site):
    for release, color in (("v1", "blue"), ("v2", "green")):
        ok(site.run("deploy.yml", release))
        assert site.public() == (color, release)


# -- the demo app: rollback, status, cleanup ------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo app deployed v1 (blue) then v2 (green) behind its own nginx; torn down at the end of the module."""
    base = tmp_path_factory.mktemp("playbooks-demo")
    stack = DemoStack("p%s" % uuid.uuid4().hex[:8])
    proxy = Nginx(base / "nginx", "%s_bluegreen" % stack.app, stack.ports["blue"])
    try:
        stack.up_shared()
        proxy.start()
        site = Site(stack, proxy, base / "state")
        _deploy_v1_then_v2(site)
        yield site
    finally:
        proxy.stop()
        stack.teardown()


def test_rollback_and_cleanup_are_refused_while_another_run_holds_the_lock(demo):
    lock = dict(app=demo.stack.app, state_dir=str(demo.state_dir), token="other-run", holder="night-operator deploying v3")
    assert run_module("deploy_lock", dict(lock, state="present"))["rc"] == 0

    def containers():
        return {color: {svc: (demo.ids(color, svc), demo.states(color, svc)) for svc in ("web", "worker", "beat")}
                for color in ("blue", "green")}

    before = containers()
    state = demo.state_file.read_text()
    try:
        for playbook in ("rollback.yml", "cleanup.yml"):
            result = failed(demo.run(playbook))
            assert "locked by night-operator deploying v3" in result.stdout, result.stdout[-3000:]
            # Refused before anything changed; the other run's lock is left in place.
            assert demo.public() == ("green", "v2")
            assert demo.state_file.read_text() == state
            assert containers() == before
            held = json.loads((demo.state_dir / ("%s.lock" % demo.stack.app)).read_text())
            assert held["token"] == "other-run", held
    finally:
        run_module("deploy_lock", dict(lock, state="absent"))
    demo.assert_unlocked()


def test_rollback_returns_traffic_to_the_previous_release_with_its_own_workers(demo, tmp_path):
    blue = {svc: demo.ids("blue", svc) for svc in ("web", "worker", "beat")}
    green = {svc: demo.ids("green", svc) for svc in ("web", "worker", "beat")}
    assert demo.states("blue", "worker") == ["exited"] and demo.states("blue", "beat") == ["exited"]

    timeline = tmp_path / "timeline.jsonl"
    with TrafficProbe(demo.proxy.url) as probe:
        result = ok(demo.run("rollback.yml", timeline=timeline))

    assert demo.public() == ("blue", "v1")
    assert probe.failures == [], "requests failed through the proxy during the rollback: %s" % probe.failures[:5]
    assert {a[1:] for a in probe.answers} <= {("green", "v2"), ("blue", "v1")}
    assert probe.answers[-1][1:] == ("blue", "v1")
    # v1's workers and beat are the very containers the v2 deploy stopped: resumed, not recreated.
    for svc, ids in blue.items():
        assert demo.ids("blue", svc) == ids
        assert demo.states("blue", svc) == ["running"]
    # v2's workers and beat are stopped, its web kept (as the old color's after a deploy), nothing removed.
    assert {svc: demo.ids("green", svc) for svc in green} == green
    assert demo.states("green", "worker") == ["exited"]
    assert demo.states("green", "beat") == ["exited"]
    assert demo.states("green", "web") == ["running"]
    assert demo.stack.beat_runs()[-2:] == ["green", "blue"], "two beats sent at the same time"
    assert demo.stack.beat_runs().count("blue") == 2

    state = demo.state()
    assert (state["active_color"], state["release"]) == ("blue", "v1")
    newest = state["history"][0]
    assert (newest["color"], newest["release"], newest["rollback_of"]) == ("blue", "v1", "v2")
    assert (newest["previous_color"], newest["previous_release"]) == ("green", "v2")
    assert [h["release"] for h in state["history"]] == ["v1", "v2", "v1"]
    demo.assert_unlocked()
    assert "rolled back to blue v1 (from green v2" in result.stdout
    # Six module executions: the read (taking the lock), the previous web, the quiesce, the resume, the
    # switch and the record (releasing the lock); no deploy_lock call of its own.
    on_host = module_tasks(timeline)
    assert len(on_host) == 6, on_host

    # The resumed workers consume: tasks queued now complete, once each.
    uids = demo.stack.enqueue("blue", n=3, seconds=0.1)
    demo.stack.assert_each_ran_once(uids, timeout=60)


def test_second_rollback_changes_nothing(demo):
    state = demo.state_file.read_text()
    upstream = demo.proxy.upstream_path.read_text()
    containers = {color: project_containers(demo.stack.project(color)) for color in ("blue", "green")}
    running = {cid: container_state(cid)[0] for ids in containers.values() for svc in ids.values() for cid in svc}

    with TrafficProbe(demo.proxy.url) as probe:
        result = ok(demo.run("rollback.yml"))

    # It does not flip traffic back to the release that was just rolled away from.
    assert "already rolled back" in result.stdout
    assert "rolled back from v2" in result.stdout and "deploy it again" in result.stdout
    assert recap_changed(result) == 0
    assert demo.public() == ("blue", "v1")
    assert {a[1:] for a in probe.answers} == {("blue", "v1")} and probe.failures == []
    assert demo.state_file.read_text() == state
    assert demo.proxy.upstream_path.read_text() == upstream
    assert {color: project_containers(demo.stack.project(color)) for color in ("blue", "green")} == containers
    assert {cid: container_state(cid)[0] for cid in running} == running
    demo.assert_unlocked()


def test_status_shows_app_active_color_release_health_and_history(demo):
    result = ok(demo.run("status.yml"))
    out = result.stdout
    app = demo.stack.app
    assert "app %s: active blue, release v1, health ok" % app in out
    assert "  blue (active): web running, worker running, beat running" in out
    assert "  green (idle): web running, worker exited, beat exited - rolled back from it" in out
    assert "last deploys (newest first):" in out
    assert "deploy lock:" not in out and "journal:" not in out, "no deploy runs or was interrupted"
    # One line per deploy, newest first: the rollback, the v2 deploy, the first deploy.
    lines = [ln.strip().strip('",') for ln in out.splitlines() if " rollback of v2" in ln or "  first deploy" in ln
             or ("green  v2  from blue v1" in ln)]
    assert len(lines) == 3, out[-4000:]
    assert "blue   v1  from green v2, rollback of v2" in lines[0]
    assert "green  v2  from blue v1, drained, stopped beat+worker" in lines[1]
    assert "blue   v1  first deploy" in lines[2]
    # The table of all hosts.
    assert any(ln.split('"')[1:2] and ln.split('"')[1].split() == ["host", "app", "active", "release", "health"]
               for ln in out.splitlines()), out[-3000:]
    assert any(ln.split('"')[1:2] and ln.split('"')[1].split() == ["localhost", app, "blue", "v1", "ok"]
               for ln in out.splitlines()), out[-3000:]
    assert recap_changed(result) == 0

    # Health is really asked of the active web: frozen, it is reported failing.
    web = demo.ids("blue", "web")[0]
    docker("pause", web)
    try:
        out = ok(demo.run("status.yml", bluegreen_health_timeout=1)).stdout
    finally:
        docker("unpause", web)
    # The state file's color is shown (nginx points at it), not green because only green's web runs.
    assert "app %s: active blue, release v1, health FAILING" % app in out
    assert "warning: the state file records blue as active, but only the web of green runs" in out
    assert any(ln.split('"')[1:2] and ln.split('"')[1].split() == ["localhost", app, "blue", "v1", "FAILING"]
               for ln in out.splitlines()), out[-3000:]


def test_cleanup_refuses_while_the_recorded_colors_web_is_down(demo):
    # blue is recorded active (nginx points at it) but its web is frozen, while green's web runs:
    # "the idle color" by running webs would be blue, the release nginx sends users to.
    containers = {color: project_containers(demo.stack.project(color)) for color in ("blue", "green")}
    web = demo.ids("blue", "web")[0]
    docker("pause", web)
    try:
        result = failed(demo.run("cleanup.yml"))
    finally:
        docker("unpause", web)
    assert "the state file records blue as active (the proxy points at it), but only the web of green runs" in result.stdout
    assert {color: project_containers(demo.stack.project(color)) for color in ("blue", "green")} == containers
    assert demo.public() == ("blue", "v1")
    demo.assert_unlocked()


def test_cleanup_removes_only_the_idle_color_and_is_idempotent(demo, tmp_path):
    blue = project_containers(demo.stack.project("blue"))
    assert project_containers(demo.stack.project("green")), "green should still exist before the cleanup"
    state = demo.state_file.read_text()

    timeline = tmp_path / "timeline.jsonl"
    with TrafficProbe(demo.proxy.url) as probe:
        result = ok(demo.run("cleanup.yml", timeline=timeline))

    assert project_containers(demo.stack.project("green")) == {}
    assert project_containers(demo.stack.project("blue")) == blue
    assert all(container_state(cid)[0] == "running" for ids in blue.values() for cid in ids)
    assert probe.failures == [] and {a[1:] for a in probe.answers} == {("blue", "v1")}
    assert demo.public() == ("blue", "v1")
    assert demo.state_file.read_text() == state
    assert "removed %s-green" % demo.stack.app in result.stdout
    demo.assert_unlocked()
    # Three module executions: the idle color's read (taking the lock), the active web's, the removal
    # (releasing the lock).
    on_host = module_tasks(timeline)
    assert len(on_host) == 3, on_host

    again = ok(demo.run("cleanup.yml"))
    assert recap_changed(again) == 0
    assert "nothing to clean up" in again.stdout
    demo.assert_unlocked()
    assert project_containers(demo.stack.project("blue")) == blue

    status = ok(demo.run("status.yml")).stdout
    assert "  green (idle): no container - removed, nothing to roll back to" in status


# -- a broker inside each color: cleanup refuses while it holds messages ------


@pytest.fixture(scope="module")
def colored(tmp_path_factory):
    """The colored-broker variant: v1 (blue) started by hand, v2 (green) deployed by the role; torn down at the end."""
    base = tmp_path_factory.mktemp("playbooks-colored")
    stack = DemoStack("q%s" % uuid.uuid4().hex[:8])
    proxy = Nginx(base / "nginx", "%s_bluegreen" % stack.app, stack.ports["blue"])
    site = Site(stack, proxy, base / "state",
                bluegreen_project_src=str(COLORED_BROKER_DIR),
                bluegreen_shared_project_src="",
                bluegreen_compose_variables={},
                bluegreen_broker_services=["redis"],
                bluegreen_beat_services=[])
    try:
        proxy.start()
        # v1 runs as the article's script left it (blue started by hand, no state file); the role takes over with v2.
        compose(stack.project("blue"), "up", "-d", "--wait", project_dir=COLORED_BROKER_DIR, env=stack.env_for("blue"))
        ok(site.run("deploy.yml", "v2"))
        assert site.public() == ("green", "v2")
        yield site
    finally:
        proxy.stop()
        for color in ("blue", "green"):
            compose(stack.project(color), "down", "-v", "--remove-orphans", "--timeout", "5",
                    project_dir=COLORED_BROKER_DIR, env=stack.env_for(color), check=False)


def redis_cli(container, *args):
    return docker("exec", container, "redis-cli", *args).strip()


def test_cleanup_refuses_while_the_idle_colors_broker_holds_messages(colored):
    blue = project_containers(colored.stack.project("blue"))
    green = project_containers(colored.stack.project("green"))
    assert colored.states("blue", "worker") == ["exited"] and colored.states("blue", "redis") == ["running"]
    (blue_redis,) = blue["redis"]
    # v1's web still takes work after the switch (a client that kept its address): it lands in
    # blue's own broker, where no worker runs any more.
    colored.stack.enqueue("blue", n=4, seconds=0.1)
    assert redis_cli(blue_redis, "llen", "celery") == "4"

    with TrafficProbe(colored.proxy.url) as probe:
        result = failed(colored.run("cleanup.yml"))
    assert "Refusing to remove %s-blue" % colored.stack.app in result.stdout
    assert "4 message(s) in queue 'celery'" in result.stdout
    assert project_containers(colored.stack.project("blue")) == blue
    assert redis_cli(blue_redis, "llen", "celery") == "4"
    assert project_containers(colored.stack.project("green")) == green
    assert probe.failures == [] and {a[1:] for a in probe.answers} == {("green", "v2")}
    colored.assert_unlocked()

    # Let blue's own worker finish them, as the message says, then clean up.
    (blue_worker,) = blue["worker"]
    docker("start", blue_worker)
    try:
        deadline = time.monotonic() + 90
        while redis_cli(blue_redis, "-n", "1", "hlen", "demo:runs") != "4" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert redis_cli(blue_redis, "-n", "1", "hlen", "demo:runs") == "4", "blue's worker did not run the tasks"
    finally:
        docker("stop", "--time", "30", blue_worker)
    assert redis_cli(blue_redis, "llen", "celery") == "0"

    with TrafficProbe(colored.proxy.url) as probe:
        result = ok(colored.run("cleanup.yml"))
    assert project_containers(colored.stack.project("blue")) == {}
    assert project_containers(colored.stack.project("green")) == green
    assert probe.failures == [] and {a[1:] for a in probe.answers} == {("green", "v2")}
    colored.assert_unlocked()


def test_rollback_refuses_when_the_previous_colors_containers_are_gone(colored):
    assert project_containers(colored.stack.project("blue")) == {}
    green = project_containers(colored.stack.project("green"))
    state = colored.state_file.read_text()

    result = failed(colored.run("rollback.yml"))
    assert "Cannot roll back %s to blue: its containers are gone" % colored.stack.app in result.stdout
    assert "no container for redis, web, worker" in result.stdout
    assert "Deploy the old release instead" in result.stdout
    assert "The current release v2 on green keeps serving" in result.stdout
    assert colored.public() == ("green", "v2")
    assert project_containers(colored.stack.project("blue")) == {}
    assert project_containers(colored.stack.project("green")) == green
    assert all(container_state(cid)[0] == "running" for ids in green.values() for cid in ids)
    assert colored.state_file.read_text() == state
    colored.assert_unlocked()


def test_deploy_with_auto_cleanup_removes_the_old_color_after_the_checks(colored):
    # Green (v2) serves; blue was removed above. Deploying v1 with cleanup auto
    # brings blue back, switches, and removes green after the cleanup checks
    # (green's own broker is counted first: it is empty).
    result = ok(colored.run("deploy.yml", "v1", bluegreen_cleanup="auto"))
    assert colored.public() == ("blue", "v1")
    assert "removed %s-green" % colored.stack.app in result.stdout
    assert project_containers(colored.stack.project("green")) == {}
    assert all(s == "running" for s in colored.states("blue", "web") + colored.states("blue", "worker"))
    colored.assert_unlocked()
