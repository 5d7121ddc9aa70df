# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Faults 7 and 10 of the reliability suite, on the fleet test bed (tests/e2e/fleet/fleet.sh).

Four test hosts, each a network namespace with its own sshd, Docker daemon,
nginx and Redis; Ansible reaches them over real SSH. v1 is deployed to all of
them once (module scope), then, at the same time on different hosts:

- fault 10 (pi5-1..3, batches of 2 and 1 host, max_fail_percentage 0): pi5-2's
  link is cut while its new web is being health-checked, after its old workers
  were quiesced. The rollout stops: pi5-1 (the same batch) is on v2, pi5-3 (the
  next batch) is untouched. Once pi5-2 is reachable again its old web still
  answers, but no rescue ran there: its old workers and beat are stopped and
  the lost run's lock is held. A plain re-run is refused, naming the lock; the
  recovery that roles/bluegreen/README.md documents for a run that is gone
  (re-run, taking the lock over) completes the whole fleet.
- fault 7 (pi5-4): its Docker daemon is stopped (SIGTERM, as its service
  manager would) while the new web is being health-checked, and started again
  once the deploy has ended. The deploy fails at the health check and the
  rescue cannot reach Docker. The state file and the lock are as before, the
  old web answers again with its own container once the daemon is back, and
  the documented recovery (running the deploy again) completes the new
  release with no manual step.

The window for both faults: that host's health check must see 10 consecutive
successes (bluegreen_health_successes) one second apart, so it lasts at least
9 s, and the fault is injected as soon as the playbook prints that task.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import yaml

from tests.support.runner import ROOT, ansible_env

pytestmark = pytest.mark.fleet

FLEET_SH = ROOT / "tests" / "e2e" / "fleet" / "fleet.sh"
FLEET_DIR = Path(os.environ.get("LOWSPEC_FLEET_DIR", ROOT / ".build" / "fleet"))
RUN_DIR = Path(os.environ.get("LOWSPEC_FLEET_RUN_DIR", "/run/lowspec-fleet"))
INVENTORY = FLEET_DIR / "inventory.yml"
LOGS = ROOT / ".build" / "fleet-faults"
APP = "demo"
NGINX_PORT = 18080

ROLLOUT = ["pi5-1", "pi5-2", "pi5-3"]
LOST = "pi5-2"
DAEMON_HOST = "pi5-4"
HOSTS = ROLLOUT + [DAEMON_HOST]
SERVICES = ("web", "worker", "beat")

HEALTH_TASK = "start the new web, then switch traffic to it once it answers healthy"
SLOW_HEALTH = 10
# The documented way to take over the lock of a run that is gone (roles/bluegreen/README.md).
BREAK_LOCK = {"bluegreen_lock_break_stale": True, "bluegreen_lock_stale_after": 0}
# Every run: the test hosts share this machine's /proc/pressure (the bed never blocks
# on it anyway), and the admission is proven by test_host_pressure and the
# reliability suite: here it would only cost time.
COMMON = {"bluegreen_pressure_check": False}
RECAP = re.compile(r"^(pi5-\d+)\s*: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def fleet_sh(*args):
    proc = subprocess.run(["bash", str(FLEET_SH), *args], capture_output=True, text=True, env=ansible_env(),
                          timeout=300, check=False)
    if proc.returncode != 0:
        raise AssertionError("fleet.sh %s failed (%s): %s%s" % (" ".join(args), proc.returncode, proc.stdout, proc.stderr))


def recap_of(output):
    """{host: {ok, changed, unreachable, failed}} from the PLAY RECAP."""
    return {m.group(1): dict(zip(("ok", "changed", "unreachable", "failed"), map(int, m.groups()[1:])))
            for m in RECAP.finditer(output)}


class Fleet:
    """The test hosts: runs the collection's playbooks against them and reads each host's picture."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.addresses = {name: spec["ansible_host"] for name, spec in
                          yaml.safe_load(INVENTORY.read_text())["all"]["children"]["pi5"]["hosts"].items()}
        # A control path of our own: a master connection of another run (without our
        # ServerAlive options) must not carry our tasks.
        control = workdir / "cp"
        control.mkdir()
        self.env = ansible_env({"ANSIBLE_SSH_CONTROL_PATH_DIR": str(control), "PYTHONUNBUFFERED": "1"})
        LOGS.mkdir(parents=True, exist_ok=True)

    def overlay(self, name, host_vars):
        """An inventory file that adds host variables to the fleet's inventory."""
        path = self.workdir / ("%s.yml" % name)
        path.write_text(json.dumps({"all": {"children": {"pi5": {"hosts": host_vars}}}}))
        return path

    def playbook(self, label, extra_vars, limit, inventories=(), on_line=None, playbook="deploy.yml", timeout=900):
        """ansible-playbook on the fleet as an operator runs it; on_line(line) sees the output as it comes."""
        argv = ["ansible-playbook", "-i", str(INVENTORY)]
        for extra in inventories:
            argv += ["-i", str(extra)]
        argv += [str(ROOT / "playbooks" / playbook), "--limit", ",".join(limit), "-e", json.dumps(dict(COMMON, **extra_vars))]
        lines, stamped = [], []
        started = time.monotonic()
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env,
                              stdin=subprocess.DEVNULL, start_new_session=True) as proc:
            # A run that hangs (a dead connection) is killed with its workers, and fails the test;
            # so is a run whose fault could not be injected.
            watchdog = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL))
            watchdog.start()
            try:
                for line in proc.stdout:
                    lines.append(line)
                    stamped.append("%6.1f %s" % (time.monotonic() - started, line))
                    if on_line:
                        on_line(line)
            except BaseException:
                os.killpg(proc.pid, signal.SIGKILL)
                raise
            finally:
                watchdog.cancel()
                proc.wait()
        output = "".join(lines)
        # Kept for a look after a failure, each line with the seconds since the start.
        (LOGS / ("%s.log" % label)).write_text("".join(stamped))
        print("%s: rc=%s in %.0fs" % (label, proc.returncode, time.monotonic() - started), flush=True)
        return subprocess.CompletedProcess(argv, proc.returncode, output)

    def docker(self, host, *args):
        env = dict(os.environ, DOCKER_HOST="unix://%s" % (RUN_DIR / host / "docker.sock"))
        return subprocess.run(["docker", *args], capture_output=True, text=True, env=env, timeout=60, check=True).stdout

    def view(self, host):
        """What the host shows: state file, lock, containers, nginx upstream and the answer through nginx."""
        state_dir = FLEET_DIR / "hosts" / host / "state"
        state_file = state_dir / ("%s.json" % APP)
        lock_file = state_dir / ("%s.lock" % APP)
        raw = state_file.read_bytes() if state_file.exists() else b""
        ps = [json.loads(line) for line in self.docker(host, "ps", "-a", "--no-trunc", "--format", "{{json .}}").splitlines()]
        upstream = (FLEET_DIR / "hosts" / host / "nginx" / "upstream.conf").read_text()
        port = re.search(r"server [0-9.]+:([0-9]+);", upstream)
        try:
            reply = requests.get("http://%s:%d/health/" % (self.addresses[host], NGINX_PORT), timeout=5)
            body = reply.json() if reply.headers.get("content-type", "").startswith("application/json") else {}
            proxy = (reply.status_code, body.get("color"), body.get("release"))
        except (requests.RequestException, ValueError) as exc:
            proxy = (type(exc).__name__, None, None)
        return {
            "host": host,
            "state_raw": raw,
            "state": json.loads(raw) if raw else {},
            "lock": json.loads(lock_file.read_text()) if lock_file.exists() else None,
            "containers": {c["Names"]: c for c in ps},
            "upstream_port": int(port.group(1)) if port else 0,
            "proxy": proxy,
        }

    def wait_answering(self, host, color, release, timeout=90):
        """Poll the host's nginx until it answers 200 from `color` `release`; return the last view."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.view(host)
            if seen["proxy"] == (200, color, release) or time.monotonic() > deadline:
                return seen
            time.sleep(1)

    def workers_consume(self, host, n=2, timeout=60):
        """Tasks queued through the host's nginx are run (by whichever workers run there)."""
        base = "http://%s:%d" % (self.addresses[host], NGINX_PORT)
        done_before = requests.get(base + "/stats", timeout=10).json()["completed"]
        requests.post(base + "/enqueue", json={"n": n, "seconds": 0.1}, timeout=10).raise_for_status()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stats = requests.get(base + "/stats", timeout=10).json()
            if stats["completed"] >= done_before + n:
                return not stats["run_twice"]
            time.sleep(0.5)
        return False


def container(seen, color, service):
    return seen["containers"].get("%s-%s-%s-1" % (APP, color, service), {})


def ids(seen, color):
    return {svc: container(seen, color, svc).get("ID") for svc in SERVICES}


def running(seen, color, service):
    return container(seen, color, service).get("State") == "running"


def assert_live(seen, color, release, history):
    """`release` is live on `color`: recorded, proxied, answering, its services running, one beat, no lock."""
    other = "green" if color == "blue" else "blue"
    host = seen["host"]
    assert (seen["state"].get("active_color"), seen["state"].get("release")) == (color, release), (host, seen["state"])
    assert [h["release"] for h in seen["state"]["history"]] == history, (host, seen["state"]["history"])
    assert seen["upstream_port"] == (18001 if color == "blue" else 18002), (host, seen["upstream_port"])
    assert seen["proxy"] == (200, color, release), (host, seen["proxy"])
    for svc in SERVICES:
        assert running(seen, color, svc), (host, svc, container(seen, color, svc))
        assert container(seen, color, svc)["Image"] == "lowspec-demo:%s" % release, (host, svc)
    assert "(healthy)" in container(seen, color, "worker")["Status"], (host, container(seen, color, "worker"))
    assert not running(seen, other, "worker") and not running(seen, other, "beat"), (host, seen["containers"].keys())
    assert sum(1 for name, c in seen["containers"].items() if "-beat-" in name and c["State"] == "running") == 1, host
    assert seen["lock"] is None, (host, seen["lock"])


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Four test hosts with v1 live on each; everything removed afterwards, also when a test fails."""
    fleet_sh("down")  # whatever a killed run left behind
    try:
        fleet_sh("up", str(len(HOSTS)))
        bed = Fleet(tmp_path_factory.mktemp("fleet"))
        first = bed.playbook("v1", {"bluegreen_release": "v1", "bluegreen_serial": ["100%"]}, HOSTS)
        assert first.returncode == 0, first.stdout[-4000:]
        for host in HOSTS:
            assert_live(bed.view(host), "blue", "v1", ["v1"])
        yield bed
    finally:
        # Removes namespaces, veths (a cut link included), daemons (a stopped one included),
        # containers and mounts, and fails when anything is left.
        fleet_sh("down")


def once_the_new_web_runs(fleet, host, action):
    """A started thread that runs action() once host's new (green) web runs. The task's line is
    printed before its module reaches the host, and that module quiesces the old color first:
    acting once the new web runs lands the fault mid-module, in its (slow) health check."""
    def watch():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if fleet.docker(host, "ps", "-q", "--filter", "name=%s-green-web-1" % APP, "--filter", "status=running").strip():
                action()
                return
            time.sleep(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_fault_10_host_unreachable_mid_rollout(fleet, fault_7_in_background):  # pylint: disable=unused-argument
    before = {host: fleet.view(host) for host in ROLLOUT}
    slow = fleet.overlay("slow-health", {LOST: {"bluegreen_health_successes": SLOW_HEALTH, "bluegreen_health_delay": 1}})
    batch, cut, cutters = set(), [], []

    def cut_the_link_now():
        fleet_sh("link", LOST, "down")
        cut.append(time.monotonic())

    def cut_the_link(line):
        if line.startswith("PLAY ["):
            batch.clear()
        batch.update(re.findall(r"\[(pi5-\d+)[\] ]", line))
        if not cutters and HEALTH_TASK in line and LOST in batch:
            cutters.append(once_the_new_web_runs(fleet, LOST, cut_the_link_now))

    # pi5-1 and pi5-2 in the first batch, pi5-3 in the second.
    rollout = {"bluegreen_release": "v2", "bluegreen_serial": [2, 1]}
    try:
        result = fleet.playbook("fault10-rollout", rollout, ROLLOUT, inventories=[slow], on_line=cut_the_link)
    finally:
        for cutter in cutters:
            cutter.join(70)
        fleet_sh("link", LOST, "up")
    out = result.stdout
    assert cut, "the rollout never reached %s's health check\n%s" % (LOST, out[-4000:])
    recap = recap_of(out)

    # The rollout stopped: pi5-1, beside the lost host, is done; pi5-3 never started.
    assert result.returncode != 0, out[-4000:]
    assert recap[LOST]["unreachable"] == 1, (recap, out[-4000:])
    assert recap["pi5-1"]["failed"] == 0 and recap["pi5-1"]["unreachable"] == 0 and recap["pi5-1"]["changed"] > 0, recap
    assert "pi5-3" not in recap, "the rollout went on after a host was lost: %s" % recap
    assert "Rollout stopped after this batch: %s failed or became unreachable" % LOST in out, out[-4000:]

    now = {host: fleet.view(host) for host in ROLLOUT}
    assert_live(now["pi5-1"], "green", "v2", ["v2", "v1"])
    assert ids(now["pi5-1"], "blue") == ids(before["pi5-1"], "blue")
    untouched = now["pi5-3"]
    assert untouched["state_raw"] == before["pi5-3"]["state_raw"] and untouched["lock"] is None
    assert {n: (c["ID"], c["State"]) for n, c in untouched["containers"].items()} == \
        {n: (c["ID"], c["State"]) for n, c in before["pi5-3"]["containers"].items()}, "pi5-3 was touched"

    # pi5-2, reachable again: no rescue ran there. Its old web answers (same container),
    # the state file is as before, but the old workers and beat stay stopped (the
    # quiesce ran before the cut) and the lost run's lock is held.
    lost, old = now[LOST], before[LOST]
    assert lost["proxy"] == (200, "blue", "v1") and lost["state_raw"] == old["state_raw"], lost["proxy"]
    assert ids(lost, "blue") == ids(old, "blue"), "the old release's containers were recreated"
    assert running(lost, "blue", "web") and running(lost, "green", "web")
    assert not running(lost, "blue", "worker") and not running(lost, "blue", "beat"), lost["containers"].keys()
    assert lost["lock"] and "deploying v2" in lost["lock"]["holder"], lost["lock"]

    # A plain re-run is refused by that lock, naming it and how to take it over; nothing changes.
    refused = fleet.playbook("fault10-plain-rerun", {"bluegreen_release": "v2"}, [LOST])
    assert refused.returncode != 0
    assert "failed at step 'lock'" in refused.stdout and "bluegreen_lock_break_stale" in refused.stdout, \
        refused.stdout[-4000:]
    again = fleet.view(LOST)
    assert again["lock"] == lost["lock"] and again["state_raw"] == old["state_raw"]

    # The documented recovery: the same rollout again (default batches), taking the lock over.
    rerun = fleet.playbook("fault10-rerun", dict(BREAK_LOCK, bluegreen_release="v2"), ROLLOUT)
    assert rerun.returncode == 0, rerun.stdout[-5000:]
    assert recap_of(rerun.stdout)["pi5-1"]["changed"] == 0, "pi5-1 was deployed again"
    for host in ROLLOUT:
        done = fleet.view(host)
        assert_live(done, "green", "v2", ["v2", "v1"])
        # The old release is kept as it was (rollback needs it): the very same containers.
        assert ids(done, "blue") == ids(before[host], "blue"), host
        assert fleet.workers_consume(host), "%s: queued tasks not run (once)" % host
    assert ids(fleet.view("pi5-1"), "green") == ids(now["pi5-1"], "green"), "pi5-1 was deployed again"


def fault_7_scenario(fleet):
    """Fault 7 from start to recovery, with its assertions (run beside fault 10)."""
    host = DAEMON_HOST
    before = fleet.view(host)
    stopped, stoppers = [], []

    def stop_the_daemon_now():
        fleet_sh("docker", host, "stop")
        stopped.append(time.monotonic())

    def stop_the_daemon(line):
        if not stoppers and HEALTH_TASK in line:
            stoppers.append(once_the_new_web_runs(fleet, host, stop_the_daemon_now))

    try:
        result = fleet.playbook("fault7-deploy", {"bluegreen_release": "v2", "bluegreen_health_successes": SLOW_HEALTH,
                                                  "bluegreen_health_delay": 1},
                                [host], on_line=stop_the_daemon)
        for stopper in stoppers:
            stopper.join(70)
        # With the daemon still down: the lock was released (file work, no Docker) and
        # nothing was recorded.
        state_dir = FLEET_DIR / "hosts" / host / "state"
        lock_left = (state_dir / ("%s.lock" % APP)).exists()
        state_after = (state_dir / ("%s.json" % APP)).read_bytes()
    finally:
        fleet_sh("docker", host, "start")
    out = result.stdout
    assert stopped, "the deploy never reached the health check\n%s" % out[-4000:]
    assert result.returncode != 0, out[-4000:]
    assert not lock_left, "the deploy lock was left behind"
    assert state_after == before["state_raw"], "the state file changed"

    # What the user sees: the web phase failed (its health check refused once the daemon
    # stopped the new web, or the daemon itself gone), then the rescue's message naming
    # the step; when the daemon was still down, it also says what could not be put back and how.
    assert re.search(r"fatal: \[%s\]: FAILED! => .*(is not healthy|docker \w+ failed|not reachable)" % host,
                     out), out[-5000:]
    fatal = re.findall(r"^fatal: \[%s\]: FAILED! => (.*)$" % host, out, re.M)
    assert "failed at step 'web'" in fatal[-1], fatal[-1]
    rescued = "The rescue could not finish" not in fatal[-1]
    if not rescued:
        assert "Docker daemon" in fatal[-1] and "is not reachable" in fatal[-1], fatal[-1]
        assert "re-run the same deploy" in fatal[-1] and "docker start " in fatal[-1], fatal[-1]
        assert "is serving again" not in fatal[-1], "the message claims a rescue that did not happen"
    print("fault 7: rescue %s; last error: %s" % ("completed" if rescued else "could not finish", fatal[-1][:600]))

    # The daemon back: it restarted what was running when it stopped (restart:
    # unless-stopped), so the old web answers again, with its own container.
    back = fleet.wait_answering(host, "blue", "v1")
    assert back["proxy"] == (200, "blue", "v1"), back["proxy"]
    assert back["state_raw"] == before["state_raw"] and back["lock"] is None
    assert ids(back, "blue") == ids(before, "blue"), "the old release's containers were recreated"
    assert not running(back, "green", "worker") and not running(back, "green", "beat")
    # The old workers and beat run again only if the rescue could restart them;
    # otherwise they stay stopped, as the quiesce left them, until the recovery.
    assert running(back, "blue", "worker") == rescued and running(back, "blue", "beat") == rescued, \
        back["containers"].keys()

    # The recovery the role's README documents for a failed deploy: run it again.
    rerun = fleet.playbook("fault7-rerun", {"bluegreen_release": "v2"}, [host])
    assert rerun.returncode == 0, rerun.stdout[-5000:]
    done = fleet.view(host)
    assert_live(done, "green", "v2", ["v2", "v1"])
    assert ids(done, "blue") == ids(before, "blue"), "the old release's containers were recreated"
    assert fleet.workers_consume(host), "queued tasks not run (once)"


@pytest.fixture(scope="module")
def fault_7_in_background(fleet):
    """Fault 7 runs on its own host while fault 10 runs on the others (it would add 2-3 minutes after it)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(fault_7_scenario, fleet)
        yield future
        # Leaving the block waits for the scenario: nothing of it outlives the test bed.


def test_fault_7_docker_daemon_stops_mid_deploy(fault_7_in_background):
    fault_7_in_background.result(timeout=1200)  # its assertions, raised here
