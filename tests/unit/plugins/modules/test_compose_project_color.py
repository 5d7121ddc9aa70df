# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""compose_project_color without a real binary: the docker CLI is a small fake world built
from captured output (docker inspect, image inspect, compose config), and every command the
module runs is recorded. Also the pure helpers it added to module_utils/_compose.py."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from ansible.module_utils import basic
from ansible_collections.lowspec.bluegreen.plugins.module_utils import _compose
from ansible_collections.lowspec.bluegreen.plugins.modules import compose_project_color

FIXTURES = Path(__file__).resolve().parents[1] / "module_utils" / "fixtures"
DOCKER = "/usr/bin/docker"
COMPOSE_OPTS_WITH_VALUE = ("--ansi", "--project-name", "--project-directory", "--file", "--env-file", "--profile")


def fixture(name):
    return (FIXTURES / name).read_text()


def demo_containers(project="demo-blue"):
    """The captured demo-blue containers (web, worker, beat; running, healthy), relabelled for `project`."""
    containers = json.loads(fixture("docker-inspect-demo-blue.json"))
    for item in containers:
        labels = item["Config"]["Labels"]
        labels[_compose.LABEL_PROJECT] = project
        item["Name"] = "/%s-%s-1" % (project, labels[_compose.LABEL_SERVICE])
        item["Id"] = "%s%s" % (project.split("-")[-1][0], item["Id"][1:])
    return containers


class Exit(Exception):
    def __init__(self, result):
        super().__init__(result.get("msg", ""))
        self.result = result


class FakeDocker:
    """Answers the module's commands from a small model of containers and images."""

    def __init__(self, containers=(), images=None, hashes=None, info=None, compose_rc=0, fail=None):
        self.containers = {c["Id"]: c for c in copy.deepcopy(list(containers))}
        v1 = json.loads(fixture("docker-image-inspect-demo-v1.json"))[0]
        self.images = {"lowspec-demo:v1": v1} if images is None else images
        self.config = json.loads(fixture("compose-config-demo-5.6.1.json"))
        self.hashes = hashes
        self.info = json.loads(fixture("docker-info-20.10-x86_64.json")) if info is None else info
        self.compose_rc = compose_rc
        self.fail = fail or {}
        self.calls = []

    # -- helpers ---------------------------------------------------------

    @staticmethod
    def compose_parts(argv):
        """(project, subcommand args) of a compose argv."""
        rest, project = argv[2:], None
        while rest and rest[0] in COMPOSE_OPTS_WITH_VALUE:
            if rest[0] == "--project-name":
                project = rest[1]
            rest = rest[2:]
        return project, rest

    def of_project(self, project):
        return [c for c in self.containers.values() if c["Config"]["Labels"][_compose.LABEL_PROJECT] == project]

    def set_state(self, ids, status, paused=False, health=None):
        for cid in ids:
            state = self.containers[cid]["State"]
            state.update(Status=status, Running=status == "running", Paused=paused)
            if health and "Health" in state:
                state["Health"]["Status"] = health

    def changing(self):
        """The calls that change something, as `actions` would show them."""
        changing = ("stop", "start", "pause", "unpause", "rm", "up", "down", "pull", "build")
        found = []
        for argv, _env in self.calls:
            words = self.compose_parts(argv)[1] if argv[1] == "compose" else argv[1:]
            if words and (words[0] in changing or words[:2] in (["network", "rm"], ["volume", "rm"])):
                found.append(argv)
        return found

    # -- the CLI ---------------------------------------------------------

    def __call__(self, argv, environ_update=None, **_kwargs):
        self.calls.append((list(argv), dict(environ_update or {})))
        for prefix, answer in self.fail.items():
            if " ".join(argv).startswith(prefix):
                return answer
        if argv[0] != DOCKER:
            return 1, "", "unexpected binary"
        args = argv[1:]
        if args[0] == "info":
            return 0, json.dumps(self.info), ""
        if args[0] == "compose":
            return self.compose(argv)
        if args[0] == "ps":
            project = args[-1].split("=", 2)[2]
            return 0, "".join(c["Id"] + "\n" for c in self.of_project(project)), ""
        if args[0] == "inspect":
            return 0, json.dumps([self.containers[cid] for cid in args[3:]]), ""
        if args[:2] == ["image", "inspect"]:
            image = self.images.get(args[2])
            return (0, json.dumps([image]), "") if image else (1, "[]", "Error: No such image: %s" % args[2])
        if args[0] in ("network", "volume") and args[1] == "ls":
            return 0, "", ""
        ids = [a for a in args[1:] if a in self.containers]
        if args[0] == "stop":
            self.set_state(ids, "exited")
        elif args[0] in ("start", "unpause"):
            self.set_state(ids, "running", health="healthy")
        elif args[0] == "pause":
            self.set_state(ids, "running", paused=True)
        elif args[0] == "rm":
            for cid in ids:
                del self.containers[cid]
        elif args[0] == "logs":
            return 0, "booting\nfailed\n", ""
        return 0, "", ""

    def compose(self, argv):
        if argv[2] == "version":
            return (0, fixture("compose-version-5.6.1.txt"), "") if self.compose_rc == 0 else (1, "", "not a command")
        project, words = self.compose_parts(argv)
        if words[:3] == ["config", "--format", "json"]:
            return 0, json.dumps(dict(self.config, name=project)), ""
        if words[:2] == ["config", "--hash"]:
            return 0, "".join("%s %s\n" % item for item in sorted((self.hashes or {}).items())), ""
        if words[0] == "up":
            services = [w for w in words[1:] if w in self.config["services"]] or list(self.config["services"])
            existing = {c["Config"]["Labels"][_compose.LABEL_SERVICE]: c for c in self.of_project(project)}
            for template in demo_containers(project):
                service = template["Config"]["Labels"][_compose.LABEL_SERVICE]
                if service in services:
                    if service in existing:
                        self.set_state([existing[service]["Id"]], "running", health="healthy")
                    else:
                        self.containers[template["Id"]] = template
            return 0, "", ""
        if words[0] == "down":
            for c in self.of_project(project):
                del self.containers[c["Id"]]
        return 0, "", ""


@pytest.fixture
def project_src(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "compose.yml").write_text("services: {}\n")
    return str(src)


def run(fake, args, monkeypatch, check_mode=False, diff=False):
    """Run the module's main() with `args`; return its result (failed or not)."""
    payload = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": payload}).encode())
    if hasattr(basic, "_ANSIBLE_PROFILE"):
        monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kw: fake(argv, **kw))
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path",
                        lambda self, name, required=False, opt_dirs=None: DOCKER if name == "docker" else None)

    def exit_json(self, **result):
        raise Exit(dict(result, failed=False))

    def fail_json(self, msg, **result):
        raise Exit(dict(result, msg=msg, failed=True))

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    warned = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, msg: warned.append(msg))
    with pytest.raises(Exit) as exc:
        compose_project_color.main()
    return dict(exc.value.result, _warnings=warned)


@pytest.fixture
def args(tmp_path, project_src):
    return {"app": "demo", "project_src": project_src, "state_dir": str(tmp_path / "state"),
            "env": {"BLUEGREEN_WEB_PORT": "18080", "SECRET_TOKEN": "s3cr3t-value"}}


def blue_world(**kwargs):
    containers = demo_containers("demo-blue")
    hashes = {c["Config"]["Labels"][_compose.LABEL_SERVICE]: c["Config"]["Labels"][_compose.LABEL_CONFIG_HASH]
              for c in containers}
    kwargs.setdefault("hashes", hashes)
    return FakeDocker(containers, **kwargs)


# -- inspect -----------------------------------------------------------------

def test_inspect_of_nothing(monkeypatch, args):
    fake = FakeDocker()
    result = run(fake, dict(args), monkeypatch)
    assert not result["failed"] and not result["changed"] and result["actions"] == []
    assert result["active_color"] is None and result["idle_color"] == "blue" and result["color"] == "blue"
    assert result["project"] == "demo-blue" and result["history"] == []
    assert set(result["services"]) == {"web", "worker", "beat"}
    assert all(entry["state"] == "absent" for entry in result["services"].values())
    assert fake.changing() == []


def test_inspect_reports_services_and_resolves_the_running_color(monkeypatch, args):
    fake = blue_world()
    result = run(fake, dict(args, color="active"), monkeypatch)
    assert result["color"] == "blue" and result["active_color"] == "blue" and result["idle_color"] == "green"
    web = result["services"]["web"]
    assert web["state"] == "running" and web["health"] == "healthy" and web["image"] == "lowspec-demo:v1"
    assert len(web["containers"]) == 1 and len(web["containers"][0]) == 64
    assert result["services"]["beat"]["health"] == "none"


def test_color_active_with_nothing_running_fails_clearly(monkeypatch, args):
    result = run(FakeDocker(), dict(args, color="active", state="stopped"), monkeypatch)
    assert result["failed"] and result["msg"].startswith("color=active:")


# -- started -----------------------------------------------------------------

def test_started_up_to_date_runs_nothing(monkeypatch, args):
    fake = blue_world()
    result = run(fake, dict(args, color="blue", state="started"), monkeypatch)
    assert not result["failed"], result["msg"]
    assert not result["changed"] and result["actions"] == [] and result["reasons"] == {}
    assert fake.changing() == []


def test_started_recreates_only_what_changed_and_passes_env_by_environment(monkeypatch, args):
    captured = dict(line.split() for line in fixture("compose-config-hash-demo-5.6.1.txt").splitlines())
    fake = blue_world(hashes=captured)  # web's captured hash differs from its container's label
    result = run(fake, dict(args, color="blue", state="started", release="v1"), monkeypatch, diff=True)
    assert result["changed"] and result["reasons"] == {"web": "configuration changed"}
    (up,) = fake.changing()
    assert up[:2] == [DOCKER, "compose"]
    assert up[up.index("up"):] == ["up", "--detach", "--no-build", "--pull", "never", "--wait", "--wait-timeout",
                                   "300", "--timeout", "60"]
    assert any("active color" in w for w in result["_warnings"])  # blue runs: it is the active color
    assert result["actions"] == [" ".join(up[1:])]
    for argv, environ in fake.calls:
        assert "s3cr3t-value" not in " ".join(argv)
        assert environ["SECRET_TOKEN"] == "s3cr3t-value" and environ["BLUEGREEN_RELEASE"] == "v1"
        if argv[1] == "compose" and argv[2] != "version":
            assert environ["BLUEGREEN_COLOR"] == "blue"
    assert "s3cr3t-value" not in json.dumps(result)


def test_started_check_mode_reports_and_changes_nothing(monkeypatch, args):
    fake = FakeDocker()
    result = run(fake, dict(args, color="blue", state="started", services=["web"]), monkeypatch,
                 check_mode=True, diff=True)
    assert result["changed"] and result["reasons"] == {"web": "no container"}
    assert len(result["actions"]) == 1 and result["actions"][0].startswith("compose ")
    assert result["actions"][0].endswith(" web")
    assert fake.changing() == [] and fake.containers == {}
    assert result["diff"] == {"before": {"web": {"state": "absent", "health": "none"}},
                              "after": {"web": {"state": "running", "health": "healthy"}}}


def test_started_creates_missing_containers(monkeypatch, args):
    fake = FakeDocker()
    result = run(fake, dict(args, color="blue", state="started"), monkeypatch)
    assert result["changed"] and set(result["reasons"]) == {"web", "worker", "beat"}
    assert {name: entry["state"] for name, entry in result["services"].items()} == {
        "web": "running", "worker": "running", "beat": "running"}


def test_started_with_a_missing_image_and_pull_never_fails_before_anything(monkeypatch, args):
    fake = FakeDocker(images={})
    result = run(fake, dict(args, color="blue", state="started", pull="never"), monkeypatch)
    assert result["failed"] and "pull=never" in result["msg"] and "lowspec-demo:v1" in result["msg"]
    assert fake.changing() == [] and result["actions"] == []


def test_started_pulls_missing_images_first(monkeypatch, args):
    fake = FakeDocker(images={})
    result = run(fake, dict(args, color="blue", state="started"), monkeypatch, check_mode=True)
    assert [a.split(" --project-directory ")[1].split(" ", 2)[1] for a in result["actions"]] == ["pull", "up"]
    assert fake.changing() == []


@pytest.mark.parametrize("arch, variant", [("arm64", "v8"), ("arm", "v7")])
def test_started_refuses_an_image_of_another_architecture(monkeypatch, args, arch, variant):
    image = json.loads(fixture("docker-image-inspect-demo-v1.json"))[0]
    image.update(Architecture=arch, Variant=variant)
    fake = blue_world(images={"lowspec-demo:v1": image})
    result = run(fake, dict(args, color="green", state="started"), monkeypatch)
    assert result["failed"] and "is built for %s" % _compose.image_platform(image) in result["msg"]
    assert "amd64" in result["msg"] and fake.changing() == []


def test_started_wait_failure_returns_logs(monkeypatch, args):
    fake = FakeDocker()

    def failing(argv, **kw):
        words = FakeDocker.compose_parts(argv)[1] if argv[1:2] == ["compose"] else []
        if words[:1] == ["up"]:
            FakeDocker.compose(fake, argv)
            for c in fake.of_project("demo-blue"):
                c["State"]["Health"] = {"Status": "unhealthy"}
            fake.calls.append((argv, kw.get("environ_update")))
            return 1, "", "container demo-blue-web-1 is unhealthy\n"
        return fake(argv, **kw)

    result = run(failing, dict(args, color="blue", state="started", services=["web"]), monkeypatch)
    assert result["failed"] and result["msg"].startswith("docker compose up of demo-blue failed:")
    assert "unhealthy" in result["msg"] and result["rc"] == 1 and result["logs"]["web"] == ["booting", "failed"]
    assert len(result["actions"]) == 1


def test_started_needs_project_src(monkeypatch, args):
    del args["project_src"]
    result = run(FakeDocker(), dict(args, state="started"), monkeypatch)
    assert result["failed"] and "project_src" in result["msg"]


# -- stopped / paused / unpaused -------------------------------------------------

def test_stopped_returns_exactly_the_running_containers_it_stopped(monkeypatch, args):
    fake = blue_world()
    worker = [c["Id"] for c in fake.of_project("demo-blue")
              if c["Config"]["Labels"][_compose.LABEL_SERVICE] == "worker"]
    result = run(fake, dict(args, color="blue", state="stopped", services=["worker"], stop_timeout=300),
                 monkeypatch, diff=True)
    assert result["changed"] and result["containers"] == worker
    assert fake.changing() == [[DOCKER, "stop", "--time", "300"] + worker]
    assert result["diff"]["after"] == {"worker": {"state": "exited", "health": "healthy"}}
    again = run(fake, dict(args, color="blue", state="stopped", services=["worker"]), monkeypatch)
    assert not again["changed"] and again["containers"] == [] and again["actions"] == []


def test_stopped_check_mode_stops_nothing(monkeypatch, args):
    fake = blue_world()
    result = run(fake, dict(args, color="blue", state="stopped"), monkeypatch, check_mode=True)
    assert result["changed"] and len(result["containers"]) == 3 and result["actions"][0].startswith("stop --time 60 ")
    assert fake.changing() == []
    assert all(c["State"]["Running"] for c in fake.containers.values())


def test_stop_pause_unpause_never_use_compose_to_change(monkeypatch, args):
    fake = blue_world()
    ids = sorted(fake.containers)
    run(fake, dict(args, color="blue", state="stopped", services=["beat"]), monkeypatch)
    paused = run(fake, dict(args, color="blue", state="paused"), monkeypatch)
    assert len(paused["containers"]) == 2  # beat is stopped: only the running ones are frozen
    back = run(fake, dict(args, color="blue", state="unpaused"), monkeypatch)
    assert sorted(back["containers"]) == ids
    assert [argv[1] for argv in fake.changing()] == ["stop", "pause", "unpause", "start"]
    assert sorted(fake.containers) == ids  # same containers throughout
    assert all(c["State"]["Running"] and not c["State"]["Paused"] for c in fake.containers.values())


def test_unpaused_without_project_src_warns_about_unknown_services(monkeypatch, args):
    del args["project_src"]
    fake = blue_world()
    result = run(fake, dict(args, color="blue", state="unpaused", services=["web", "nope"]), monkeypatch)
    assert not result["failed"] and not result["changed"] and result["containers"] == []
    assert any("nope has no container" in w for w in result["_warnings"])


def test_unknown_service_fails_with_project_src(monkeypatch, args):
    fake = blue_world()
    result = run(fake, dict(args, color="blue", state="stopped", services=["web", "nope"]), monkeypatch)
    assert result["failed"] and result["msg"].startswith("services: nope") and fake.changing() == []


# -- absent ------------------------------------------------------------------

def test_absent_with_project_src_is_compose_down(monkeypatch, args):
    fake = blue_world()
    result = run(fake, dict(args, color="blue", state="absent", remove_volumes=True, stop_timeout=5), monkeypatch)
    (down,) = fake.changing()
    assert down[-5:] == ["down", "--remove-orphans", "--timeout", "5", "--volumes"]
    assert result["changed"] and fake.containers == {}
    again = run(fake, dict(args, color="blue", state="absent"), monkeypatch)
    assert not again["changed"] and again["actions"] == []


def test_absent_without_project_src_works_by_labels(monkeypatch, args):
    del args["project_src"]
    fake = blue_world()
    result = run(fake, dict(args, color="blue", state="absent"), monkeypatch)
    assert [argv[1] for argv in fake.changing()] == ["stop", "rm"]
    assert result["changed"] and fake.containers == {}


# -- active ------------------------------------------------------------------

def test_active_writes_the_state_file_with_a_diff_and_is_idempotent(monkeypatch, args):
    fake = blue_world()
    path = os.path.join(args["state_dir"], "demo.json")
    check = run(fake, dict(args, color="blue", state="active", release="v1"), monkeypatch, check_mode=True, diff=True)
    assert check["changed"] and not os.path.exists(path)
    assert check["diff"] == {"before": {"active_color": None, "release": None},
                             "after": {"active_color": "blue", "release": "v1"}}
    real = run(fake, dict(args, color="blue", state="active", release="v1", record={"took_s": 3}), monkeypatch)
    assert real["changed"] and os.path.exists(path) and real["recorded_color"] == "blue"
    assert real["history"][0]["took_s"] == 3 and real["history"][0]["color"] == "blue"
    again = run(fake, dict(args, color="blue", state="active", release="v1"), monkeypatch, diff=True)
    assert not again["changed"] and "diff" not in again and len(again["history"]) == 1
    assert fake.changing() == []


def test_active_idle_flips_the_record(monkeypatch, args):
    fake = blue_world()
    run(fake, dict(args, color="blue", state="active"), monkeypatch)
    flipped = run(fake, dict(args, color="idle", state="active", release="v2"), monkeypatch)
    assert flipped["color"] == "green" and flipped["active_color"] == "green" and flipped["idle_color"] == "blue"


# -- refusals ------------------------------------------------------------------

@pytest.mark.parametrize("change, fragment", [
    ({"app": "Shop!"}, "app="),
    ({"color": "purple"}, "color"),
    ({"stop_timeout": -1}, "stop_timeout must be zero or more"),
    ({"wait_timeout": -1}, "wait_timeout must be zero or more"),
    ({"files": ["missing.yml"]}, "files: compose file missing.yml not found"),
    ({"env_files": ["missing.env"]}, "env_files: missing.env not found"),
    ({"env": {"BAD NAME": "x"}}, "env:"),
])
def test_bad_input_fails_before_any_command(monkeypatch, args, change, fragment):
    fake = blue_world()
    result = run(fake, {**args, "state": "absent", "color": "blue", **change}, monkeypatch)
    assert result["failed"] and fragment in result["msg"]
    assert fake.calls == []


def test_missing_project_src_is_named(monkeypatch, args, tmp_path):
    result = run(blue_world(), dict(args, project_src=str(tmp_path / "gone"), state="absent"), monkeypatch)
    assert result["failed"] and result["msg"].startswith("project_src=")


def test_unreachable_daemon_names_docker_host(monkeypatch, args):
    fake = blue_world(fail={DOCKER + " info": (1, "", "Cannot connect to the Docker daemon at unix:///x.sock.\n")})
    result = run(fake, dict(args, docker_host="unix:///x.sock", state="stopped"), monkeypatch)
    assert result["failed"] and result["msg"].startswith("docker_host (unix:///x.sock):")
    assert fake.changing() == []


def test_compose_v1_is_refused(monkeypatch, args):
    fake = blue_world(compose_rc=1)
    result = run(fake, dict(args, state="stopped"), monkeypatch)
    assert result["failed"] and "Compose v2" in result["msg"] and fake.changing() == []


def test_invalid_compose_files_name_the_option(monkeypatch, args):
    fake = blue_world(fail={DOCKER + " compose --ansi never --project-name demo-blue --project-directory": (
        1, "", fixture("compose-config-syntax-error.txt"))})
    result = run(fake, dict(args, color="blue", state="stopped"), monkeypatch)
    assert result["failed"] and result["msg"].startswith("files: the compose configuration of demo-blue")
    assert fake.changing() == []


# -- helpers added to module_utils/_compose.py ----------------------------------

@pytest.mark.parametrize("uname, platform", [
    ("x86_64", "amd64"), ("aarch64", "arm64"), ("armv7l", "arm/v7"), ("armv6l", "arm/v6"), ("riscv64", "riscv64"),
])
def test_host_platform(uname, platform):
    assert _compose.host_platform({"Architecture": uname}) == platform


def test_host_platform_from_captured_docker_info():
    assert _compose.host_platform(json.loads(fixture("docker-info-20.10-x86_64.json"))) == "amd64"


@pytest.mark.parametrize("arch, variant, platform", [
    ("amd64", "", "amd64"), ("arm64", "v8", "arm64"), ("arm64", "", "arm64"), ("arm", "v7", "arm/v7"),
])
def test_image_platform(arch, variant, platform):
    assert _compose.image_platform({"Architecture": arch, "Variant": variant}) == platform


def test_image_platform_from_captured_image_inspect():
    assert _compose.image_platform(json.loads(fixture("docker-image-inspect-demo-v1.json"))[0]) == "amd64"


@pytest.mark.parametrize("host, image, fit", [
    ("amd64", "amd64", "ok"), ("arm64", "arm64", "ok"), ("arm/v7", "arm/v6", "ok"),
    ("amd64", "arm64", "mismatch"), ("arm64", "amd64", "mismatch"), ("arm/v7", "arm64", "mismatch"),
    ("arm64", "arm/v7", "warn"), ("amd64", "", "warn"),
])
def test_platform_fit(host, image, fit):
    assert _compose.platform_fit(host, image) == fit


def test_parse_config_hashes_from_captured_output():
    hashes = _compose.parse_config_hashes(fixture("compose-config-hash-demo-5.6.1.txt"))
    assert set(hashes) == {"web", "worker", "beat"} and all(len(h) == 64 for h in hashes.values())


def test_config_services_images_and_replicas_from_captured_config():
    config = json.loads(fixture("compose-config-demo-5.6.1.json"))
    services = _compose.config_services(config)
    assert set(services) == {"web", "worker", "beat"}
    assert _compose.service_image("demo-blue", "web", services["web"]) == "lowspec-demo:v1"
    assert _compose.service_image("demo-blue", "app", {"build": {"context": "."}}) == "demo-blue-app"
    assert _compose.service_replicas(services["web"]) == 1
    assert _compose.service_replicas({"deploy": {"replicas": 3}}) == 3
    assert _compose.service_replicas({"scale": 2}) == 2


def test_container_details_adds_the_config_hash():
    item = json.loads(fixture("docker-inspect-demo-blue.json"))[0]
    details = _compose.container_details(item)
    assert details["config_hash"] == item["Config"]["Labels"][_compose.LABEL_CONFIG_HASH]
    assert details["restarting"] is False
    assert {k: v for k, v in details.items() if k not in ("config_hash", "restarting")} == (
        _compose.summarize_container(item))


def test_compose_argspec_bundle():
    spec = _compose.compose_argspec_ex()
    assert set(spec["argspec"]) == {"app", "project_src", "files", "env_files", "env", "variables"}
    assert "no_log" not in spec["argspec"]["variables"]
    assert spec["argspec"]["env"]["no_log"] is True and spec["argspec"]["app"]["required"] is True
    assert spec["required_by"] == {"files": ("project_src",), "env_files": ("project_src",)}
