# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""host_pressure against this machine's real /proc, real free disk and the real `docker info`."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.support.docker_cli import docker
from tests.support.runner import run_module, run_playbook

# This machine is shared by parallel test runs: pressure thresholds are lenient so that
# "settles" does not depend on what else runs; the disk and memory limits are real.
LENIENT = {"cpu_some_avg10_max": 100, "memory_some_avg10_max": 100}


def docker_root():
    return json.loads(docker("info", "--format", "{{json .}}"))["DockerRootDir"]


def disk_mb(path):
    st = os.statvfs(path)
    return (st.f_bavail * st.f_frsize) // 2 ** 20, (st.f_blocks * st.f_frsize) // 2 ** 20


def pressure(check_mode=False, env=None, **args):
    started = time.monotonic()
    result = run_module("host_pressure", args, check_mode=check_mode, env=env)
    result["_elapsed"] = time.monotonic() - started
    return result


def test_defaults_settle_on_this_machine():
    result = pressure(stage="start web", **LENIENT)
    assert result["rc"] == 0, result
    assert result["changed"] is False
    assert result["settled"] is True
    assert result["exceeded"] == []
    assert result["waited"] == 0.0
    readings = result["readings"]
    assert set(readings) == {"cpu_some_avg10", "memory_some_avg10", "mem_available_mb", "disk_free_mb",
                             "disk_path", "throttled", "throttled_raw"}
    assert readings["disk_path"] == docker_root()
    free, _total = disk_mb(readings["disk_path"])
    assert abs(readings["disk_free_mb"] - free) < 512
    assert isinstance(readings["mem_available_mb"], int) and readings["mem_available_mb"] > 128
    if os.path.exists("/proc/pressure/cpu"):
        assert 0 <= readings["cpu_some_avg10"] <= 100
        assert 0 <= readings["memory_some_avg10"] <= 100
    assert readings["throttled"] is None and readings["throttled_raw"] is None  # no vcgencmd here
    assert result["_elapsed"] < 10


def test_check_mode_reads_the_same_way():
    result = pressure(check_mode=True, **LENIENT)
    assert result["rc"] == 0 and result["changed"] is False and result["settled"] is True


def test_disk_requirement_larger_than_the_disk_fails_fast_with_figures():
    root = docker_root()
    _free, total = disk_mb(root)
    result = pressure(stage="start web", disk_free_min_mb=total + 1024, **LENIENT)
    assert result["rc"] != 0
    assert result["settled"] is False
    assert result["_elapsed"] < 10  # not the default 120 s wait
    msg = result["msg"]
    assert msg.startswith("host pressure can never settle before start web, so it was not waited for: disk free ")
    assert "MB < %d MB under %s" % (total + 1024, root) in msg
    assert "is more than the whole filesystem under %s" % root in msg
    assert result["exceeded"] == ["disk free %d MB < %d MB under %s"
                                  % (result["readings"]["disk_free_mb"], total + 1024, root)]
    assert result["readings"]["disk_path"] == root


def test_wait_is_bounded_by_wait_timeout():
    root = docker_root()
    free, total = disk_mb(root)
    assert free < total  # the disk holds something, so free == total can never be met
    result = pressure(stage="start workers", disk_free_min_mb=total, wait_timeout=3, interval=1, **LENIENT)
    assert result["rc"] != 0
    assert 3 <= result["_elapsed"] <= 6.5, result["_elapsed"]
    assert 3 <= result["waited"] <= 4
    assert result["msg"].startswith("host pressure did not settle within 3s before start workers: disk free ")
    assert "< %d MB under %s" % (total, root) in result["msg"]


def test_wait_timeout_zero_checks_once(tmp_path):
    free, total = disk_mb(str(tmp_path))
    result = pressure(path=str(tmp_path), disk_free_min_mb=total, wait_timeout=0, **LENIENT)
    assert result["rc"] != 0 and result["_elapsed"] < 5 and result["waited"] == 0.0
    assert result["msg"].startswith("host pressure is too high (checked once, wait_timeout=0): disk free ")
    assert "under %s" % tmp_path in result["msg"]


def test_memory_threshold_is_measured(tmp_path):
    with open("/proc/meminfo", encoding="utf-8") as handle:
        total_mb = int(handle.readline().split()[1]) // 1024
    result = pressure(path=str(tmp_path), mem_available_min_mb=total_mb, wait_timeout=0, **LENIENT)
    assert result["rc"] != 0
    assert "memory available %d MB < %d MB" % (result["readings"]["mem_available_mb"], total_mb) in result["msg"]


@pytest.mark.skipif(not os.path.exists("/proc/pressure/cpu"), reason="no PSI on this kernel")
def test_cpu_pressure_threshold_is_measured(tmp_path):
    # A ceiling of 0 is exceeded by any CPU stall at all; a perfectly idle machine reads 0.00.
    result = pressure(path=str(tmp_path), cpu_some_avg10_max=0, memory_some_avg10_max=100, wait_timeout=0)
    if result["rc"] != 0:
        assert "cpu pressure some avg10 " in result["msg"] and "% > 0%" in result["msg"]
    else:
        assert result["readings"]["cpu_some_avg10"] == 0


def test_explicit_path_needs_no_docker(tmp_path):
    result = pressure(path=str(tmp_path), docker_host="unix:///nonexistent/docker.sock", **LENIENT)
    assert result["rc"] == 0, result
    assert result["readings"]["disk_path"] == str(tmp_path)


def test_missing_path_fails_clearly(tmp_path):
    result = pressure(path=str(tmp_path / "nope"), **LENIENT)
    assert result["rc"] != 0
    assert result["msg"] == "cannot measure free disk space under %s: no such path on this host" % (tmp_path / "nope")


def test_unreachable_docker_without_path_fails_clearly():
    result = pressure(docker_host="unix:///nonexistent/docker.sock", **LENIENT)
    assert result["rc"] != 0
    assert result["msg"].startswith("path is not set and the Docker root directory cannot be found (the Docker "
                                    "daemon at unix:///nonexistent/docker.sock (docker_host) is not reachable")
    assert result["msg"].endswith("set path to the directory whose free space matters")


@pytest.mark.parametrize("option", ["cpu_some_avg10_max", "memory_some_avg10_max", "mem_available_min_mb",
                                    "disk_free_min_mb", "wait_timeout", "interval"])
def test_negative_option_is_refused_before_reading(option):
    # An unreachable daemon proves nothing was asked before the options were checked.
    result = pressure(docker_host="unix:///nonexistent/docker.sock", **{option: -1})
    assert result["rc"] != 0
    assert result["msg"].startswith("%s must be zero or more, got -1" % option)
    assert result["readings"] is None


def test_zero_interval_is_refused():
    result = pressure(interval=0)
    assert result["rc"] != 0 and result["msg"] == "interval must be greater than 0, got 0.0"


def test_throttled_pi_through_vcgencmd(tmp_path):
    # No Raspberry Pi here: a stand-in vcgencmd on PATH answers as an under-volted, throttled Pi 5 does.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "vcgencmd"
    fake.write_text("#!/bin/sh\n[ \"$1\" = get_throttled ] || exit 2\necho throttled=0x50005\n")
    fake.chmod(0o755)
    env = {"PATH": "%s:%s" % (bindir, os.environ["PATH"])}
    reported = pressure(env=env, path=str(tmp_path), **LENIENT)
    assert reported["rc"] == 0, reported
    assert reported["readings"]["throttled"] is True
    assert reported["readings"]["throttled_raw"] == "0x50005"
    failed = pressure(env=env, path=str(tmp_path), fail_on_throttled=True, wait_timeout=0, stage="batch 2", **LENIENT)
    assert failed["rc"] != 0
    assert failed["msg"] == ("host pressure is too high before batch 2 (checked once, wait_timeout=0): throttled "
                             "(get_throttled=0x50005: under-voltage now, currently throttled, under-voltage has "
                             "occurred, throttling has occurred)")


def test_through_a_playbook(tmp_path):
    playbook = tmp_path / "pressure.yml"
    playbook.write_text("""
- name: Pressure before a stage
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Wait for the host to settle
      lowspec.bluegreen.host_pressure:
        stage: start web
        cpu_some_avg10_max: 100
        memory_some_avg10_max: 100
      register: pressure
    - name: Check
      ansible.builtin.assert:
        that:
          - pressure is not changed
          - pressure.settled
          - pressure.readings.disk_free_mb > 0
""")
    proc = run_playbook(playbook, check=True)
    assert proc.returncode == 0, proc.stdout
    assert "ok=2" in proc.stdout and "changed=0" in proc.stdout, proc.stdout
