# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""compose_project_color: the real module (main(), AnsibleModule, ColorManager) on a fake host.

The manager's Engine is a FakeEngine, the Compose CLI is answered through run_command by
a ComposeWorld (tests/support/fakes.py) built from captured output (docker inspect of the demo's
blue color, image inspect, `docker compose config`), which records every command run;
Celery's control, the HTTP check and the host's pressure are fakes at the functions the
module calls. Waits run on a fake clock.
"""

from __future__ import annotations

import functools
import json
import os

import pytest

from ansible.module_utils import basic
from ansible_collections.lowspec.bluegreen.plugins.module_utils import _quiesce, _state
from ansible_collections.lowspec.bluegreen.plugins.module_utils._docker import (
    LABEL_CONFIG_HASH,
    LABEL_PROJECT,
    LABEL_SERVICE,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._wait import Wait
from ansible_collections.lowspec.bluegreen.plugins.modules import compose_project_color

from tests.support.fakes import (
    DOCKER_BIN,
    Clock,
    ComposeWorld,
    FakeEngine,
    FakeGauge,
    FakeHealth,
    compose_parts,
    fixture_text,
    task,
)

IMAGE = json.loads(fixture_text("docker-image-inspect-demo-v1.json"))[0]
SECRET = "s3cr3t-value"


def captured(project="demo-blue"):
    """The captured containers of the demo (web, worker, beat; running), relabelled for `project`."""
    items = json.loads(fixture_text("docker-inspect-demo-blue.json"))
    for item in items:
        labels = item["Config"]["Labels"]
        labels[LABEL_PROJECT] = project
        item["Name"] = "/%s-%s-1" % (project, labels[LABEL_SERVICE])
        item["Id"] = project.split("-")[-1][0] + item["Id"][1:]
    return items


def world_of(*projects, images=None):
    """A host running the captured demo in `projects`, up to date with the compose files (no release given)."""
    items = [item for project in projects for item in captured(project)]
    world = ComposeWorld(items, images={"lowspec-demo:v1": IMAGE} if images is None else images)
    for item in captured():
        labels = item["Config"]["Labels"]
        world.hashes[(labels[LABEL_SERVICE], "")] = labels[LABEL_CONFIG_HASH]
    return world


def ids(world, project, service=None):
    return sorted(c["id"] for c in world.engine.containers(project) if service in (None, c["service"]))


@pytest.fixture
def project_src(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "compose.yml").write_text("services: {}\n")
    return str(src)


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(compose_project_color, "time", clock)
    monkeypatch.setattr(compose_project_color, "Wait", functools.partial(Wait, clock=clock.time))
    monkeypatch.setattr(_quiesce, "time", clock)
    monkeypatch.setattr(_quiesce, "Wait", functools.partial(Wait, clock=clock.time))
    monkeypatch.setattr(_state, "time", clock)
    return clock


@pytest.fixture
def color(run_main, monkeypatch, clock, project_src, tmp_path):
    """color(world, check_mode=False, diff=False, **params): one call of the module against `world`."""
    base = {"app": "demo", "project_src": project_src, "state_dir": str(tmp_path / "state"),
            "compose_command": [DOCKER_BIN, "compose"], "env": {"SECRET_TOKEN": SECRET},
            "web_ports": {"blue": 18080, "green": 18081}}

    def run(world, check_mode=False, diff=False, **params):
        world.clock = clock
        world.engine = FakeEngine(world)
        monkeypatch.setattr(compose_project_color, "Engine", lambda module, docker_host="": world.engine)
        monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kw: world.run_command(argv, **kw))
        for where in (compose_project_color, _quiesce):
            monkeypatch.setattr(where, "open_control",
                                lambda engine, docker_bin, containers, command, app, environ=None, note=None:
                                world.open_control(containers))
        args = dict(base, **params)
        args = dict((k, v) for k, v in args.items() if v is not None)
        return run_main(compose_project_color.main, args, check_mode=check_mode, diff=diff)

    run.base = base
    return run


def ok(result):
    assert not result["failed"], result["msg"]
    return result


def compose_calls(world, subcommand=None):
    """The Compose commands run, as (options, words); only those of `subcommand` when given."""
    found = [compose_parts(argv) for argv, _env, _cwd in world.calls]
    return [(o, w) for o, w in found if subcommand is None or w[:1] == [subcommand]]


def changing(world):
    return [e for e in world.log if e[0] in ("docker", "compose")]


# -- inspect: which color is active -------------------------------------------------------------

def test_inspect_of_nothing(color):
    world = world_of()
    result = ok(color(world))
    assert not result["changed"] and result["actions"] == []
    assert result["active_color"] is None and result["idle_color"] == "blue" and result["color"] == "blue"
    assert result["project"] == "demo-blue" and result["history"] == []
    assert set(result["services"]) == {"web", "worker", "beat"}
    assert all(entry["state"] == "absent" for entry in result["services"].values())
    assert changing(world) == []


def test_inspect_resolves_the_running_color_and_reports_its_services(color):
    world = world_of("demo-blue")
    result = ok(color(world, color="active"))
    assert (result["color"], result["active_color"], result["idle_color"]) == ("blue", "blue", "green")
    assert any("no active color is recorded, but blue's web is running" in w for w in result["warnings"])
    web = result["services"]["web"]
    assert web["state"] == "running" and web["health"] == "healthy" and web["image"] == "lowspec-demo:v1"
    assert web["containers"] == ids(world, "demo-blue", "web") and web["release"] is None
    assert result["services"]["beat"]["health"] == "none"


def test_the_running_color_wins_over_a_record_of_the_other(color, tmp_path):
    _state.write_state(str(tmp_path / "state"), "demo", dict(_state.empty_state("demo"), active_color="green"))
    result = ok(color(world_of("demo-blue"), color="idle"))
    assert result["active_color"] == "blue" and result["color"] == "green"
    assert any("the state file names green as active, but no green web container is running" in w
               for w in result["warnings"])


def test_color_active_with_nothing_running_fails_clearly(color):
    result = color(world_of(), color="active", state="stopped")
    assert result["failed"] and result["msg"].startswith("color=active: demo has no active color")


# -- prepared ---------------------------------------------------------------------------------------

def test_prepared_with_every_image_present_changes_nothing_and_reports_the_platform(color, tmp_path):
    journal = tmp_path / "demo.journal.json"
    entry = {"project": "demo-blue", "id": "a" * 64, "service": "worker", "action": "stopped", "queues": ["celery"]}
    journal.write_text(json.dumps({"entries": [entry]}))
    world = world_of("demo-blue")
    result = ok(color(world, state="prepared", release="v2", journal=str(journal)))
    assert not result["changed"] and changing(world) == []
    assert result["color"] == "green" and result["platform"] == "amd64"
    assert result["release_active"] is False and result["active_release"] is None
    assert result["journal"] == [entry]
    assert result["compose_command"] == [DOCKER_BIN, "compose"]


# -- lock and unlock: the deploy lock in the deploy's first and last calls ---------------------------

def lock_file(tmp_path):
    return tmp_path / "state" / "demo.lock"


def test_prepared_takes_the_lock_first_and_that_is_no_change(color, tmp_path):
    world = world_of("demo-blue")
    result = ok(color(world, state="prepared", release="v2",
                      lock={"token": "run-1", "holder": "ci deploying v2", "info": {"release": "v2"}}))
    held = json.loads(lock_file(tmp_path).read_text())
    assert (held["token"], held["holder"], held["info"]) == ("run-1", "ci deploying v2", {"release": "v2"})
    assert result["lock"]["token"] == "run-1" and result["lock_failed"] is False and not result["changed"]
    again = ok(color(world, state="prepared", release="v2", lock={"token": "run-1"}))
    assert again["lock"]["acquired_epoch"] == held["acquired_epoch"], "the same run's lock is kept"


def test_a_lock_another_run_holds_fails_the_call_before_anything_changes(color, tmp_path):
    world = world_of(images={})
    world.registry = {"lowspec-demo:v1": IMAGE}
    ok(color(world_of("demo-blue"), state="prepared", lock={"token": "run-1", "holder": "alice deploying v1"}))
    result = color(world, state="prepared", lock={"token": "run-2"})
    assert result["failed"] and result["lock_failed"] is True
    assert "alice deploying v1" in result["msg"] and result["lock"]["token"] == "run-1"
    assert changing(world) == [] and compose_calls(world, "pull") == [], "nothing pulled under another run's lock"


def test_unlock_releases_our_lock_once_the_call_has_finished(color, monkeypatch, clock, tmp_path):
    ok(color(world_of(), state="prepared", lock={"token": "run-1"}))
    monkeypatch.setattr(compose_project_color, "HealthChecker", FakeHealth([(False, 502, "HTTP 502")], clock))
    waiting = ok(color(world_of(), color="green", state="started", services=["web"], health={"deadline": 30},
                       wait_slice=10, journal=str(tmp_path / "demo.journal.json"), unlock="run-1"))
    assert waiting["waiting"] and "unlocked" not in waiting and lock_file(tmp_path).exists(), "the call repeats"
    done = ok(color(world_of(), color="green", state="started", services=["web"], wait=False, unlock="run-1"))
    assert done["unlocked"] is True and not lock_file(tmp_path).exists()


def test_unlock_leaves_another_runs_lock_in_place_with_a_warning(color, tmp_path):
    ok(color(world_of(), state="prepared", lock={"token": "run-2", "holder": "bob deploying v3"}))
    result = ok(color(world_of(), color="green", state="started", services=["web"], wait=False, unlock="run-1"))
    assert "unlocked" not in result and json.loads(lock_file(tmp_path).read_text())["token"] == "run-2"
    assert [w for w in result["warnings"] if "held by bob deploying v3" in w]


def test_prepared_pulls_the_missing_images(color):
    world = world_of(images={})
    world.registry = {"lowspec-demo:v1": IMAGE}
    result = ok(color(world, state="prepared"))
    ((_options, words),) = compose_calls(world, "pull")
    assert words == ["pull", "--quiet", "--ignore-buildable", "beat", "web", "worker"]
    assert result["changed"] and "lowspec-demo:v1" in world.images


def test_prepared_builds_a_missing_buildable_image_when_asked(color):
    world = world_of()
    world.config["services"]["web"] = dict(world.config["services"]["web"], image="demo-web:v2", build={"context": "."})
    result = ok(color(world, state="prepared", build="missing", services=["web"]))
    assert [w for _o, w in compose_calls(world) if w[0] in ("build", "pull")] == [["build", "web"]]
    assert result["changed"]


def test_prepared_fails_naming_a_missing_image_that_nothing_provides(color):
    world = world_of(images={})
    result = color(world, state="prepared", pull="never")
    assert result["failed"] and "lowspec-demo:v1 (service beat)" in result["msg"] and "pull=never" in result["msg"]
    assert changing(world) == [] and result["actions"] == []


@pytest.mark.parametrize("arch, variant", [("arm64", "v8"), ("arm", "v7")])
def test_prepared_refuses_an_image_of_another_architecture(color, arch, variant):
    world = world_of("demo-blue", images={"lowspec-demo:v1": dict(IMAGE, Architecture=arch, Variant=variant)})
    result = color(world, state="prepared")
    assert result["failed"] and "is built for %s" % ("arm64" if arch == "arm64" else "arm/v7") in result["msg"]
    assert "the host (docker_host default) is amd64" in result["msg"] and changing(world) == []


def test_prepared_warns_about_a_32_bit_arm_image_on_a_64_bit_arm_host(color):
    world = world_of(images={"lowspec-demo:v1": dict(IMAGE, Architecture="arm", Variant="v7")})
    world.info = {"Architecture": "aarch64"}
    result = ok(color(world, state="prepared"))
    assert result["platform"] == "arm64"
    assert any("built for arm/v7 on a arm64 host" in w for w in result["warnings"])


def test_prepared_says_when_the_release_is_already_active_and_running(color):
    world = world_of()
    ok(color(world, color="blue", state="started", release="v1", activate=True))
    result = ok(color(world, state="prepared", release="v1"))
    assert result["release_active"] is True and result["active_release"] == "v1"
    assert ok(color(world, state="prepared", release="v2"))["release_active"] is False


def test_active_release_is_read_from_the_active_webs_label_else_from_the_state_file(color, tmp_path):
    world = world_of()
    ok(color(world, color="blue", state="started", release="v3"))
    recorded = dict(_state.empty_state("demo"), active_color="blue", release="v2")
    _state.write_state(str(tmp_path / "state"), "demo", recorded)
    result = ok(color(world, state="prepared", release="v3"))
    assert result["active_release"] == "v3", "what runs, not what was recorded"
    assert result["release_active"] is False, "the record says v2: a deploy of v3 is still to be recorded"
    unlabelled = world_of("demo-blue")
    assert ok(color(unlabelled, state="prepared"))["active_release"] == "v2", "no label: the state file's"


def test_prepared_fails_when_there_is_no_room(color, monkeypatch):
    gauge = FakeGauge([{"settled": False, "exceeded": ["disk free 500 MB < 1024 MB under /var/lib/docker"]}])
    monkeypatch.setattr(compose_project_color, "Gauge", gauge)
    world = world_of()
    result = color(world, state="prepared", pressure={})
    assert result["failed"] and result["msg"].startswith("host pressure is too high before the deploy of demo-blue")
    assert "disk free 500 MB" in result["msg"] and changing(world) == []


def test_the_shared_project_is_started_only_when_it_is_not_up_to_date(color, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "compose.yaml").write_text("services: {}\n")
    world = world_of()
    first = ok(color(world, state="prepared", shared={"project_src": str(shared), "wait_timeout": 30}))
    ((options, words),) = compose_calls(world, "up")
    assert options["--project-name"] == ["demo-shared"] and options["--file"] == ["compose.yaml"]
    assert words == ["up", "--detach", "--wait", "--wait-timeout", "30"]
    assert first["shared"] == {"project": "demo-shared", "started": ["redis"]} and first["changed"]
    second = ok(color(world, state="prepared", shared={"project_src": str(shared)}))
    assert second["shared"] == {"project": "demo-shared", "started": []} and not second["changed"]
    assert len(compose_calls(world, "up")) == 1
    world.shared_config["services"]["redis"]["command"] = ["redis-server", "--save", ""]
    third = ok(color(world, state="prepared", shared={"project_src": str(shared)}))
    assert third["shared"]["started"] == ["redis"] and len(compose_calls(world, "up")) == 2


# -- started ------------------------------------------------------------------------------------------

def test_started_up_to_date_runs_nothing(color):
    world = world_of("demo-blue")
    result = ok(color(world, color="blue", state="started"))
    assert not result["changed"] and result["actions"] == [] and result["reasons"] == {}
    assert changing(world) == []


def test_started_recreates_only_what_changed_with_the_release_labels_file_last(color, tmp_path):
    _state.write_state(str(tmp_path / "state"), "demo", dict(_state.empty_state("demo"), active_color="blue"))
    world = world_of("demo-blue")
    world.hashes[("web", "")] = "0" * 64  # the compose files of web changed
    result = ok(color(world, color="blue", state="started"))
    assert result["changed"] and result["reasons"] == {"web": "configuration changed"}
    ((options, words),) = compose_calls(world, "up")
    assert words == ["up", "--detach", "--no-build", "--pull", "never", "--timeout", "60", "web"]
    assert options["--file"][0] == "compose.yml"
    assert os.path.basename(options["--file"][1]).startswith("bluegreen-labels-")
    assert not os.path.exists(options["--file"][1]), "the generated file is removed when the call ends"
    assert any("demo-blue, the active color (blue)" in w for w in result["warnings"])
    assert result["actions"] == [" ".join(["docker"] + argv[1:]) for argv, _e, _c in world.calls
                                 if compose_parts(argv)[1][:1] == ["up"]]


def test_started_labels_every_new_container_with_its_release(color):
    world = world_of()
    result = ok(color(world, color="green", state="started", release="v2"))
    assert set(result["reasons"]) == {"web", "worker", "beat"}
    assert {c["service"]: c["release"] for c in world.engine.containers("demo-green")} == {
        "web": "v2", "worker": "v2", "beat": "v2"}
    assert {name: entry["release"] for name, entry in result["services"].items()} == {
        "web": "v2", "worker": "v2", "beat": "v2"}
    again = ok(color(world, color="green", state="started", release="v2"))
    assert not again["changed"] and again["reasons"] == {}
    newer = ok(color(world, color="green", state="started", release="v3"))
    assert newer["reasons"] == {"web": "configuration changed", "worker": "configuration changed",
                                "beat": "configuration changed"}


def test_no_config_hash_is_asked_for_services_without_containers(color):
    world = world_of()
    ok(color(world, color="blue", state="started"))
    assert compose_calls(world, "config")[1:] == [], "only `config --format json`: no container, no hash to compare"
    world = world_of("demo-blue")
    for cid in ids(world, "demo-blue", "beat"):
        del world.items[cid]
    ok(color(world, color="blue", state="started"))
    (hashes,) = [w for _o, w in compose_calls(world, "config") if w[1] == "--hash"]
    assert hashes == ["config", "--hash", "web,worker"]


def test_env_reaches_compose_by_its_environment_never_its_command_line(color):
    world = world_of()
    result = ok(color(world, color="green", state="started", release="v2", variables={"WORKERS": 2}))
    for argv, environ, _cwd in world.calls:
        assert SECRET not in " ".join(argv)
        assert environ["SECRET_TOKEN"] == SECRET and environ["WORKERS"] == "2"
        assert environ["BLUEGREEN_COLOR"] == "green" and environ["BLUEGREEN_RELEASE"] == "v2"
        assert environ["BLUEGREEN_WEB_PORT"] == "18081"
    assert SECRET not in json.dumps(result)


def test_env_cannot_set_the_color_the_module_acts_on(color):
    world = world_of()
    result = ok(color(world, color="green", state="started", env={"BLUEGREEN_COLOR": "blue"}))
    assert all(environ["BLUEGREEN_COLOR"] == "green" for _a, environ, _c in world.calls)
    assert any("env sets BLUEGREEN_COLOR=blue; the module sets it to green" in w for w in result["warnings"])


def test_started_in_check_mode_reports_and_changes_nothing(color):
    world = world_of()
    result = ok(color(world, color="blue", state="started", services=["web"], check_mode=True, diff=True))
    assert result["changed"] and result["reasons"] == {"web": "no container"}
    (action,) = result["actions"]
    assert action.startswith("docker compose --ansi never --project-name demo-blue ") and action.endswith(" web")
    assert changing(world) == [] and world.items == {}
    assert result["diff"] == {"before": {"web": {"state": "absent", "health": "none"}},
                              "after": {"web": {"state": "running", "health": "healthy"}}}


def test_started_with_a_missing_image_fails_before_anything_starts(color):
    world = world_of(images={})
    result = color(world, color="blue", state="started")
    assert result["failed"] and "image lowspec-demo:v1 (service beat) of demo-blue is not present locally" in result["msg"]
    assert "state=prepared" in result["msg"] and changing(world) == []


@pytest.mark.parametrize("arch, variant", [("arm64", "v8"), ("arm", "v7")])
def test_started_refuses_an_image_of_another_architecture_before_anything_starts(color, arch, variant):
    world = world_of(images={"lowspec-demo:v1": dict(IMAGE, Architecture=arch, Variant=variant)})
    result = color(world, color="blue", state="started")
    assert result["failed"] and "is built for %s" % ("arm64" if arch == "arm64" else "arm/v7") in result["msg"]
    assert "no container was touched" in result["msg"] and changing(world) == []


@pytest.mark.parametrize("daemon, image", [("arm", ("arm", "v7")), ("arm64", ("arm64", "v8")),
                                           ("amd64", ("amd64", ""))])
def test_started_runs_an_image_the_host_runs_natively(color, daemon, image):
    world = world_of(images={"lowspec-demo:v1": dict(IMAGE, Architecture=image[0], Variant=image[1])})
    world.arch = daemon
    result = ok(color(world, color="blue", state="started", services=["web"]))
    assert result["changed"] and not [w for w in result["warnings"] if "built for" in w]


def test_started_waits_for_docker_health_and_fails_at_once_when_a_container_exits(color):
    world = world_of()
    world.crash = {"web": 3}
    result = color(world, color="blue", state="started", services=["web", "worker"], wait_timeout=300)
    assert result["failed"]
    assert result["msg"] == ("demo-blue: demo-blue-web-1 exited (exit code 3); its last log lines: booting | "
                             "failed to boot")
    assert result["logs"] == {"web": ["booting", "failed to boot"]}
    assert world.clock.now - 1800000000.0 < 1, "not waited for: it failed at the first look"
    assert [e for e in changing(world) if e[0] == "compose"] == [("compose", "up", ("web", "worker"))]


def test_started_fails_when_a_service_is_not_healthy_in_time(color):
    world = world_of()
    world.start_health = "starting"
    result = color(world, color="blue", state="started", services=["worker"], wait_timeout=7)
    assert result["failed"] and result["msg"].startswith("demo-blue: not ready after wait_timeout=7s:")
    assert "demo-blue-worker-1 (running, health starting)" in result["msg"] and "worker" in result["logs"]


def test_started_waits_for_the_web_on_its_own_port(color, monkeypatch):
    health = FakeHealth([(True, 200, None)])
    monkeypatch.setattr(compose_project_color, "HealthChecker", health)
    world = world_of()
    result = ok(color(world, color="green", state="started", services=["web"], release="v2", health={}))
    (settings,) = health.settings
    assert settings["url"] == "http://127.0.0.1:18081/health/"
    assert [(p, v) for p, _s, v in settings["json_match"]] == [("color", "green"), ("release", "v2")]
    assert result["health"]["status"] == 200


def nginx_switch(tmp_path, **extra):
    return dict({"upstream_path": str(tmp_path / "demo-upstream.conf"), "content": "upstream demo { server 127.0.0.1:18081; }\n",
                 "test_command": ["nginx-test"], "reload_command": ["nginx-reload"]}, **extra)


def test_switch_moves_traffic_once_the_web_is_healthy_in_the_same_call(color, monkeypatch, tmp_path):
    health = FakeHealth([(True, 200, None)])
    monkeypatch.setattr(compose_project_color, "HealthChecker", health)
    world = world_of()
    world.programs = {"nginx-test": (0, "", ""), "nginx-reload": (0, "", "")}
    result = ok(color(world, color="green", state="started", services=["web"], release="v2", health={},
                      switch=nginx_switch(tmp_path)))
    steps = [e[:2] if e[0] == "compose" else e[1] for e in changing(world) + [e for e in world.log if e[0] == "program"]]
    assert steps[0] == ("compose", "up") and steps[1:] == [("nginx-test",), ("nginx-reload",)]
    assert (tmp_path / "demo-upstream.conf").read_text() == nginx_switch(tmp_path)["content"]
    assert result["switched"] is True and result["switch"]["failed"] is False and result["changed"] is True
    second = ok(color(world, color="green", state="started", services=["web"], release="v2", health={},
                      switch=nginx_switch(tmp_path)))
    assert second["changed"] is False and second["switched"] is True, "nothing to do the second time"


def test_a_web_that_never_gets_healthy_is_never_switched_to(color, monkeypatch, clock, tmp_path):
    monkeypatch.setattr(compose_project_color, "HealthChecker", FakeHealth([(False, 502, "HTTP 502")], clock))
    world = world_of()
    world.programs = {"nginx-test": (0, "", ""), "nginx-reload": (0, "", "")}
    result = color(world, color="green", state="started", services=["web"], health={"deadline": 30},
                   switch=nginx_switch(tmp_path))
    assert result["failed"] and "not healthy" in result["msg"]
    assert not (tmp_path / "demo-upstream.conf").exists() and not any(e[0] == "program" for e in world.log)
    assert result["switch"]["switched"] is False and result["switch"]["failed"] is False and not result.get("switched")


def test_a_rejected_upstream_fails_in_the_switch_and_keeps_the_old_file(color, monkeypatch, tmp_path):
    monkeypatch.setattr(compose_project_color, "HealthChecker", FakeHealth([(True, 200, None)]))
    upstream = tmp_path / "demo-upstream.conf"
    upstream.write_text("upstream demo { server 127.0.0.1:18080; }\n")
    world = world_of()
    world.programs = {"nginx-test": (1, "", "nginx: [emerg] unexpected end of file\n"), "nginx-reload": (0, "", "")}
    result = color(world, color="green", state="started", services=["web"], health={}, switch=nginx_switch(tmp_path))
    assert result["failed"] and result["msg"].startswith("nginx rejected the upstream for green")
    assert result["switch"]["failed"] is True and result["switched"] is False
    assert upstream.read_text() == "upstream demo { server 127.0.0.1:18080; }\n"
    assert ("program", ("nginx-reload",)) not in world.log


def test_switch_without_the_web_fails_before_anything_starts(color, tmp_path):
    world = world_of()
    result = color(world, color="green", state="started", services=["worker"], switch=nginx_switch(tmp_path))
    assert result["failed"] and result["msg"] == (
        "switch moves traffic to the web this call starts: services must include web")
    assert changing(world) == []
    result = color(world, color="green", state="started", services=["web"], switch=nginx_switch(tmp_path, content=""))
    assert result["failed"] and result["msg"].startswith("content is required with proxy=nginx")
    assert changing(world) == []


def test_an_unhealthy_web_fails_with_the_checks_message(color, monkeypatch, clock):
    monkeypatch.setattr(compose_project_color, "HealthChecker", FakeHealth([(False, 502, "HTTP 502")], clock))
    result = color(world_of(), color="green", state="started", services=["web"], health={"deadline": 30})
    assert result["failed"]
    assert result["msg"].startswith("demo-green: the new web is not healthy within health.deadline=30s:")


def test_a_health_wait_longer_than_a_slice_returns_waiting(color, monkeypatch, clock, tmp_path):
    journal = tmp_path / "demo.journal.json"

    monkeypatch.setattr(compose_project_color, "HealthChecker", FakeHealth([(False, 502, "HTTP 502")], clock))
    world = world_of()
    result = ok(color(world, color="green", state="started", services=["web"], health={"deadline": 30},
                      wait_slice=10, journal=str(journal)))
    assert result["waiting"] is True
    assert result["progress"] == ("demo-green healthy on its own port (HTTP 502): 10 s of 30 s waited, 20 s left")
    second = ok(color(world, color="green", state="started", services=["web"], health={"deadline": 30},
                      wait_slice=10, journal=str(journal)))
    assert second["progress"].endswith("20 s of 30 s waited, 10 s left")


# -- quiesce: the old color off the CPU, in the new web's call ---------------------------------------

def blue_with_workers(world):
    for cid in ids(world, "demo-blue", "worker"):
        world.worker(cid)
    return world


def test_quiesce_stops_the_old_beat_and_drains_the_old_workers_before_the_new_web_starts(color, tmp_path):
    journal = tmp_path / "demo.journal.json"
    world = blue_with_workers(world_of("demo-blue"))
    beat, = ids(world, "demo-blue", "beat")
    worker, = ids(world, "demo-blue", "worker")
    world.workers[worker].tasks = [task("t-1", active_polls=2)]
    result = ok(color(world, color="green", state="started", services=["web"], celery={"app": "tasks"},
                      journal=str(journal), quiesce={}))
    changes = changing(world)
    assert changes.index(("docker", "stop_in_background", ("beat",))) < changes.index(("compose", "up", ("web",)))
    assert changes.index(("docker", "stop_in_background", ("worker",))) < changes.index(("compose", "up", ("web",)))
    quiesce = result["quiesce"]
    assert quiesce["failed"] is False and quiesce["drained"] is True and quiesce["project"] == "demo-blue"
    assert [(c["id"], c["action"]) for c in quiesce["containers"]] == [(beat, "stopped"), (worker, "stopped")]
    assert all(c["at"] for c in quiesce["containers"]), "when each was written down, before its change"
    assert [e["id"] for e in json.loads(journal.read_text())["entries"]] == [beat, worker]
    assert quiesce["celery"]["transport"] == "agent" and "actions" not in quiesce
    assert any("stop" in a and worker in a for a in result["actions"]), "its actions are the call's"
    assert result["changed"] and world.state(ids(world, "demo-green", "web")[0]) == "running"

    world.finish_stops()
    again = ok(color(world, color="green", state="started", services=["web"], celery={"app": "tasks"},
                     journal=str(journal), quiesce={}))
    assert not again["changed"] and [c["id"] for c in again["quiesce"]["containers"]] == [beat, worker]
    assert "celery" not in again["quiesce"], "nothing left to drain: no Celery agent booted"


def test_a_drain_longer_than_a_slice_returns_waiting_and_starts_nothing(color, clock, tmp_path):
    journal = tmp_path / "demo.journal.json"
    world = blue_with_workers(world_of("demo-blue"))
    worker, = ids(world, "demo-blue", "worker")
    world.workers[worker].tasks = [task("t-1", active_polls=10 ** 6)]
    result = ok(color(world, color="green", state="started", services=["web"], celery={"app": "tasks"},
                      journal=str(journal), quiesce={"drain_timeout": 60}, wait_slice=2))
    assert result["waiting"] and "demo-blue" in result["progress"]
    assert ("compose", "up", ("web",)) not in world.log and world.state(worker) == "running"


def test_a_failed_quiesce_is_named_and_nothing_of_the_new_color_starts(color, tmp_path):
    world = blue_with_workers(world_of("demo-blue"))
    world.app_error = "No module named 'nosuchapp'"
    result = color(world, color="green", state="started", services=["web"], celery={"app": "nosuchapp"},
                   journal=str(tmp_path / "demo.journal.json"), quiesce={})
    assert result["failed"] and "nosuchapp" in result["msg"] and result["quiesce"]["failed"] is True
    assert world.engine.containers("demo-green") == []


@pytest.mark.parametrize("quiesce, params, fragment", [
    ({}, {}, "quiesce needs celery"),
    ({"color": "green"}, {"celery": {"app": "tasks"}}, "quiesce.color green is the color this call starts"),
    ({"mode": "pause", "drain_timeout": 300, "max_pause": 3300}, {"celery": {"app": "tasks"}}, "visibility_timeout"),
])
def test_bad_quiesce_input_fails_before_anything_changes(color, quiesce, params, fragment):
    world = blue_with_workers(world_of("demo-blue"))
    result = color(world, color="green", state="started", services=["web"], quiesce=quiesce, **params)
    assert result["failed"] and fragment in result["msg"], result["msg"]
    assert changing(world) == []


# -- retire and grow: shrink mode's end, in the new workers' call ------------------------------------

def node(world, cid):
    return "celery@" + world.engine.inspect([cid])[0]["hostname"]


def retire_call(color, world, journal, **params):
    return color(world, color="green", state="started", release="v2", services=["worker", "beat"],
                 celery={"app": "tasks"}, other_beat="stop", journal=str(journal), activate=True,
                 record={"took_s": 1}, **params)


def test_retire_drains_and_stops_the_old_workers_once_the_new_ones_answer_then_records(color, tmp_path):
    journal = tmp_path / "demo.journal.json"
    world = blue_with_workers(world_of("demo-blue"))
    old_worker, = ids(world, "demo-blue", "worker")
    old_beat, = ids(world, "demo-blue", "beat")
    world.workers[old_worker].tasks = [task("t-1", active_polls=2)]
    result = ok(retire_call(color, world, journal, retire={"same_broker": True}))
    new_worker, = ids(world, "demo-green", "worker")
    new_beat, = ids(world, "demo-green", "beat")
    log = world.log
    cancel = [e for e in log if e[:2] == ("celery-change", "cancel_consumer")]
    assert [e[3] for e in cancel] == [(node(world, old_worker),)], "only the old worker stops consuming"
    assert log.index(("compose", "up", ("worker",))) < log.index(cancel[0]), "retired once the new ones answered"
    assert log.index(("compose", "up", ("beat",))) < log.index(cancel[0])
    assert world.state(old_worker) == world.state(old_beat) == "exited"
    assert world.state(new_worker) == world.state(new_beat) == "running"
    retire = result["retire"]
    assert retire["failed"] is False and retire["drained"] is True and retire["project"] == "demo-blue"
    # What the deploy left stopped: the old beat (handed over) and the retired worker, as the journal lists them.
    assert [(c["id"], c["action"]) for c in retire["containers"]] == [(old_beat, "stopped"), (old_worker, "stopped")]
    assert len(world.control_opens) == 1, "one Celery agent for readiness and retire (same_broker)"
    entry = result["history"][0]
    assert result["recorded_color"] == "green" and entry["took_s"] == 1 and entry["drained"] is True
    assert [c["id"] for c in entry["stopped"]] == [old_beat, old_worker] and entry["still_active"] == 0
    assert not journal.exists(), "recorded: the journal is done with"


def test_retire_without_same_broker_asks_celery_from_the_old_color(color, tmp_path):
    world = blue_with_workers(world_of("demo-blue"))
    ok(retire_call(color, world, tmp_path / "demo.journal.json", retire={}))
    assert world.control_opens == [["worker"], ["web", "worker"]], "its own agent, in the old color's web"


def test_a_retire_drain_longer_than_a_slice_returns_waiting_and_records_nothing(color, tmp_path):
    journal = tmp_path / "demo.journal.json"
    world = blue_with_workers(world_of("demo-blue"))
    old_worker, = ids(world, "demo-blue", "worker")
    world.workers[old_worker].tasks = [task("t-1", active_polls=10 ** 6)]
    result = ok(retire_call(color, world, journal, retire={"same_broker": True, "drain_timeout": 60}, wait_slice=2))
    assert result["waiting"] and "demo-blue" in result["progress"] and "recorded" not in result
    assert world.state(old_worker) == "running" and journal.exists()


def test_grow_takes_the_new_pools_to_full_size_before_the_record(color, tmp_path):
    world = world_of()
    world.new_worker = {"pool": 1}
    result = ok(color(world, color="green", state="started", release="v2", services=["worker"],
                      celery={"app": "tasks"}, activate=True, grow={"processes": 2}))
    worker, = ids(world, "demo-green", "worker")
    assert world.workers[worker].pool == 2
    assert result["grow"]["failed"] is False and result["grow"]["pools"][worker] == {"before": 1, "after": 2}
    assert ("celery-change", "pool_grow", 1, (node(world, worker),)) in world.log
    assert result["recorded_color"] == "green" and len(world.control_opens) == 1


@pytest.mark.parametrize("params, fragment", [
    ({"retire": {}}, "retire needs celery"),
    ({"retire": {"color": "green"}, "celery": {"app": "tasks"}}, "retire.color green is the color this call starts"),
    ({"retire": {}, "celery": {"app": "tasks"}, "services": ["web"]}, "services must include a worker service"),
    ({"grow": {"processes": 2}}, "grow needs celery"),
    ({"grow": {"processes": 2}, "celery": {"app": "tasks"}, "services": ["web"]}, "services must include a worker"),
    ({"grow": {"processes": 0}, "celery": {"app": "tasks"}}, "processes must be 1 or more"),
])
def test_bad_retire_or_grow_input_fails_before_anything_changes(color, params, fragment):
    world = blue_with_workers(world_of("demo-blue"))
    params = dict({"services": ["worker"]}, **params)
    result = color(world, color="green", state="started", **params)
    assert result["failed"] and fragment in result["msg"], result["msg"]
    assert changing(world) == []


def test_started_waits_for_the_workers_to_answer_celerys_ping(color):
    world = world_of()
    result = ok(color(world, color="green", state="started", services=["web", "worker"],
                      celery={"app": "tasks"}))
    worker = ids(world, "demo-green", "worker")[0]
    assert result["workers_ready"] == ["celery@" + worker[:12]]
    assert world.control_opens == [["web", "worker"]], "asked from the web, the workers as a fallback"
    assert result["celery"]["transport"] == "agent" and result["celery"]["container"] == "demo-green-web-1"


def test_beat_starts_after_the_workers(color):
    world = world_of()
    ok(color(world, color="green", state="started", celery={"app": "tasks"}))
    ups = [e for e in world.log if e[0] == "compose"]
    assert ups == [("compose", "up", ("web", "worker")), ("compose", "up", ("beat",))]
    first_ping = next(i for i, e in enumerate(world.log) if e[:2] == ("celery", "ping"))
    assert first_ping < world.log.index(("compose", "up", ("beat",))), "the workers answered first"


def test_beat_is_refused_while_the_other_colors_beat_runs(color):
    world = world_of("demo-blue")
    result = color(world, color="green", state="started", celery={"app": "tasks"})
    assert result["failed"] and result["msg"].startswith("the beat of demo-blue is still running (demo-blue-beat-1)")
    assert "other_beat=stop" in result["msg"]
    assert ("compose", "up", ("beat",)) not in world.log and world.engine.containers("demo-green", ["beat"]) == []
    assert world.state(ids(world, "demo-blue", "beat")[0]) == "running"


def test_in_check_mode_the_other_colors_beat_is_a_warning(color):
    world = world_of("demo-blue")
    result = ok(color(world, color="green", state="started", celery={"app": "tasks"}, check_mode=True))
    assert any("the beat of demo-blue is still running" in w for w in result["warnings"])
    assert changing(world) == [] and world.state(ids(world, "demo-blue", "beat")[0]) == "running"


def test_other_beat_stop_stops_it_journaled_first_then_starts_this_beat(color, tmp_path):
    journal = tmp_path / "demo.journal.json"
    world = world_of("demo-blue")
    old_beat = ids(world, "demo-blue", "beat")[0]
    journaled = []
    world.before["stop"] = lambda stopped: journaled.append(json.loads(journal.read_text())["entries"])
    result = ok(color(world, color="green", state="started", celery={"app": "tasks"}, other_beat="stop",
                      journal=str(journal), stop_timeout=20))
    assert journaled == [[{"project": "demo-blue", "id": old_beat, "service": "beat", "action": "stopped",
                           "queues": [], "at": 1800000000.0}]], "written down before the stop, for a rescue"
    assert result["other_beat_stopped"] == [old_beat] and world.state(old_beat) == "exited"
    assert "stop --time 20 %s" % old_beat in result["actions"]
    assert world.log.index(("docker", "stop", ("beat",))) < world.log.index(("compose", "up", ("beat",)))
    assert world.state(ids(world, "demo-green", "beat")[0]) == "running"


def stopping_blue(world, clock, journal, polls):
    """blue's worker and beat told to stop `polls` looks ago by a quiesce (journaled), still shutting down."""
    told = [ids(world, "demo-blue", "worker")[0], ids(world, "demo-blue", "beat")[0]]
    journal.write_text(json.dumps({"entries": [
        {"project": "demo-blue", "id": cid, "service": service, "action": "stopped", "queues": queues,
         "stop_issued_at": clock.time() - 1} for cid, service, queues in zip(told, ("worker", "beat"), (["celery"], []))
    ]}))
    for cid in told:
        world.stopping[cid] = polls
    return told


def test_await_other_sees_the_old_color_exited_and_puts_back_its_orphans_before_the_workers_start(color, clock, tmp_path):
    journal = tmp_path / "demo.journal.json"
    world = world_of("demo-blue")
    ok(color(world, color="green", state="started", services=["web"], journal=str(journal)))
    told = stopping_blue(world, clock, journal, polls=3)
    world.broker.unacked_entry("tag-1", "t-1", delivered_at=clock.time() - 5)
    world.broker.subscribers = 0
    result = ok(color(world, color="green", state="started", services=["worker", "beat"], celery={"app": "tasks"},
                      await_other=True, journal=str(journal)))
    assert [world.state(cid) for cid in told] == ["exited", "exited"]
    assert result["broker_checked"] is True and [r["id"] for r in result["restored"]] == ["t-1"]
    assert world.broker.requeued == ["tag-1"]
    restore = world.log.index(("celery-change", "restore", ("tag-1",)))
    assert restore < world.log.index(("compose", "up", ("worker",))), "put back before a new worker starts"
    assert result["timings"]["other_exited"] >= 0 and world.state(ids(world, "demo-green", "beat")[0]) == "running"
    assert len(world.controls) == 1, "one Celery agent for the broker and the readiness"


def test_await_other_returns_waiting_while_the_old_color_shuts_down(color, clock, tmp_path):
    journal = tmp_path / "demo.journal.json"
    world = world_of("demo-blue")
    ok(color(world, color="green", state="started", services=["web"], journal=str(journal)))
    stopping_blue(world, clock, journal, polls=10 ** 6)
    result = ok(color(world, color="green", state="started", services=["worker", "beat"], celery={"app": "tasks"},
                      await_other=True, journal=str(journal), wait_slice=2, stop_timeout=30))
    assert result["waiting"] and "stopping (warm shutdown) before the workers of demo-green start" in result["progress"]
    assert ("compose", "up", ("worker",)) not in world.log


def test_await_other_fails_without_starting_the_workers_when_the_old_color_never_exits(color, clock, tmp_path):
    journal = tmp_path / "demo.journal.json"
    world = world_of("demo-blue")
    ok(color(world, color="green", state="started", services=["web"], journal=str(journal)))
    stopping_blue(world, clock, journal, polls=10 ** 6)
    result = color(world, color="green", state="started", services=["worker", "beat"], celery={"app": "tasks"},
                   await_other=True, journal=str(journal), stop_timeout=5)
    assert result["failed"] and "still running 20 s after they were told to stop" in result["msg"]
    assert "the workers of demo-green were not started" in result["msg"]
    assert world.engine.containers("demo-green", ["worker"]) == []


def test_activate_records_the_color_and_clears_the_journal(color, tmp_path):
    journal = tmp_path / "demo.journal.json"
    journal.write_text(json.dumps({"entries": [{"project": "demo-blue", "id": "b" * 64, "service": "worker",
                                                "action": "stopped", "queues": ["celery"]}]}))
    world = world_of()
    result = ok(color(world, color="green", state="started", release="v2", activate=True, journal=str(journal),
                      record={"took_s": 12}))
    assert result["recorded"] is True and result["recorded_color"] == "green" and result["release"] == "v2"
    assert result["active_color"] == "green" and result["history"][0]["took_s"] == 12
    assert not journal.exists()
    assert _state.read_state(str(tmp_path / "state"), "demo")["active_color"] == "green"


def test_activate_is_not_recorded_before_the_wait_is_over(color, monkeypatch, clock, tmp_path):
    journal = tmp_path / "demo.journal.json"
    monkeypatch.setattr(compose_project_color, "HealthChecker", FakeHealth([(False, 502, "HTTP 502")], clock))
    result = ok(color(world_of(), color="green", state="started", services=["web"], health={"deadline": 30},
                      wait_slice=10, journal=str(journal), activate=True))
    assert result["waiting"] and "recorded" not in result and result["recorded_color"] is None
    assert journal.exists(), "the wait's start is kept for the next call"


def test_activate_returns_the_state_file_diff(color):
    result = ok(color(world_of(), color="green", state="started", release="v2", activate=True, diff=True))
    assert result["diff"] == {"before": {"active_color": None, "release": None},
                              "after": {"active_color": "green", "release": "v2"}}


def test_started_waits_for_host_pressure_only_when_something_starts(color, monkeypatch):
    gauge = FakeGauge([{"settled": True}])
    monkeypatch.setattr(compose_project_color, "Gauge", gauge)
    ok(color(world_of("demo-blue"), color="blue", state="started", pressure={}))
    assert gauge.calls == [], "up to date: nothing starts, nothing to wait for"
    result = ok(color(world_of(), color="blue", state="started", pressure={"mem_available_min_mb": 256}))
    assert gauge.calls[0]["limits"]["mem_available_min_mb"] == 256 and result["pressure"] == {"cpu_some_avg10": 1.0}


def test_started_fails_when_the_host_does_not_settle(color, monkeypatch):
    monkeypatch.setattr(compose_project_color, "Gauge", FakeGauge([{"settled": False, "exceeded": [
        "cpu pressure some avg10 95% > 80%"]}]))
    world = world_of()
    result = color(world, color="blue", state="started", pressure={"wait_timeout": 0})
    assert result["failed"] and result["msg"] == ("host pressure is too high before the start of demo-blue (checked "
                                                  "once, wait_timeout=0): cpu pressure some avg10 95% > 80%")
    assert changing(world) == []


# -- stopped / paused / unpaused --------------------------------------------------------------------------

def test_stopped_returns_exactly_the_running_containers_it_stopped(color):
    world = world_of("demo-blue")
    worker = ids(world, "demo-blue", "worker")
    result = ok(color(world, color="blue", state="stopped", services=["worker"], stop_timeout=300, diff=True))
    assert result["changed"] and result["containers"] == worker
    assert result["actions"] == ["stop --time 300 %s" % worker[0]]
    assert result["diff"]["after"] == {"worker": {"state": "exited", "health": "healthy"}}
    again = ok(color(world, color="blue", state="stopped", services=["worker"]))
    assert not again["changed"] and again["containers"] == [] and again["actions"] == []


def test_stopped_returns_the_logs_it_was_asked_for_read_before_the_stop(color):
    world = world_of("demo-blue")
    web = ids(world, "demo-blue", "web")[0]
    world.logs[web] = ["GET /health/ 200"]
    result = ok(color(world, color="blue", state="stopped", services=["web"], logs=["web"]))
    assert result["logs"] == {"web": ["GET /health/ 200"]}


def test_stopped_in_check_mode_stops_nothing(color):
    world = world_of("demo-blue")
    result = ok(color(world, color="blue", state="stopped", check_mode=True))
    assert result["changed"] and len(result["containers"]) == 3 and result["actions"][0].startswith("stop --time 60 ")
    assert changing(world) == [] and all(world.is_running(cid) for cid in world.items)


def test_stop_pause_unpause_never_run_compose_and_keep_the_same_containers(color):
    world = world_of("demo-blue")
    before = sorted(world.items)
    ok(color(world, color="blue", state="stopped", services=["beat"]))
    paused = ok(color(world, color="blue", state="paused"))
    assert len(paused["containers"]) == 2, "beat is stopped: only the running ones are frozen"
    back = ok(color(world, color="blue", state="unpaused"))
    assert sorted(back["containers"]) == before
    assert [e[1] for e in changing(world)] == ["stop", "pause", "unpause", "start"]
    assert [w for _o, w in compose_calls(world)] == [["config", "--format", "json"]] * 3, \
        "Compose only reads the configuration (to check the services)"
    assert sorted(world.items) == before and all(world.state(cid) == "running" for cid in world.items)


def test_unpaused_refuses_containers_of_another_release_naming_it(color):
    world = world_of()
    ok(color(world, color="blue", state="started", release="v2"))
    ok(color(world, color="blue", state="stopped"))
    world.images["lowspec-demo:v1"] = IMAGE
    result = color(world, color="blue", state="unpaused", release="v1")
    assert result["failed"] and result["msg"].startswith("demo-blue holds release v2, not v1")
    assert "Deploy v1 instead (bluegreen_release=v1)" in result["msg"]
    assert [e[1] for e in changing(world) if e[0] == "docker"] == ["stop"], "nothing brought back"
    assert ok(color(world, color="blue", state="unpaused", release="v2"))["changed"]


def test_unpaused_of_unlabelled_containers_warns_that_the_release_is_assumed(color):
    world = world_of("demo-blue")
    ok(color(world, color="blue", state="stopped", services=["web"]))
    result = ok(color(world, color="blue", state="unpaused", services=["web"], release="v1"))
    assert result["changed"] and any("their release v1 is assumed, not read" in w for w in result["warnings"])


def test_unpaused_without_project_src_warns_about_unknown_services(color):
    world = world_of("demo-blue")
    result = ok(color(world, project_src=None, color="blue", state="unpaused", services=["web", "nope"]))
    assert not result["changed"] and result["containers"] == []
    assert any("nope has no container" in w for w in result["warnings"])


def test_an_unknown_service_fails_with_project_src(color):
    world = world_of("demo-blue")
    result = color(world, color="blue", state="started", services=["web", "nope"])
    assert result["failed"] and result["msg"].startswith("services: nope not defined by the compose files of demo-blue")
    assert changing(world) == []


@pytest.mark.parametrize("state", ["stopped", "paused", "unpaused", "absent"])
def test_an_unknown_service_fails_with_project_src_in_every_state(color, state):
    world = world_of("demo-blue")
    result = color(world, color="blue", state=state, services=["web", "nope"])
    assert result["failed"] and result["msg"].startswith("services: nope not defined by the compose files")
    assert changing(world) == []


# -- absent ----------------------------------------------------------------------------------------------

def test_absent_with_project_src_is_compose_down(color):
    world = world_of("demo-blue")
    world.labelled[("network", "demo-blue")] = ["demo-blue_default"]
    result = ok(color(world, color="blue", state="absent", remove_volumes=True, stop_timeout=5))
    ((_options, words),) = compose_calls(world, "down")
    assert words == ["down", "--remove-orphans", "--timeout", "5", "--volumes"]
    assert result["changed"] and world.items == {}
    again = ok(color(world, color="blue", state="absent"))
    assert not again["changed"] and again["actions"] == [] and len(compose_calls(world, "down")) == 1


def test_absent_without_project_src_works_by_labels(color):
    world = world_of("demo-blue")
    world.labelled[("network", "demo-blue")] = ["demo-blue_default"]
    result = ok(color(world, project_src=None, color="blue", state="absent"))
    assert [e[1] for e in changing(world)] == ["stop", "rm", "network rm"]
    assert result["changed"] and world.items == {} and world.labelled[("network", "demo-blue")] == []
    assert world.calls == []


# -- active ------------------------------------------------------------------------------------------------

def test_active_writes_the_state_file_with_a_diff_and_is_idempotent(color, tmp_path):
    world = world_of("demo-blue")
    path = tmp_path / "state" / "demo.json"
    check = ok(color(world, color="blue", state="active", release="v1", check_mode=True, diff=True))
    assert check["changed"] and not path.exists()
    assert check["diff"] == {"before": {"active_color": None, "release": None},
                             "after": {"active_color": "blue", "release": "v1"}}
    real = ok(color(world, color="blue", state="active", release="v1", record={"took_s": 3}))
    assert real["changed"] and path.exists() and real["recorded_color"] == "blue" and real["recorded"]
    assert real["history"][0]["took_s"] == 3 and real["history"][0]["color"] == "blue"
    again = ok(color(world, color="blue", state="active", release="v1", diff=True))
    assert not again["changed"] and "diff" not in again and len(again["history"]) == 1
    assert changing(world) == []


def test_active_warns_when_the_recorded_color_does_not_run(color):
    result = ok(color(world_of(), color="green", state="active"))
    assert any("recording green as active although no web container of demo-green is running" in w
               for w in result["warnings"])


def test_active_idle_flips_the_record(color):
    world = world_of("demo-blue")
    ok(color(world, color="blue", state="active", release="v1"))
    flipped = ok(color(world, color="idle", state="active", release="v2"))
    assert (flipped["color"], flipped["active_color"], flipped["idle_color"]) == ("green", "green", "blue")
    assert flipped["history"][0]["previous_color"] == "blue"


def test_active_removes_the_journal(color, tmp_path):
    journal = tmp_path / "demo.journal.json"
    journal.write_text(json.dumps({"entries": [], "waits": {"health:demo-green": [1.0, 2.0]}}))
    ok(color(world_of("demo-blue"), color="blue", state="active", journal=str(journal)))
    assert not journal.exists()


# -- bad input fails before any command --------------------------------------------------------------------

@pytest.mark.parametrize("change, fragment", [
    ({"app": "Shop!"}, "app='Shop!' is not a valid app name"),
    ({"color": "purple"}, "value of color must be one of"),
    ({"stop_timeout": -1}, "stop_timeout must be zero or more"),
    ({"wait_timeout": -1}, "wait_timeout must be zero or more"),
    ({"history_size": -1}, "history_size must be zero or more"),
    ({"wait_slice": -1}, "wait_slice must be zero or more"),
    ({"files": ["missing.yml"]}, "files: compose file missing.yml not found"),
    ({"env_files": ["missing.env"]}, "env_files: missing.env not found"),
    ({"env": {"BAD NAME": "x"}}, "env: 'BAD NAME' is not a valid environment variable name"),
    ({"web_ports": {"red": 8001}}, "web_ports: red is not a color"),
    ({"web_ports": {"blue": "http"}}, "web_ports.blue='http' is not a port number"),
    ({"web_port_variable": "1PORT"}, "web_port_variable='1PORT'"),
    ({"project_src": None, "files": ["compose.yml"]}, "files"),
])
def test_bad_input_fails_naming_the_option_before_any_command(color, change, fragment):
    world = world_of("demo-blue")
    result = color(world, **dict({"state": "absent", "color": "blue"}, **change))
    assert result["failed"] and fragment in result["msg"], result["msg"]
    assert world.calls == [] and changing(world) == []


def test_a_missing_or_empty_project_src_is_named(color, tmp_path):
    missing = color(world_of(), project_src=str(tmp_path / "gone"), state="absent", color="blue")
    assert missing["failed"] and missing["msg"].startswith("project_src=%s is not a directory" % (tmp_path / "gone"))
    empty = tmp_path / "empty"
    empty.mkdir()
    result = color(world_of(), project_src=str(empty), state="absent", color="blue")
    assert result["failed"] and "holds no compose file" in result["msg"]


def test_started_and_prepared_need_project_src(color):
    result = color(world_of(), project_src=None, state="started")
    assert result["failed"] and "project_src" in result["msg"]


def test_compose_v1_is_refused(color):
    world = world_of("demo-blue")
    world.version_output = fixture_text("compose-version-1.29.2.txt")
    result = color(world, compose_command=None, color="blue", state="inspect")
    assert result["failed"] and "Compose v1" in result["msg"] and "1.29.2" in result["msg"]
    assert changing(world) == []


def test_compose_is_detected_once_and_returned(color):
    world = world_of("demo-blue")
    result = ok(color(world, compose_command=None, color="blue", state="inspect"))
    assert result["compose_command"] == [DOCKER_BIN, "compose"]
    assert [w for _o, w in compose_calls(world)].count(["version"]) == 1


def test_invalid_compose_files_name_the_option(color):
    world = world_of("demo-blue")
    world.failing["config"] = (15, "", fixture_text("compose-config-syntax-error.txt"))
    result = color(world, color="blue", state="started")
    assert result["failed"] and result["msg"].startswith("files: the compose configuration of demo-blue")
    assert result["rc"] == 15 and "config" in result["cmd"]
    assert changing(world) == []


def test_a_failed_compose_command_carries_cmd_rc_and_stderr(color):
    world = world_of()
    world.failing["up"] = (1, "", "Error response from daemon: driver failed programming external connectivity\n")
    result = color(world, color="blue", state="started", services=["web"])
    assert result["failed"] and result["msg"].startswith("docker compose up of demo-blue failed: Error response")
    assert result["rc"] == 1 and result["cmd"][:2] == [DOCKER_BIN, "compose"] and "driver failed" in result["stderr"]
    assert len(result["actions"]) == 1


def test_health_needs_the_port_of_the_color(color):
    result = color(world_of(), color="green", state="started", services=["web"], health={},
                   web_ports={"blue": 18080})
    assert result["failed"] and result["msg"] == "health needs web_ports with the port of green"


def test_health_without_the_colors_port_fails_before_anything_starts(color):
    world = world_of()
    result = color(world, color="green", state="started", services=["web"], health={}, web_ports={"blue": 18080})
    assert result["failed"] and changing(world) == []


def test_started_without_celery_starts_beat_with_the_rest(color):
    """Without `celery`, beat is a service like any other: started in the one `up`, no hand-over."""
    world = world_of("demo-blue")
    ok(color(world, color="green", state="started"))
    assert [e for e in world.log if e[0] == "compose"] == [("compose", "up", ("beat", "web", "worker"))]
