# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.lowspec.bluegreen.plugins.module_utils import _pressure

FIXTURES = Path(__file__).parent / "fixtures"

LIMITS = {"cpu_some_avg10_max": 80.0, "memory_some_avg10_max": 20.0,
          "mem_available_min_mb": 128, "disk_free_min_mb": 1024}


def fixture(name):
    return (FIXTURES / name).read_text()


def readings(**overrides):
    base = {"cpu_some_avg10": 1.5, "memory_some_avg10": 0.0, "mem_available_mb": 2048,
            "disk_free_mb": 20000, "disk_path": "/var/lib/docker", "throttled": None, "throttled_raw": None}
    base.update(overrides)
    return base


# -- /proc/pressure ----------------------------------------------------------

def test_parse_captured_cpu_pressure():
    parsed = _pressure.parse_pressure(fixture("proc-pressure-cpu.txt"))
    assert set(parsed) == {"some", "full"}
    assert set(parsed["some"]) == {"avg10", "avg60", "avg300", "total"}
    assert isinstance(parsed["some"]["avg10"], float)
    assert isinstance(parsed["some"]["total"], int)
    assert parsed["some"]["avg10"] == 11.02
    assert _pressure.some_avg10(fixture("proc-pressure-cpu.txt")) == 11.02


def test_parse_captured_memory_pressure():
    assert _pressure.some_avg10(fixture("proc-pressure-memory.txt")) == 0.0
    assert _pressure.parse_pressure(fixture("proc-pressure-memory.txt"))["full"]["avg300"] == 0.0


def test_old_kernel_cpu_pressure_has_only_some():
    # Kernels before 5.13 print no "full" line for cpu.
    text = "some avg10=93.50 avg60=40.12 avg300=10.00 total=123456789\n"
    assert _pressure.parse_pressure(text) == {"some": {"avg10": 93.5, "avg60": 40.12, "avg300": 10.0,
                                                       "total": 123456789}}
    assert _pressure.some_avg10(text) == 93.5


@pytest.mark.parametrize("text", [None, "", "garbage\n", "full avg10=1.00 avg60=0 avg300=0 total=1\n",
                                  "some avg10=x avg60=0.00\n"])
def test_pressure_without_some_avg10_is_not_measured(text):
    assert _pressure.some_avg10(text) is None


# -- /proc/meminfo -----------------------------------------------------------

def test_parse_captured_meminfo():
    parsed = _pressure.parse_meminfo(fixture("proc-meminfo.txt"))
    assert parsed["MemTotal"] == 24684092
    assert parsed["MemAvailable"] == 23788664
    assert _pressure.mem_available_mb(fixture("proc-meminfo.txt")) == 23788664 // 1024
    assert _pressure.mem_total_mb(fixture("proc-meminfo.txt")) == 24684092 // 1024


def test_meminfo_without_memavailable():
    text = "MemTotal:        948304 kB\nMemFree:          51200 kB\n"
    assert _pressure.mem_available_mb(text) is None
    assert _pressure.mem_total_mb(text) == 926
    assert _pressure.mem_available_mb("") is None


def test_disk_figures_from_statvfs_fields():
    assert _pressure.disk_free_mb(256, 4096) == 1
    assert _pressure.disk_free_mb(255, 4096) == 0
    assert _pressure.disk_total_mb(1024 * 1024, 4096) == 4096


# -- vcgencmd get_throttled --------------------------------------------------

@pytest.mark.parametrize("output, raw, value, now", [
    ("throttled=0x0\n", "0x0", 0, False),
    ("throttled=0x50000\n", "0x50000", 0x50000, False),   # happened since boot, not now
    ("throttled=0x50005\n", "0x50005", 0x50005, True),    # under-voltage and throttled now
    ("throttled=0x4\n", "0x4", 4, True),                  # currently throttled
    ("throttled=0x1\n", "0x1", 1, True),                  # under-voltage now
    ("throttled=0x8\n", "0x8", 8, False),                 # soft temperature limit only
    ("throttled=0xE0000", "0xe0000", 0xE0000, False),
])
def test_parse_throttled(output, raw, value, now):
    assert _pressure.parse_throttled(output) == (raw, value)
    assert _pressure.throttled_now(value) is now


def test_throttled_unknown_output():
    assert _pressure.parse_throttled("VCHI initialization failed\n") == (None, None)
    assert _pressure.parse_throttled(None) == (None, None)
    assert _pressure.throttled_now(None) is None


def test_throttle_reasons():
    assert _pressure.throttle_reasons(0x50005) == [
        "under-voltage now", "currently throttled", "under-voltage has occurred", "throttling has occurred"]
    assert _pressure.throttle_reasons(0) == []


# -- evaluation --------------------------------------------------------------

def test_everything_within_limits():
    assert _pressure.evaluate(readings(), LIMITS) == []


def test_equal_to_limit_is_within():
    assert _pressure.evaluate(readings(cpu_some_avg10=80.0, memory_some_avg10=20.0, mem_available_mb=128,
                                       disk_free_mb=1024), LIMITS) == []


def test_each_exceeded_reading_is_named_with_figures():
    exceeded = _pressure.evaluate(readings(cpu_some_avg10=93.5, memory_some_avg10=25.25, mem_available_mb=100,
                                           disk_free_mb=312), LIMITS)
    assert exceeded == [
        "cpu pressure some avg10 93.5% > 80%",
        "memory pressure some avg10 25.25% > 20%",
        "memory available 100 MB < 128 MB",
        "disk free 312 MB < 1024 MB under /var/lib/docker",
    ]


def test_unmeasured_readings_never_block():
    assert _pressure.evaluate(readings(cpu_some_avg10=None, memory_some_avg10=None, mem_available_mb=None),
                              dict(LIMITS, cpu_some_avg10_max=0, memory_some_avg10_max=0,
                                   mem_available_min_mb=10 ** 9)) == []


def test_throttled_is_reported_only_when_asked():
    pi = readings(throttled=True, throttled_raw="0x50005")
    assert _pressure.evaluate(pi, LIMITS) == []
    assert _pressure.evaluate(pi, LIMITS, fail_on_throttled=True) == [
        "throttled (get_throttled=0x50005: under-voltage now, currently throttled, under-voltage has occurred, "
        "throttling has occurred)"]
    assert _pressure.evaluate(readings(throttled=False, throttled_raw="0x50000"), LIMITS,
                              fail_on_throttled=True) == []


def test_unreachable_limits():
    totals = {"mem_total_mb": 926, "disk_total_mb": 29000}
    assert _pressure.unreachable(LIMITS, totals, "/var/lib/docker") == []
    found = _pressure.unreachable(dict(LIMITS, mem_available_min_mb=1024, disk_free_min_mb=30000), totals,
                                  "/var/lib/docker")
    assert found == ["mem_available_min_mb=1024 MB is more than all the memory of this host (926 MB)",
                     "disk_free_min_mb=30000 MB is more than the whole filesystem under /var/lib/docker (29000 MB)"]
    assert _pressure.unreachable(LIMITS, {"mem_total_mb": None, "disk_total_mb": None}) == []


def test_failure_messages():
    exceeded = ["disk free 312 MB < 1024 MB under /var/lib/docker", "memory available 100 MB < 128 MB"]
    assert _pressure.failure_message(exceeded, 120.0, "start web") == (
        "host pressure did not settle within 120s before start web: disk free 312 MB < 1024 MB under "
        "/var/lib/docker; memory available 100 MB < 128 MB")
    assert _pressure.failure_message(exceeded[:1], 2.5) == (
        "host pressure did not settle within 2.5s: disk free 312 MB < 1024 MB under /var/lib/docker")
    assert _pressure.failure_message(exceeded[:1], 0, "batch 2").startswith(
        "host pressure is too high before batch 2 (checked once, wait_timeout=0): disk free 312 MB")
    message = _pressure.failure_message(exceeded[:1], 120, "start web", ["disk_free_min_mb=... (9 MB)"])
    assert message.startswith("host pressure can never settle before start web, so it was not waited for: disk free")


# -- reading the host ------------------------------------------------------------------------

def test_read_text_of_a_missing_or_disabled_file_is_none(tmp_path, monkeypatch):
    assert _pressure.read_text(str(tmp_path / "nope")) is None
    (tmp_path / "cpu").write_text("some avg10=1.00 avg60=0 avg300=0 total=1\n")
    assert _pressure.read_text(str(tmp_path / "cpu")).startswith("some avg10=1.00")

    def eopnotsupp(*args, **kwargs):
        raise OSError(95, "Operation not supported")  # PSI compiled in but off (psi=0)

    monkeypatch.setattr("builtins.open", eopnotsupp)
    assert _pressure.read_text("/proc/pressure/cpu") is None


class Host:
    """AnsibleModule's get_bin_path/run_command for vcgencmd (a Raspberry Pi), or none."""

    def __init__(self, vcgencmd=None):
        self.vcgencmd = vcgencmd
        self.calls = []

    def get_bin_path(self, name, required=False, opt_dirs=None):
        assert name == "vcgencmd" and "/opt/vc/bin" in opt_dirs
        return "/usr/bin/vcgencmd" if self.vcgencmd is not None else None

    def run_command(self, argv, **kwargs):
        self.calls.append(argv)
        return self.vcgencmd


def proc_files(monkeypatch, texts):
    files = {_pressure.PROC_CPU: texts.get("cpu"), _pressure.PROC_MEMORY: texts.get("memory"),
             _pressure.PROC_MEMINFO: texts.get("meminfo")}
    monkeypatch.setattr(_pressure, "read_text", lambda path: files[path])


def test_gauge_reads_the_captured_proc_files_and_the_disk(monkeypatch, tmp_path):
    proc_files(monkeypatch, {"cpu": fixture("proc-pressure-cpu.txt"), "memory": fixture("proc-pressure-memory.txt"),
                             "meminfo": fixture("proc-meminfo.txt")})
    readings = _pressure.Gauge(Host((0, "throttled=0x50005\n", "")), str(tmp_path)).read()
    assert readings["cpu_some_avg10"] == 11.02 and readings["memory_some_avg10"] == 0.0
    assert readings["mem_available_mb"] == _pressure.mem_available_mb(fixture("proc-meminfo.txt"))
    assert isinstance(readings["disk_free_mb"], int) and readings["disk_path"] == str(tmp_path)
    assert readings["throttled"] is True and readings["throttled_raw"] == "0x50005"


def test_gauge_without_psi_vcgencmd_or_a_path_measures_what_it_can(monkeypatch):
    proc_files(monkeypatch, {"meminfo": fixture("proc-meminfo.txt")})
    host = Host()
    readings = _pressure.Gauge(host).read()
    assert readings["cpu_some_avg10"] is None and readings["memory_some_avg10"] is None
    assert readings["disk_free_mb"] is None and readings["throttled"] is None and host.calls == []
    failing = Host((1, "", "VCHI initialization failed"))
    assert _pressure.Gauge(failing).read()["throttled"] is None


class Clock:
    def __init__(self):
        self.now = 500.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedGauge(_pressure.Gauge):
    """A Gauge whose readings come from a script (the last one repeats)."""

    def __init__(self, script, totals=None):
        super().__init__(Host())
        self.script = list(script)
        self.reads = 0
        self.total = totals or {"mem_total_mb": 8000, "disk_total_mb": None}

    def read(self):
        self.reads += 1
        return readings(**(self.script.pop(0) if len(self.script) > 1 else self.script[0]))

    def totals(self):
        return self.total


def test_wait_reads_until_the_host_has_settled():
    clock = Clock()
    gauge = ScriptedGauge([{"cpu_some_avg10": 95.0}, {"cpu_some_avg10": 85.0}, {"cpu_some_avg10": 20.0}])
    outcome = gauge.wait(LIMITS, 60, interval=2, clock=clock, sleep=clock.sleep)
    assert outcome["settled"] is True and outcome["exceeded"] == [] and outcome["impossible"] == []
    assert gauge.reads == 3 and clock.sleeps == [2, 2] and outcome["waited"] == 4.0
    assert outcome["readings"]["cpu_some_avg10"] == 20.0


def test_wait_gives_up_at_its_timeout_with_what_is_exceeded_and_never_sleeps_past_it():
    clock = Clock()
    gauge = ScriptedGauge([{"memory_some_avg10": 35.5}])
    outcome = gauge.wait(LIMITS, 5, interval=2, clock=clock, sleep=clock.sleep)
    assert outcome["settled"] is False and outcome["exceeded"] == ["memory pressure some avg10 35.5% > 20%"]
    assert clock.sleeps == [2, 2, 1] and outcome["waited"] == 5.0


def test_wait_stops_at_until_when_it_comes_first():
    clock = Clock()
    gauge = ScriptedGauge([{"cpu_some_avg10": 95.0}])
    outcome = gauge.wait(LIMITS, 120, interval=1, until=clock.now + 3, clock=clock, sleep=clock.sleep)
    assert outcome["settled"] is False and outcome["waited"] == 3.0


def test_wait_of_zero_reads_once():
    clock = Clock()
    gauge = ScriptedGauge([{"cpu_some_avg10": 95.0}])
    assert gauge.wait(LIMITS, 0, clock=clock, sleep=clock.sleep)["settled"] is False
    assert gauge.reads == 1 and clock.sleeps == []


def test_a_limit_beyond_what_the_host_has_is_not_waited_for():
    clock = Clock()
    gauge = ScriptedGauge([{"mem_available_mb": 300}], totals={"mem_total_mb": 512, "disk_total_mb": None})
    outcome = gauge.wait(dict(LIMITS, mem_available_min_mb=1024), 120, clock=clock, sleep=clock.sleep)
    assert outcome["settled"] is False and clock.sleeps == []
    assert outcome["impossible"] == ["mem_available_min_mb=1024 MB is more than all the memory of this host (512 MB)"]


def test_throttling_fails_the_wait_only_when_asked():
    clock = Clock()
    throttled = {"throttled": True, "throttled_raw": "0x5"}
    assert ScriptedGauge([throttled]).wait(LIMITS, 0, clock=clock, sleep=clock.sleep)["settled"] is True
    outcome = ScriptedGauge([throttled]).wait(LIMITS, 0, fail_on_throttled=True, clock=clock, sleep=clock.sleep)
    assert outcome["exceeded"] == ["throttled (get_throttled=0x5: under-voltage now, currently throttled)"]
