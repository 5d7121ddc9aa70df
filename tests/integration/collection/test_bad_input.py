# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad input to the modules and to the role fails with a clear message naming
the cause, and leaves the containers, the proxy's upstream file and the state file
exactly as they were.

One demo stack (blue v1 running, recorded as active, behind an upstream file) is
shared by every case of this file; each case snapshots it before and after.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import uuid

import pytest

from tests.support.docker_cli import DEMO_DIR, docker, only_compose_v1_env
from tests.support.runner import deploy, run_module
from tests.support.stack import DemoStack, Nginx, role_vars

ARM_IMAGE = "lowspec-rel-arm64"

BROKEN_COMPOSE = """\
services:
  web:
    image: lowspec-demo:v1
    ports: [ "127.0.0.1:1:8000"
  worker: {image: lowspec-demo:v1}
"""


class Bench:
    """The shared stack, plus what every case must leave untouched."""

    def __init__(self, stack, proxy, state_dir, work):
        self.stack = stack
        self.proxy = proxy
        self.state_dir = state_dir
        self.work = work

    @property
    def state_file(self):
        return self.state_dir / ("%s.json" % self.stack.app)

    def snapshot(self):
        containers = {}
        for color in ("blue", "green"):
            ids = docker("ps", "-a", "-q", "--no-trunc", "--filter",
                         "label=com.docker.compose.project=%s" % self.stack.project(color)).split()
            for item in json.loads(docker("inspect", *ids)) if ids else []:
                state = item["State"]
                containers[item["Id"]] = (item["Name"], state["Status"], state["StartedAt"], state["FinishedAt"],
                                          state.get("Paused"), item.get("RestartCount"))
        return {
            "containers": containers,
            "networks": docker("network", "ls", "-q", "--filter", "name=%s" % self.stack.app).split(),
            "upstream": self.proxy.upstream_path.read_bytes(),
            "state_dir": sorted(os.listdir(self.state_dir)),
            "state": self.state_file.read_bytes(),
        }

    def module_env(self, color="blue", **extra):
        env = self.stack.env_for(color, "v1", **extra)
        env.pop("BLUEGREEN_COLOR")
        env.pop("BLUEGREEN_RELEASE")
        return env


def _arm64_image():
    """A tiny image whose metadata says linux/arm64 (this host is not arm64)."""
    empty = io.BytesIO()
    with tarfile.open(fileobj=empty, mode="w"):
        pass
    config = json.dumps({"architecture": "arm64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [
                             "sha256:" + hashlib.sha256(empty.getvalue()).hexdigest()]}}).encode()
    digest = hashlib.sha256(config).hexdigest()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, data in (("%s.json" % digest, config), ("layer/layer.tar", empty.getvalue()),
                           ("manifest.json", json.dumps([{"Config": "%s.json" % digest, "RepoTags": [
                               "%s:v1" % ARM_IMAGE, "%s:v2" % ARM_IMAGE], "Layers": ["layer/layer.tar"]}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    subprocess.run(["docker", "load"], input=archive.getvalue(), capture_output=True, check=True)
    arch = docker("image", "inspect", "--format", "{{.Architecture}}", "%s:v1" % ARM_IMAGE).strip()
    assert arch == "arm64", arch


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    work = tmp_path_factory.mktemp("bad-input")
    stack = DemoStack("tb%s" % uuid.uuid4().hex[:8])
    proxy = Nginx(work / "nginx", "%s_bluegreen" % stack.app, stack.ports["blue"])
    state_dir = work / "state"
    try:
        stack.up_shared()
        stack.up_color("blue", "v1")
        recorded = run_module("compose_project_color", {
            "app": stack.app, "color": "blue", "release": "v1", "state": "active",
            "state_dir": str(state_dir), "project_src": stack.project_src, "variables": stack.env_for("blue")})
        assert recorded["rc"] == 0, recorded
        proxy.start()
        broken = work / "broken"
        broken.mkdir()
        (broken / "compose.yml").write_text(BROKEN_COMPOSE)
        _arm64_image()
        yield Bench(stack, proxy, state_dir, work)
    finally:
        proxy.stop()
        stack.teardown()
        docker("rmi", "-f", "%s:v1" % ARM_IMAGE, "%s:v2" % ARM_IMAGE, check=False)


def module_cases(bench):
    """(id, module, args, env, words the message must contain)."""
    stack = bench.stack
    cpc = {"app": stack.app, "project_src": str(DEMO_DIR), "state_dir": str(bench.state_dir),
           "variables": bench.module_env()}
    blue = dict(cpc, color="blue")
    celery = {"project": stack.project("blue"), "celery_app": "tasks", "celery_command": ["python3", "-m", "celery"],
              "drain_timeout": 5}
    url = stack.url("blue")
    return [
        ("cpc-unknown-color", "compose_project_color", dict(cpc, color="purple", state="stopped"), None,
         ["color", "purple"]),
        ("cpc-unsafe-app-shell", "compose_project_color", dict(blue, app="shop; rm -rf /", state="stopped"), None,
         ["not a valid app name"]),
        ("cpc-unsafe-app-path", "compose_project_color", dict(blue, app="../../etc/passwd", state="active"), None,
         ["not a valid app name"]),
        ("cpc-missing-project-dir", "compose_project_color",
         dict(blue, project_src="/nonexistent/shop", state="started"), None, ["project_src", "not a directory"]),
        ("cpc-missing-compose-file", "compose_project_color", dict(blue, files=["missing.yml"], state="started"), None,
         ["missing.yml", "not found"]),
        ("cpc-missing-env-file", "compose_project_color", dict(blue, env_files=["prod.env"], state="started"), None,
         ["prod.env", "not found"]),
        ("cpc-unknown-service", "compose_project_color", dict(blue, services=["nosuch"], state="stopped"), None,
         ["nosuch", "not defined"]),
        ("cpc-compose-syntax-error", "compose_project_color",
         dict(cpc, color="green", project_src=str(bench.work / "broken"), state="started"), None,
         ["compose configuration", "not valid"]),
        ("cpc-negative-timeout", "compose_project_color", dict(blue, state="stopped", stop_timeout=-1), None,
         ["stop_timeout", "zero or more"]),
        ("cpc-wrong-type", "compose_project_color", dict(blue, state="started", wait_timeout="soon"), None,
         ["wait_timeout", "int"]),
        ("cpc-bad-env-name", "compose_project_color", dict(blue, state="stopped", env={"BAD-NAME": "x"}), None,
         ["env", "BAD-NAME", "not a valid environment variable name"]),
        ("cpc-wrong-architecture", "compose_project_color",
         dict(cpc, color="green", state="started", variables=bench.module_env("green", DEMO_IMAGE=ARM_IMAGE)), None,
         ["%s:v1" % ARM_IMAGE, "built for arm64", "amd64", "no container was touched"]),
        ("cpc-compose-v1", "compose_project_color", dict(blue, state="stopped"), only_compose_v1_env(bench.work),
         ["Compose v1", "/usr/bin/docker-compose 1.29", "not supported"]),
        ("cpc-daemon-unreachable", "compose_project_color",
         dict(blue, state="stopped", docker_host="unix:///nonexistent/docker.sock"), None,
         ["docker_host", "not reachable"]),
        ("cq-negative-drain", "celery_quiesce", dict(celery, drain_timeout=-5), None,
         ["drain_timeout", "zero or more"]),
        ("cq-unknown-mode", "celery_quiesce", dict(celery, mode="freeze"), None, ["mode", "freeze"]),
        ("cq-unknown-project", "celery_quiesce", dict(celery, project="%s-nosuch" % stack.app), None,
         ["has no containers"]),
        ("cq-unknown-service", "celery_quiesce", dict(celery, worker_services=["nosuch"]), None,
         ["worker_services", "nosuch", "not found"]),
        ("cq-unknown-celery-app", "celery_quiesce", dict(celery, celery_app="nosuchmodule"), None,
         ["celery_app=nosuchmodule", "cannot load"]),
        ("cq-empty-command", "celery_quiesce", dict(celery, celery_command=[]), None,
         ["celery_command", "non-empty"]),
        ("cq-bad-containers", "celery_quiesce", dict(celery, state="resumed", containers=[{"bogus": 1}]), None,
         ["containers[0]"]),
        ("cq-unknown-color", "celery_quiesce",
         {"app": stack.app, "color": "purple", "celery_app": "tasks"}, None, ["color", "purple"]),
        ("hh-malformed-url", "http_health", {"url": "not a url"}, None, ["url", "malformed"]),
        ("hh-unsupported-scheme", "http_health", {"url": "ftp://127.0.0.1/health/"}, None, ["scheme", "ftp"]),
        ("hh-no-host", "http_health", {"url": "http:///health/"}, None, ["no host"]),
        ("hh-negative-timeout", "http_health", {"url": url, "timeout": -1}, None, ["timeout", "greater than 0"]),
        ("hh-negative-deadline", "http_health", {"url": url, "deadline": -3}, None, ["deadline", "greater than 0"]),
        ("hh-bad-status", "http_health", {"url": url, "status_codes": [999]}, None, ["status_codes", "999"]),
        ("hh-bad-header", "http_health", {"url": url, "headers": {"Bad Header": "x"}}, None,
         ["headers", "Bad Header"]),
        ("hh-bad-regex", "http_health", {"url": url, "body_regex": "("}, None, ["body_regex", "regular expression"]),
        ("hh-wrong-type", "http_health", {"url": url, "retries": "many"}, None, ["retries", "int"]),
        ("lock-unsafe-app", "deploy_lock", {"app": "../x", "state": "present", "state_dir": str(bench.state_dir)},
         None, ["not a valid app name"]),
        ("pressure-zero-interval", "host_pressure", {"interval": 0, "wait_timeout": 1}, None,
         ["interval", "greater than 0"]),
    ]


def test_bad_module_input_fails_clearly_and_changes_nothing(bench):
    before = bench.snapshot()
    outcomes = []
    for case, module, args, env, words in module_cases(bench):
        result = run_module(module, args, env=env)
        msg = result.get("msg", "")
        assert result["rc"] != 0 and result.get("failed"), "%s: did not fail: %s" % (case, result)
        for word in words:
            assert word.lower() in msg.lower(), "%s: %r not in %r" % (case, word, msg)
        assert "Traceback" not in msg and "unexpected error" not in msg, "%s: %s" % (case, msg)
        assert bench.snapshot() == before, "%s changed the containers, the upstream or the state file" % case
        outcomes.append("%s: %s" % (case, msg))
    print("\n".join(outcomes))
    assert len(outcomes) >= 20


def role_cases(bench):
    """(id, role variable overrides, words the failure must contain)."""
    broken = str(bench.work / "broken")
    return [
        ("role-unsafe-app", {"bluegreen_app": "Shop; rm -rf /"}, ["not a valid app name"]),
        ("role-missing-compose-file", {"bluegreen_compose_files": ["missing.yml"]}, ["missing.yml", "not found"]),
        ("role-compose-syntax-error", {"bluegreen_project_src": broken}, ["not valid"]),
        ("role-unknown-service", {"bluegreen_web_services": ["nosuch"]}, ["nosuch", "not defined"]),
        ("role-negative-timeout", {"bluegreen_health_deadline": -5}, ["bluegreen_health_deadline", "greater than 0"]),
        ("role-negative-history", {"bluegreen_history_size": -1}, ["bluegreen_history_size", "zero or more"]),
        ("role-malformed-url", {"bluegreen_public_url": "localhost/health/"}, ["bluegreen_public_url", "http"]),
        ("role-wrong-architecture", {"bluegreen_compose_variables_extra": {"DEMO_IMAGE": ARM_IMAGE}},
         ["built for arm64", "no container was touched"]),
        ("role-daemon-unreachable", {"bluegreen_docker_host": "unix:///nonexistent/docker.sock"}, ["not reachable"]),
        ("role-unknown-quiesce-mode", {"bluegreen_quiesce_mode": "freeze"},
         ["bluegreen_quiesce_mode", "freeze"]),
        ("role-missing-release", {"bluegreen_release": ""}, ["bluegreen_release is required for a deploy"]),
        # The playbooks' other entry points are validated by the same argument spec.
        ("rollback-unknown-quiesce-mode", {"bluegreen_quiesce_mode": "freeze", "playbook": "rollback.yml"},
         ["arg spec 'rollback'", "bluegreen_quiesce_mode", "freeze"]),
        ("cleanup-wrong-type", {"bluegreen_stop_timeout": "soon", "playbook": "cleanup.yml"},
         ["arg spec 'cleanup'", "bluegreen_stop_timeout", "int"]),
    ]


def test_bad_role_variables_fail_before_anything_changes(bench):
    before = bench.snapshot()
    outcomes = []
    for case, overrides, words in role_cases(bench):
        overrides = dict(overrides, bluegreen_pressure_cpu_max=100, bluegreen_pressure_memory_max=100)
        extra = overrides.pop("bluegreen_compose_variables_extra", {})
        playbook = overrides.pop("playbook", "deploy.yml")
        variables = role_vars(bench.stack, bench.proxy, bench.state_dir, "v2", **overrides)
        variables["bluegreen_compose_variables"] = dict(variables.get("bluegreen_compose_variables", {}), **extra)
        result = deploy(variables, playbook=playbook)
        out = result.stdout
        assert result.returncode != 0, "%s: did not fail\n%s" % (case, out[-3000:])
        for word in words:
            assert word.lower() in out.lower(), "%s: %r not in the output\n%s" % (case, word, out[-4000:])
        assert "Traceback" not in out, "%s\n%s" % (case, out[-3000:])
        # Refused by the argument spec or the release check, both before the lock;
        # anything else must fail in preflight, saying that nothing was changed.
        if "argument_errors" not in out and "bluegreen_release is required" not in out:
            final = [line for line in out.splitlines() if line.startswith("fatal:") and "failed at step" in line]
            assert final and "Nothing was changed" in final[-1], "%s: did not fail before the deploy\n%s" % (
                case, out[-4000:])
            for word in words:
                assert word.lower() in final[-1].lower(), "%s: the failure does not name %r: %s" % (case, word, final)
        assert bench.snapshot() == before, "%s changed the containers, the upstream or the state file" % case
        last = [line for line in out.splitlines() if "failed at step" in line or "argument_errors" in line]
        outcomes.append("%s: %s" % (case, (last[-1] if last else "")[:400]))
    print("\n".join(outcomes))
