# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Docker Engine wrapper: summarize_container() and friends against captured `docker inspect`,
and Engine against a fake docker.APIClient (the SDK's low-level client: no daemon is asked)."""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path

import pytest
from docker.errors import APIError, DockerException, NotFound

from ansible_collections.lowspec.bluegreen.plugins.module_utils import _docker
from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import BlueGreenError

FIXTURES = Path(__file__).parent / "fixtures"
INSPECTED = json.loads((FIXTURES / "docker-inspect-demo-blue.json").read_text())


def by_service(items):
    return dict((item["Config"]["Labels"][_docker.LABEL_SERVICE], item) for item in items)


# -- summaries -------------------------------------------------------------------------------------

def test_summarize_container_from_captured_docker_inspect():
    summaries = dict((c["service"], c) for c in map(_docker.summarize_container, INSPECTED))
    assert set(summaries) == {"web", "worker", "beat"}
    worker = summaries["worker"]
    assert worker["id"] == by_service(INSPECTED)["worker"]["Id"] and len(worker["id"]) == 64
    assert worker["name"] == "demo-blue-worker-1" and worker["project"] == "demo-blue"
    assert worker["state"] == "running" and worker["running"] and not worker["paused"]
    assert worker["health"] == "healthy" and summaries["beat"]["health"] == "none"
    assert worker["image"] == "lowspec-demo:v1" and worker["image_id"].startswith("sha256:c1efb624")
    assert worker["hostname"] == worker["id"][:12] and worker["oneoff"] is False
    assert worker["restart_policy"] == "unless-stopped"
    assert worker["restarting"] is False and worker["restart_count"] == 0
    assert worker["config_hash"] == "fa637566ba576fbdca4718dc5b1b111abb78cb3ed4a11f7e29405d9e969c3cf6"
    assert worker["release"] is None, "containers made before lowspec.bluegreen labelled them"


def test_summarize_container_reads_the_release_label_and_restarts():
    item = copy.deepcopy(by_service(INSPECTED)["web"])
    item["Config"]["Labels"][_docker.LABEL_RELEASE] = "v2.4.0"
    item["RestartCount"] = 4
    item["State"].update(Status="restarting", Restarting=True)
    summary = _docker.summarize_container(item)
    assert summary["release"] == "v2.4.0" and summary["restart_count"] == 4 and summary["restarting"] is True
    assert summary["state"] == "restarting"


def test_a_paused_container_is_not_running():
    item = copy.deepcopy(INSPECTED[0])
    item["State"]["Paused"] = True
    summary = _docker.summarize_container(item)
    assert summary["state"] == "paused" and summary["paused"] and not summary["running"]


def test_summarize_container_of_a_sparse_object():
    summary = _docker.summarize_container({"Id": "abc"})
    assert summary["state"] == "unknown" and summary["running"] is False and summary["health"] == "none"
    assert summary["service"] == "" and summary["release"] is None and summary["config_hash"] == ""


def summary(service, cid, state="running", health="none", release=None, created="1"):
    return {"service": service, "id": cid, "state": state, "health": health, "image": "i", "created": created,
            "release": release, "name": "p-%s-%s" % (service, cid)}


def test_services_from_containers_groups_and_flags_what_differs():
    services = _docker.services_from_containers([
        summary("worker", "a", release="v1"), summary("worker", "b", state="exited", release="v2", created="2"),
        summary("web", "c", health="healthy", release="v1"), summary("beat", "d"),
    ])
    assert services["worker"] == {"state": "mixed", "health": "none", "containers": ["a", "b"], "image": "i",
                                  "created": "2", "release": "mixed"}
    assert services["web"] == {"state": "running", "health": "healthy", "containers": ["c"], "image": "i",
                               "created": "1", "release": "v1"}
    assert services["beat"]["release"] is None


def test_describe_names_state_and_health():
    assert _docker.describe([summary("web", "c", health="starting")]) == "p-web-c (running, health starting)"


# -- Engine over a fake SDK client -------------------------------------------------------------------

class FakeModule:
    def __init__(self):
        self.failed = None

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise SystemExit(1)


class FakeAPI:
    """docker.APIClient: the calls Engine makes, answered from `items` (Id -> inspect object)."""

    def __init__(self, items=(), **kwargs):
        self.kwargs = kwargs
        self.items = dict((item["Id"], copy.deepcopy(item)) for item in items)
        self.calls = []
        self.errors = {}  # (op, id) -> exception
        self.barrier = None

    def _op(self, op, ident, **kwargs):
        self.calls.append((op, ident, kwargs))
        if (op, ident) in self.errors:
            raise self.errors[(op, ident)]
        if self.barrier is not None:
            try:
                self.barrier.wait()
            except threading.BrokenBarrierError:
                raise APIError("the other operation never started: not side by side") from None
        if ident not in self.items:
            raise NotFound("No such container: %s" % ident)
        return self.items[ident]

    def containers(self, all=False, filters=None):  # noqa: A002 - the SDK's name
        self.calls.append(("ps", all, filters))
        project = filters["label"].split("=", 1)[1]
        return [{"Id": i} for i, item in self.items.items()
                if item["Config"]["Labels"].get(_docker.LABEL_PROJECT) == project]

    def inspect_container(self, ident):
        return copy.deepcopy(self._op("inspect", ident))

    def update_container(self, ident, restart_policy=None):
        self._op("update", ident, restart_policy=restart_policy)["HostConfig"]["RestartPolicy"] = restart_policy

    def stop(self, ident, timeout=None):
        self._op("stop", ident, timeout=timeout)["State"].update(Status="exited", Running=False)

    def pause(self, ident):
        self._op("pause", ident)["State"].update(Status="paused", Paused=True)

    def unpause(self, ident):
        self._op("unpause", ident)["State"].update(Status="running", Paused=False)

    def start(self, ident):
        self._op("start", ident)["State"].update(Status="running", Running=True)

    def kill(self, ident, signal=None):
        self._op("kill", ident, signal=signal)

    def remove_container(self, ident, v=False, force=False):
        self._op("rm", ident, v=v, force=force)
        del self.items[ident]

    def logs(self, ident, stdout=True, stderr=True, tail=None):
        self.calls.append(("logs", ident, {"tail": tail}))
        if ("logs", ident) in self.errors:
            raise self.errors[("logs", ident)]
        return b"booting\n\xff worker failed\n"

    def exec_create(self, ident, cmd, stdout=True, stderr=True):
        self.calls.append(("exec", ident, {"cmd": cmd}))
        if ("exec", ident) in self.errors:
            raise self.errors[("exec", ident)]
        return {"Id": "exec-1"}

    def exec_start(self, exec_id, demux=False):
        assert demux is True
        return b'{"celery@x": {"ok": "pong"}}\n', None

    def exec_inspect(self, exec_id):
        return {"ExitCode": 0}

    def inspect_image(self, reference):
        self.calls.append(("image inspect", reference, {}))
        if reference != "lowspec-demo:v1":
            raise NotFound("No such image: %s" % reference)
        return {"Id": "sha256:c1ef", "Architecture": "amd64"}

    def networks(self, filters=None):
        return [{"Name": "demo-blue_default"}, {"Name": "demo-blue_broker"}]

    def volumes(self, filters=None):
        return {"Volumes": None}

    def remove_network(self, name):
        self.calls.append(("network rm", name, {}))

    def remove_volume(self, name):
        self.calls.append(("volume rm", name, {}))

    def info(self):
        return {"Architecture": "x86_64", "DockerRootDir": "/var/lib/docker"}

    def version(self):
        return {"Arch": "arm64", "Os": "linux", "Version": "27.3.1"}


@pytest.fixture
def api(monkeypatch):
    """The FakeAPI the next Engine gets; `api.made` holds the keyword arguments it was made with."""
    fake = FakeAPI(INSPECTED)
    monkeypatch.setattr(_docker.docker, "APIClient", lambda **kwargs: (fake.__dict__.update(made=kwargs), fake)[1])
    monkeypatch.setattr(_docker.docker.utils, "kwargs_from_env", lambda: {"base_url": "unix:///from-env.sock"})
    return fake


def engine(docker_host=""):
    return _docker.Engine(FakeModule(), docker_host)


def ids(api):
    return dict((service, item["Id"]) for service, item in by_service(api.items.values()).items())


def test_the_daemon_is_the_one_docker_host_names(api):
    engine("ssh://pi@pi5")
    assert api.made["base_url"] == "ssh://pi@pi5" and api.made["use_ssh_client"] is True
    assert api.made["version"] == "auto"
    engine("")
    assert api.made["base_url"] == "unix:///from-env.sock", "DOCKER_HOST and friends of the environment"


def test_an_unreachable_daemon_fails_naming_it(monkeypatch):
    def refuse(**kwargs):
        raise DockerException("Error while fetching server API version: ('Connection aborted.', "
                              "FileNotFoundError(2, 'No such file or directory'))")

    monkeypatch.setattr(_docker.docker, "APIClient", refuse)
    with pytest.raises(_docker.DockerError) as err:
        engine("unix:///nope.sock")
    assert str(err.value).startswith("the Docker daemon at unix:///nope.sock (docker_host) is not reachable: Error "
                                     "while fetching")
    assert issubclass(_docker.DockerError, BlueGreenError)
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.5:2375")
    with pytest.raises(_docker.DockerError, match=r"^the Docker daemon at tcp://10.0.0.5:2375 \(DOCKER_HOST\) is"):
        engine("")
    monkeypatch.delenv("DOCKER_HOST")
    with pytest.raises(_docker.DockerError, match="^the Docker daemon at the default socket is not reachable"):
        engine("")


def test_without_the_sdk_the_module_fails_saying_what_to_install(monkeypatch):
    monkeypatch.setattr(_docker, "HAS_DOCKER_SDK", False)
    module = FakeModule()
    with pytest.raises(SystemExit):
        _docker.Engine(module)
    assert "Failed to import the required Python library (docker)" in module.failed["msg"]


def test_the_daemons_architecture_and_info(api):
    assert engine().architecture() == "arm64"
    assert engine().info()["DockerRootDir"] == "/var/lib/docker"


def test_containers_are_the_projects_by_label_one_offs_left_out_and_sorted(api):
    run = copy.deepcopy(by_service(INSPECTED)["web"])
    run["Id"] = "f" * 64
    run["Config"]["Labels"][_docker.LABEL_ONEOFF] = "True"
    api.items[run["Id"]] = run
    found = engine().containers("demo-blue")
    assert [c["service"] for c in found] == ["beat", "web", "worker"]
    assert api.calls[0] == ("ps", True, {"label": "com.docker.compose.project=demo-blue"})
    assert [c["service"] for c in engine().containers("demo-blue", ["worker"])] == ["worker"]
    assert engine().containers("demo-green") == []


def test_inspect_skips_containers_that_are_gone(api):
    cid = ids(api)["web"]
    assert [c["id"] for c in engine().inspect(["0" * 64, cid])] == [cid]


@pytest.mark.parametrize("op", ["stop", "pause"])
def test_a_restart_always_container_becomes_unless_stopped_before_it_is_stopped_or_frozen(api, op):
    # Otherwise the daemon's next start (a reboot) runs the old beat beside the new one.
    beat = ids(api)["beat"]
    api.items[beat]["HostConfig"]["RestartPolicy"] = {"Name": "always"}
    eng = engine()
    container = eng.inspect([beat])
    getattr(eng, op)(container, 60) if op == "stop" else eng.pause(container)
    assert [c[0] for c in api.calls] == ["inspect", "update", op]
    assert api.calls[1][2] == {"restart_policy": {"Name": "unless-stopped"}}
    assert eng.actions[0] == "update --restart unless-stopped %s" % beat


def test_other_restart_policies_and_starts_are_left_alone(api):
    eng = engine()
    worker = eng.inspect([ids(api)["worker"]])
    eng.stop(worker, 30)
    eng.start([worker[0]["id"]])
    assert [c[0] for c in api.calls] == ["inspect", "stop", "start"] and api.calls[1][2] == {"timeout": 30}
    assert eng.actions == ["stop --time 30 %s" % worker[0]["id"], "start %s" % worker[0]["id"]]


def test_containers_are_stopped_side_by_side(api):
    """Each stop waits out its own grace period: two containers take one, not two."""
    eng = engine()
    containers = eng.inspect([ids(api)["worker"], ids(api)["beat"]])
    api.barrier = threading.Barrier(2, timeout=2)  # both stops must be in flight at once
    eng.stop(containers, 60)
    assert sorted(c[0] for c in api.calls[2:]) == ["stop", "stop"]


def test_failed_operations_are_named_with_each_container(api):
    eng = engine()
    web, worker = ids(api)["web"], ids(api)["worker"]
    api.errors[("unpause", web)] = APIError("Conflict", explanation=b"Container %s is not paused" % web.encode())
    with pytest.raises(_docker.DockerError) as err:
        eng.unpause([web, worker, "0" * 64])
    assert str(err.value).startswith("docker unpause failed: ")
    assert "%s: Container %s is not paused" % (web[:12], web) in str(err.value)
    assert "000000000000: no such container" in str(err.value)
    assert eng.actions == ["unpause %s %s %s" % (web, worker, "0" * 64)]


def test_a_freeze_that_misses_its_deadline_is_tried_again_and_a_stopped_container_is_not(api, monkeypatch):
    """runc thaws and says "unable to freeze" when the freezer is slow on a saturated host."""
    monkeypatch.setattr(_docker.time, "sleep", lambda _s: None)
    eng = engine()
    worker, web = ids(api)["worker"], ids(api)["web"]
    misses = {"left": 2}
    real_pause = api.pause

    def slow_freezer(ident):
        if misses["left"]:
            misses["left"] -= 1
            api.calls.append(("pause", ident, {}))
            raise APIError("Server Error", explanation=b"Cannot pause container: OCI runtime pause failed: "
                           b"unable to freeze: unknown")
        real_pause(ident)

    monkeypatch.setattr(api, "pause", slow_freezer)
    eng.pause(eng.inspect([worker]))
    assert [c for c in api.calls if c[0] == "pause"] == [("pause", worker, {})] * 3
    assert api.items[worker]["State"]["Paused"] is True

    misses["left"] = 9
    with pytest.raises(_docker.DockerError) as err:
        eng.pause(eng.inspect([web]))
    assert "unable to freeze" in str(err.value) and misses["left"] == 9 - _docker.Engine.PAUSE_TRIES

    api.items[web]["State"].update(Status="exited", Running=False)
    misses["left"] = 1
    with pytest.raises(_docker.DockerError):
        eng.pause(eng.inspect([web]))
    assert misses["left"] == 0, "a container that is not running is not tried again"


def test_a_stop_in_the_background_is_its_own_docker_stop_process(api, monkeypatch):
    spawned = []
    monkeypatch.setattr(_docker.subprocess, "Popen", lambda argv, **kwargs: spawned.append((argv, kwargs)))
    eng = engine("tcp://127.0.0.1:2375")
    beat = eng.inspect([ids(api)["beat"]])
    api.items[beat[0]["id"]]["HostConfig"]["RestartPolicy"] = {"Name": "always"}
    beat[0]["restart_policy"] = "always"
    eng.stop_in_background("/usr/bin/docker", beat, 90)
    ((argv, kwargs),) = spawned
    assert argv == ["/usr/bin/docker", "stop", "--time", "90", beat[0]["id"]]
    assert kwargs["start_new_session"] is True and kwargs["env"]["DOCKER_HOST"] == "tcp://127.0.0.1:2375"
    assert kwargs["stdin"] == kwargs["stdout"] == kwargs["stderr"] == _docker.subprocess.DEVNULL
    assert eng.actions == ["update --restart unless-stopped %s" % beat[0]["id"],
                           "stop --time 90 %s (in the background)" % beat[0]["id"]]
    assert [c[0] for c in api.calls] == ["inspect", "update"], "the daemon is not asked to stop it itself"
    eng.stop_in_background("/usr/bin/docker", [], 90)
    assert len(spawned) == 1


class Clock:
    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_wait_exited_fails_naming_what_still_runs_at_the_deadline(api, monkeypatch):
    monkeypatch.setattr(_docker, "time", Clock())
    eng = engine()
    beat = eng.inspect([ids(api)["beat"]])
    with pytest.raises(BlueGreenError) as err:
        eng.wait_exited(beat, 2, "beat")
    assert str(err.value) == "beat container(s) demo-blue-beat-1 still running after docker stop"
    api.items[beat[0]["id"]]["State"].update(Status="exited", Running=False)
    eng.wait_exited(beat, 2, "beat")


def test_logs_exec_and_images(api):
    eng = engine()
    web = ids(api)["web"]
    assert eng.logs(web, tail=5) == ["booting", "\ufffd worker failed"] and api.calls[-1][2] == {"tail": 5}
    api.errors[("logs", web)] = APIError("gone")
    assert eng.logs(web) == []
    assert eng.exec_run(web, ("celery", "inspect", "ping")) == (0, '{"celery@x": {"ok": "pong"}}\n', "")
    api.errors[("exec", web)] = APIError("Conflict", explanation="Container %s is paused" % web)
    assert eng.exec_run(web, ["celery"]) == (126, "", "Container %s is paused" % web)
    assert eng.image("lowspec-demo:v1")["Id"] == "sha256:c1ef" and eng.image("lowspec-demo:v9") is None


def test_networks_and_volumes_by_label(api):
    eng = engine()
    web = ids(api)["web"]
    assert eng.labelled("network", "demo-blue") == ["demo-blue_broker", "demo-blue_default"]
    assert eng.labelled("volume", "demo-blue") == []
    eng.remove_labelled("network", ["demo-blue_default"])
    eng.remove([web], volumes=True)
    assert eng.actions == ["network rm demo-blue_default", "rm --volumes %s" % web]
    assert ("network rm", "demo-blue_default", {}) in api.calls and web not in api.items
    assert api.calls[-1] == ("rm", web, {"v": True, "force": True})
