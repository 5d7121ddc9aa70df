# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""compose_project_color against the real daemon with the demo app.

Each changing step runs check -> real -> idempotent check -> idempotent, as the
collection's integration targets do. One started stack is reused across the
steps of a test to keep the file's run time short.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import subprocess
import tarfile

import pytest

from tests.support.docker_cli import DEMO_DIR, container_state, docker, only_compose_v1_env, project_containers
from tests.support.runner import run_module

MODULE = "compose_project_color"


def warnings_of(result):
    """Warning texts of a module result (plain strings or ansible-core 2.19 summaries)."""
    texts = []
    for warning in result.get("warnings") or []:
        texts.append(warning["event"]["msg"] if isinstance(warning, dict) else warning)
    return texts


def call(args, check_mode=False, diff=False, env=None):
    return run_module(MODULE, args, check_mode=check_mode, diff=diff, env=env)


def labels_file(action):
    """An action with the path of the generated labels file (a temp file) left out."""
    return re.sub(r"\S*bluegreen-labels-\S*\.yml", "<labels>", action)


def ok(result):
    assert result["rc"] == 0 and not result.get("failed"), result.get("msg") or result
    return result


def cycle(args, diff=False):
    """check -> real -> idempotent check -> idempotent; returns the four results (all must succeed)."""
    return [ok(call(args, check_mode=check, diff=diff)) for check in (True, False, True, False)]


def snapshot(stack):
    """Every container of both colors with its state: what a bad input must leave as it was."""
    found = {}
    for color in ("blue", "green"):
        for service, ids in project_containers(stack.project(color)).items():
            for cid in ids:
                found[cid] = (color, service, container_state(cid))
    return found


def file_snapshot(path):
    if not os.path.exists(path):
        return None
    st = os.stat(path)
    with open(path, "rb") as handle:
        return handle.read(), st.st_mtime_ns, st.st_ino


@pytest.fixture
def state_dir(tmp_path):
    return str(tmp_path / "state")


def color_env(stack, color, release="v1", **extra):
    """The stack's env for a color, without BLUEGREEN_COLOR: the module sets that one itself."""
    env = stack.env_for(color if color in ("blue", "green") else "blue", release, **extra)
    del env["BLUEGREEN_COLOR"]
    return env


def base_args(stack, state_dir, color, env_release="v1", **extra):
    args = {
        "app": stack.app,
        "project_src": stack.project_src,
        "env": color_env(stack, color, env_release),
        "color": color,
        "state_dir": state_dir,
        "stop_timeout": 10,
        "wait_timeout": 120,
    }
    args.update(extra)
    return args


def changed_compose_dir(tmp_path, name="changed", edit=None):
    """A copy of the demo's compose file, edited (a new release's compose file)."""
    target = tmp_path / name
    target.mkdir()
    text = (DEMO_DIR / "compose.yml").read_text()
    if edit is None:
        text = text.replace("  environment: &app-env\n", "  environment: &app-env\n    DEMO_CHANGED: \"yes\"\n", 1)
        assert "DEMO_CHANGED" in text
    else:
        text = edit(text)
    (target / "compose.yml").write_text(text)
    return str(target)


def test_one_color_through_every_state(demo_stack, state_dir, tmp_path):
    stack = demo_stack
    blue = stack.project("blue")
    state_file = os.path.join(state_dir, "%s.json" % stack.app)

    # Nothing runs, nothing recorded: idle is blue, no active color.
    first = ok(call(base_args(stack, state_dir, "idle", state="inspect")))
    assert first["active_color"] is None and first["idle_color"] == "blue" and first["color"] == "blue"
    assert first["project"] == blue and not first["changed"] and first["actions"] == []
    assert first["history"] == [] and first["recorded_color"] is None
    assert {name: entry["state"] for name, entry in first["services"].items()} == {
        "web": "absent", "worker": "absent", "beat": "absent"}
    assert not os.path.exists(state_dir)

    # started, a subset: web only.
    results = cycle(base_args(stack, state_dir, "blue", state="started", services=["web"]), diff=True)
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[0]["reasons"] == {"web": "no container"}
    assert results[0]["diff"]["before"] == {"web": {"state": "absent", "health": "none"}}
    assert results[0]["diff"]["after"] == {"web": {"state": "running", "health": "healthy"}}
    # The same command in check mode and for real, but for the name of the release-labels file (a temp file).
    assert [labels_file(a) for a in results[0]["actions"]] == [labels_file(a) for a in results[1]["actions"]]
    assert len(results[1]["actions"]) == 1
    assert " up --detach " in results[1]["actions"][0] and results[1]["actions"][0].endswith(" web")
    # Every container it creates is labelled with its release.
    assert " --file compose.yml --file " in results[1]["actions"][0]
    assert results[2]["actions"] == [] and results[3]["actions"] == [] and results[3]["reasons"] == {}
    web_ids = project_containers(blue, "web")
    assert len(web_ids) == 1 and container_state(web_ids[0])[:2] == ("running", "healthy")
    assert set(project_containers(blue)) == {"web"}
    assert results[3]["services"]["web"]["containers"] == web_ids
    assert set(results[3]["services"]) == {"web"}
    # No env value leaks into actions.
    for value in color_env(stack, "blue").values():
        if len(value) > 3:
            assert all(value not in action for action in results[1]["actions"])

    # started, all services: web is left alone (not recreated).
    results = cycle(base_args(stack, state_dir, "blue", state="started"))
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert set(results[0]["reasons"]) == {"worker", "beat"}
    assert project_containers(blue, "web") == web_ids
    running = project_containers(blue)
    assert set(running) == {"web", "worker", "beat"}
    for service in ("worker", "beat"):
        assert container_state(running[service][0])[0] == "running"
    assert container_state(running["worker"][0])[1] == "healthy"
    assert {name: entry["state"] for name, entry in results[3]["services"].items()} == {
        "web": "running", "worker": "running", "beat": "running"}

    # active: written atomically, mode 0644 or tighter, diffed, idempotent.
    active_args = dict(base_args(stack, state_dir, "blue", state="active", release="v1"),
                       record={"took_s": 12, "stopped": []})
    check = ok(call(active_args, check_mode=True, diff=True))
    assert check["changed"] and not os.path.exists(state_file)
    assert check["diff"] == {"before": {"active_color": None, "release": None},
                             "after": {"active_color": "blue", "release": "v1"}}
    real = ok(call(active_args, diff=True))
    assert real["changed"] and real["diff"] == check["diff"] and real["actions"] == []
    assert real["active_color"] == "blue" and real["idle_color"] == "green" and real["recorded_color"] == "blue"
    mode = stat.S_IMODE(os.stat(state_file).st_mode)
    assert mode & ~0o644 == 0, oct(mode)
    assert os.listdir(state_dir) == ["%s.json" % stack.app]  # no temp file left behind
    written = file_snapshot(state_file)
    data = json.loads(written[0])
    assert data["active_color"] == "blue" and data["release"] == "v1" and len(data["history"]) == 1
    entry = data["history"][0]
    assert entry["color"] == "blue" and entry["release"] == "v1" and entry["previous_color"] is None
    assert entry["took_s"] == 12 and entry["at"].endswith("Z")
    for check_mode in (True, False):
        again = ok(call(active_args, check_mode=check_mode, diff=True))
        assert not again["changed"] and "diff" not in again
    assert file_snapshot(state_file) == written  # idempotent: not even rewritten

    # inspect reads it back.
    seen = ok(call(base_args(stack, state_dir, "active", state="inspect")))
    assert seen["color"] == "blue" and seen["active_color"] == "blue" and seen["idle_color"] == "green"
    assert seen["release"] == "v1" and seen["history"] == data["history"] and not warnings_of(seen)
    assert seen["services"]["web"]["containers"] == web_ids and seen["services"]["web"]["health"] == "healthy"
    assert seen["services"]["web"]["image"] == "lowspec-demo:v1" and seen["services"]["web"]["created"]
    idle = ok(call(base_args(stack, state_dir, "idle", state="inspect")))
    assert idle["color"] == "green" and idle["project"] == stack.project("green")

    # stopped: the active color's workers; returns exactly what it stopped.
    workers = {s: project_containers(blue, s)[0] for s in ("worker", "beat")}
    results = cycle(base_args(stack, state_dir, "blue", state="stopped", services=["worker", "beat"]), diff=True)
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert sorted(results[0]["containers"]) == sorted(workers.values()) == sorted(results[1]["containers"])
    assert results[2]["containers"] == [] and results[3]["containers"] == []
    assert results[1]["actions"] == ["stop --time 10 " + " ".join(results[1]["containers"])]
    assert any("active color" in w for w in warnings_of(results[1]))
    assert results[1]["diff"]["after"]["worker"]["state"] == "exited"
    for cid in workers.values():
        assert container_state(cid)[0] == "exited"
    assert container_state(web_ids[0])[0] == "running"

    # The compose file changes (a new release): started would recreate, unpaused must not.
    changed_src = changed_compose_dir(tmp_path)
    would = ok(call(base_args(stack, state_dir, "blue", state="started", project_src=changed_src), check_mode=True))
    assert would["changed"] and would["reasons"]["web"] == "configuration changed"
    assert project_containers(blue, "web") == web_ids
    results = cycle(base_args(stack, state_dir, "blue", state="unpaused", project_src=changed_src,
                              services=["worker", "beat"]))
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert sorted(results[1]["containers"]) == sorted(workers.values())
    assert results[1]["actions"] == ["start " + " ".join(results[1]["containers"])]
    for service, cid in workers.items():
        assert project_containers(blue, service) == [cid]  # same container, not recreated
        assert container_state(cid)[0] == "running"
    assert container_state(workers["worker"])[1] == "healthy"  # wait: healthy before returning

    # paused / unpaused: frozen and thawed in place.
    results = cycle(base_args(stack, state_dir, "blue", state="paused", services=["worker"]))
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[1]["containers"] == [workers["worker"]] and results[3]["containers"] == []
    assert container_state(workers["worker"])[2] is True
    assert results[3]["services"]["worker"]["state"] == "paused"
    results = cycle(base_args(stack, state_dir, "blue", state="unpaused", services=["worker"]))
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[1]["containers"] == [workers["worker"]] and results[1]["actions"] == [
        "unpause " + workers["worker"]]
    assert container_state(workers["worker"])[:3] == ("running", "healthy", False)
    assert project_containers(blue, "worker") == [workers["worker"]]

    # A stopped container is started by id too, even without project_src (the rescue path).
    ok(call(base_args(stack, state_dir, "blue", state="stopped", services=["web"])))
    rescue = {k: v for k, v in base_args(stack, state_dir, "blue", state="unpaused", services=["web"]).items()
              if k not in ("project_src", "env")}
    results = cycle(rescue)
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[1]["containers"] == web_ids and project_containers(blue, "web") == web_ids
    assert container_state(web_ids[0])[:2] == ("running", "healthy")

    # absent.
    results = cycle(base_args(stack, state_dir, "blue", state="absent"), diff=True)
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert " down --remove-orphans --timeout 10" in results[1]["actions"][0]
    assert project_containers(blue) == {}
    assert results[1]["diff"]["after"]["web"]["state"] == "absent"
    assert results[3]["actions"] == []
    # The state file is not touched by container states.
    assert file_snapshot(state_file) == written


def test_active_color_is_checked_against_what_runs(demo_stack, state_dir):
    stack = demo_stack
    inspect = base_args(stack, state_dir, "idle", state="inspect")

    # Nothing recorded, nothing runs: color=active fails clearly.
    failed = call(base_args(stack, state_dir, "active", state="inspect"))
    assert failed["rc"] != 0 and failed["msg"].startswith("color=active:") and "blue or green" in failed["msg"]

    # Nothing recorded, blue's web runs: blue is active, with a warning.
    stack.up_color("blue", services=["web"])
    seen = ok(call(inspect))
    assert seen["active_color"] == "blue" and seen["idle_color"] == "green" and seen["color"] == "green"
    assert any("no active color is recorded" in w for w in warnings_of(seen))
    assert seen["recorded_color"] is None

    # Recording green although green does not run: warned, recorded.
    recorded = ok(call(base_args(stack, state_dir, "green", state="active", release="v2")))
    assert recorded["changed"] and recorded["recorded_color"] == "green"
    assert any("no web container" in w for w in warnings_of(recorded))

    # The state file names green, but only blue's web runs: the running color wins, with a warning.
    seen = ok(call(dict(inspect, color="active")))
    assert seen["recorded_color"] == "green" and seen["active_color"] == "blue" and seen["color"] == "blue"
    assert any("names green as active" in w for w in warnings_of(seen))

    # Rolling the record back to blue: release kept from the history? blue never had one -> null.
    back = ok(call(base_args(stack, state_dir, "blue", state="active")))
    assert back["changed"] and back["release"] is None and back["history"][0]["previous_release"] == "v2"
    assert [h["color"] for h in back["history"]] == ["blue", "green"]
    # And to green again with no release: green's last release (v2) comes back from the history.
    again = ok(call(base_args(stack, state_dir, "green", state="active")))
    assert again["release"] == "v2" and len(again["history"]) == 3

    # Nothing recorded, both webs run: the older web (blue) is active, with a warning.
    stack.up_color("green", services=["web"])
    other_dir = state_dir + "-empty"
    seen = ok(call(dict(inspect, state_dir=other_dir)))
    assert seen["active_color"] == "blue" and seen["idle_color"] == "green"
    assert any("both colors" in w for w in warnings_of(seen))
    assert not os.path.exists(other_dir)

    # history_size bounds the history.
    for release in ("v3", "v4", "v5"):
        ok(call(base_args(stack, state_dir, "blue", state="active", release=release, history_size=2)))
    data = json.loads(open(os.path.join(state_dir, "%s.json" % stack.app), encoding="utf-8").read())
    assert [h["release"] for h in data["history"]] == ["v5", "v4"]


def image_tarball(tag, architecture, variant=""):
    """A `docker save` tarball of an empty image whose config names another architecture.

    (`docker import --platform` is ignored by the 20.10 engine; `docker load` keeps the config as it is.)
    """
    layer = b"\0" * 1024  # an empty tar
    layer_sha = hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": architecture, "variant": variant, "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + layer_sha]}}).encode()
    config_sha = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": config_sha + ".json", "RepoTags": [tag],
                            "Layers": [layer_sha + "/layer.tar"]}]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in ((config_sha + ".json", config), (layer_sha + "/layer.tar", layer),
                           ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def arm64_image(demo_stack):
    """An arm64 image on this (amd64) host, tagged <app>-arm:v1; removed afterwards."""
    name = "%s-arm" % demo_stack.app
    proc = subprocess.run(["docker", "load"], input=image_tarball("%s:v1" % name, "arm64", "v8"),
                          capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert docker("image", "inspect", "--format", "{{.Architecture}}", "%s:v1" % name).strip() == "arm64"
    try:
        yield name
    finally:
        docker("image", "rm", "--force", "%s:v1" % name, check=False)


def test_bad_input_changes_nothing(demo_stack, state_dir, tmp_path, arm64_image):
    stack = demo_stack
    stack.up_color("blue")
    ok(call(base_args(stack, state_dir, "blue", state="active", release="v1")))
    state_file = os.path.join(state_dir, "%s.json" % stack.app)
    before, before_file = snapshot(stack), file_snapshot(state_file)
    assert len(before) == 3 and before_file

    broken_src = changed_compose_dir(tmp_path, "broken", edit=lambda text: text.replace("services:", "services: [", 1))
    blue = dict(base_args(stack, state_dir, "blue"))
    cases = [
        ("app", dict(blue, app="Blue App", state="absent"), "app="),
        ("app", dict(blue, app="a" * 56, state="absent"), "app="),
        ("color", dict(blue, color="purple", state="absent"), "color"),
        ("state", dict(blue, state="gone"), "state"),
        ("project_src", dict(blue, project_src=str(tmp_path / "nowhere"), state="absent"), "project_src="),
        ("files", dict(blue, files=["nope.yml"], state="stopped"), "files:"),
        ("env_files", dict(blue, env_files=["nope.env"], state="stopped"), "env_files:"),
        ("files", dict(blue, project_src=broken_src, state="stopped"), "files:"),
        ("env", dict(blue, env={k: v for k, v in blue["env"].items() if k != "BLUEGREEN_WEB_PORT"},
                     state="stopped"), "files:"),
        ("services", dict(blue, services=["web", "nope"], state="stopped"), "services: nope"),
        ("stop_timeout", dict(blue, stop_timeout=-1, state="stopped"), "stop_timeout"),
        ("wait_timeout", dict(blue, wait_timeout=-5, state="started"), "wait_timeout"),
        ("history_size", dict(blue, history_size=-1, state="active", color="green"), "history_size"),
        ("docker_host", dict(blue, docker_host="unix://%s/none.sock" % tmp_path, state="stopped"), "docker_host"),
        ("project_src", dict({k: v for k, v in blue.items() if k != "project_src"}, state="started"), "project_src"),
        ("pull", dict(blue, env=color_env(stack, "blue", "no-such-release"), pull="never", state="prepared"),
         "pull=never"),
        ("release not prepared", dict(blue, env=color_env(stack, "blue", "no-such-release"), state="started"),
         "not present locally: prepare it first"),
        ("architecture", dict(blue, env=color_env(stack, "blue", "v1", DEMO_IMAGE=arm64_image), state="started"),
         "arm64"),
        ("compose v1", dict(blue, state="stopped"), "Compose v1 (/usr/bin/docker-compose 1.29"),
    ]
    for option, args, expected in cases:
        env = only_compose_v1_env(tmp_path) if option == "compose v1" else None
        for check_mode in (True, False):
            result = call(args, check_mode=check_mode, env=env)
            assert result["rc"] != 0 and result.get("failed"), (option, result)
            assert expected in result["msg"], (option, result["msg"])
            assert result.get("actions", []) == [], (option, result["actions"])
            assert snapshot(stack) == before, option
            assert file_snapshot(state_file) == before_file, option
    # The image name is an env value, masked in the result (env is no_log); the rest is plain.
    arch = call(cases[-2][1])
    assert "(service beat) is built for arm64" in arch["msg"] and "is amd64" in arch["msg"]

    # A start that never gets healthy fails after wait_timeout with the failing service's logs;
    # the active color is untouched.
    failed = call(base_args(stack, state_dir, "green", env_release="broken", state="started", services=["web"],
                            wait_timeout=3))
    assert failed["rc"] != 0 and "%s: not ready after wait_timeout=3s" % stack.project("green") in failed["msg"]
    assert failed["actions"] and "web" in failed["logs"]
    assert {cid: v for cid, v in snapshot(stack).items() if v[0] == "blue"} == before
    assert file_snapshot(state_file) == before_file
