# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to the collection: this file may change without notice.
#
# Host pressure, measured before each stage of a deploy: parsers of
# /proc/pressure/*, /proc/meminfo and `vcgencmd get_throttled`, and the
# judgement of one set of readings against the thresholds (pure functions,
# unit-tested against text captured from real hosts); and Gauge, which reads
# the host and waits for it to settle (used by host_pressure and by
# compose_project_color before it starts a stage).

from __future__ import annotations

import os
import re
import time

PROC_CPU = "/proc/pressure/cpu"
PROC_MEMORY = "/proc/pressure/memory"
PROC_MEMINFO = "/proc/meminfo"

# Bits of `vcgencmd get_throttled` (Raspberry Pi firmware).
THROTTLE_BITS = (
    (0, "under-voltage now"),
    (1, "arm frequency capped now"),
    (2, "currently throttled"),
    (3, "soft temperature limit now"),
    (16, "under-voltage has occurred"),
    (17, "arm frequency capping has occurred"),
    (18, "throttling has occurred"),
    (19, "soft temperature limit has occurred"),
)
# What counts as "throttled": throttled now, or under-voltage now.
THROTTLED_NOW_MASK = (1 << 0) | (1 << 2)

THRESHOLD_OPTIONS = ("cpu_some_avg10_max", "memory_some_avg10_max", "mem_available_min_mb", "disk_free_min_mb")


def threshold_options():
    """The argument spec of the four limits, as every module that gauges the host takes them."""
    return dict(
        cpu_some_avg10_max=dict(type="float", default=80),
        memory_some_avg10_max=dict(type="float", default=20),
        mem_available_min_mb=dict(type="int", default=128),
        disk_free_min_mb=dict(type="int", default=1024),
    )


def pressure_option():
    """The O(pressure) option of the modules that wait for the host to settle before they act."""
    return dict(type="dict", options=dict(threshold_options(), wait_timeout=dict(type="int", default=120)))


_THROTTLED_RE = re.compile(r"throttled\s*=\s*(0x[0-9a-fA-F]+|\d+)")


def parse_pressure(text):
    """{'some': {'avg10': 1.2, 'avg60': ..., 'avg300': ..., 'total': ...}, 'full': {...}} of a PSI file.

    Lines that are not PSI lines are ignored; an empty dict means nothing was found.
    """
    found = {}
    for line in (text or "").splitlines():
        fields = line.split()
        if not fields or fields[0] not in ("some", "full"):
            continue
        values = {}
        for field in fields[1:]:
            key, sep, value = field.partition("=")
            if not sep:
                continue
            try:
                values[key] = int(value) if key == "total" else float(value)
            except ValueError:
                continue
        found[fields[0]] = values
    return found


def some_avg10(text):
    """The `some avg10` percentage of a PSI file's text, or None when it has none."""
    return parse_pressure(text).get("some", {}).get("avg10")


def parse_meminfo(text):
    """{'MemTotal': kB, 'MemAvailable': kB, ...} of /proc/meminfo (values in kB as written)."""
    found = {}
    for line in (text or "").splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        parts = rest.split()
        if not parts:
            continue
        try:
            found[key.strip()] = int(parts[0])
        except ValueError:
            continue
    return found


def mem_available_mb(text):
    """MemAvailable of /proc/meminfo in whole MiB, or None (kernels before 3.14 lack it)."""
    kib = parse_meminfo(text).get("MemAvailable")
    return None if kib is None else kib // 1024


def disk_free_mb(f_bavail, f_frsize):
    """Free space for unprivileged writers (what `df` calls Avail), in whole MiB, from statvfs fields."""
    return (int(f_bavail) * int(f_frsize)) // (1024 * 1024)


def disk_total_mb(f_blocks, f_frsize):
    """The size of a filesystem in whole MiB, from statvfs fields."""
    return (int(f_blocks) * int(f_frsize)) // (1024 * 1024)


def parse_throttled(output):
    """(raw hex, value) of `vcgencmd get_throttled` output (`throttled=0x50005`), or (None, None)."""
    match = _THROTTLED_RE.search(output or "")
    if not match:
        return None, None
    value = int(match.group(1), 0)
    return "0x%x" % value, value


def throttled_now(value):
    """True when the Pi is throttled now or under-voltage now; None when not measured."""
    if value is None:
        return None
    return bool(value & THROTTLED_NOW_MASK)


def throttle_reasons(value):
    """The names of the bits set in a get_throttled value."""
    if not value:
        return []
    return [name for bit, name in THROTTLE_BITS if value & (1 << bit)]


def _num(value):
    """A figure for a message: no trailing .0."""
    if isinstance(value, float) and value.is_integer():
        return "%d" % value
    return "%s" % value


def evaluate(readings, limits, fail_on_throttled=False):
    """The readings that exceed their limits, as sentences; [] when the host has settled.

    A reading that is None (not measured on this host) never counts as exceeded.
    A reading equal to its limit is within it.
    """
    exceeded = []
    cpu = readings.get("cpu_some_avg10")
    if cpu is not None and cpu > limits["cpu_some_avg10_max"]:
        exceeded.append("cpu pressure some avg10 %s%% > %s%%" % (_num(cpu), _num(limits["cpu_some_avg10_max"])))
    memory = readings.get("memory_some_avg10")
    if memory is not None and memory > limits["memory_some_avg10_max"]:
        exceeded.append("memory pressure some avg10 %s%% > %s%%"
                        % (_num(memory), _num(limits["memory_some_avg10_max"])))
    available = readings.get("mem_available_mb")
    if available is not None and available < limits["mem_available_min_mb"]:
        exceeded.append("memory available %s MB < %s MB" % (_num(available), _num(limits["mem_available_min_mb"])))
    disk = readings.get("disk_free_mb")
    if disk is not None and disk < limits["disk_free_min_mb"]:
        exceeded.append("disk free %s MB < %s MB under %s"
                        % (_num(disk), _num(limits["disk_free_min_mb"]), readings.get("disk_path")))
    if fail_on_throttled and readings.get("throttled"):
        raw = readings.get("throttled_raw")
        value = int(raw, 16) if raw else 0
        exceeded.append("throttled (get_throttled=%s: %s)" % (raw, ", ".join(throttle_reasons(value))))
    return exceeded


def mem_total_mb(text):
    """MemTotal of /proc/meminfo in whole MiB, or None."""
    kib = parse_meminfo(text).get("MemTotal")
    return None if kib is None else kib // 1024


def unreachable(limits, totals, disk_path=None):
    """The limits that no amount of waiting can meet: more than the host has in all.

    `totals` holds `mem_total_mb` and `disk_total_mb` (either may be None).
    """
    found = []
    mem_total = totals.get("mem_total_mb")
    if mem_total is not None and limits["mem_available_min_mb"] > mem_total:
        found.append("mem_available_min_mb=%s MB is more than all the memory of this host (%s MB)"
                     % (_num(limits["mem_available_min_mb"]), _num(mem_total)))
    disk_total = totals.get("disk_total_mb")
    if disk_total is not None and limits["disk_free_min_mb"] > disk_total:
        found.append("disk_free_min_mb=%s MB is more than the whole filesystem under %s (%s MB)"
                     % (_num(limits["disk_free_min_mb"]), disk_path, _num(disk_total)))
    return found


def failure_message(exceeded, wait_timeout, stage=None, impossible=None):
    """The module's message when the host did not settle."""
    before = " before %s" % stage if stage else ""
    if impossible:
        return "host pressure can never settle%s, so it was not waited for: %s (%s)" % (
            before, "; ".join(exceeded), "; ".join(impossible))
    if wait_timeout:
        head = "host pressure did not settle within %ss%s" % (_num(wait_timeout), before)
    else:
        head = "host pressure is too high%s (checked once, wait_timeout=0)" % before
    return "%s: %s" % (head, "; ".join(exceeded))


# ---------------------------------------------------------------------------
# Reading the host
# ---------------------------------------------------------------------------

def read_text(path):
    """A /proc file's text, or None when the host does not have it (or PSI is disabled: EOPNOTSUPP)."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


class Gauge:
    """Reads one host: PSI, MemAvailable, free disk under `path` (None: not measured), the Pi's throttling."""

    def __init__(self, module, path=None):
        self.module = module
        self.path = path
        self.vcgencmd = module.get_bin_path("vcgencmd", opt_dirs=["/usr/bin", "/opt/vc/bin"])

    def throttled(self):
        if not self.vcgencmd:
            return None, None
        rc, out, _err = self.module.run_command([self.vcgencmd, "get_throttled"])
        if rc != 0:
            return None, None
        raw, value = parse_throttled(out)
        return raw, throttled_now(value)

    def read(self):
        raw, throttled = self.throttled()
        readings = {
            "cpu_some_avg10": some_avg10(read_text(PROC_CPU)),
            "memory_some_avg10": some_avg10(read_text(PROC_MEMORY)),
            "mem_available_mb": mem_available_mb(read_text(PROC_MEMINFO)),
            "disk_free_mb": None,
            "disk_path": self.path,
            "throttled": throttled,
            "throttled_raw": raw,
        }
        if self.path:
            stat = os.statvfs(self.path)
            readings["disk_free_mb"] = disk_free_mb(stat.f_bavail, stat.f_frsize)
        return readings

    def totals(self):
        totals = {"mem_total_mb": mem_total_mb(read_text(PROC_MEMINFO)), "disk_total_mb": None}
        if self.path:
            stat = os.statvfs(self.path)
            totals["disk_total_mb"] = disk_total_mb(stat.f_blocks, stat.f_frsize)
        return totals

    def wait(self, limits, wait_timeout, interval=1.0, fail_on_throttled=False, until=None,
             clock=time.monotonic, sleep=time.sleep):
        """Read until every reading is within `limits`, `wait_timeout` s pass, or the clock reaches `until`.

        Returns {settled, waited, readings, exceeded, impossible}; `impossible`
        lists limits no waiting can meet (more than the host has in all), and
        then the wait ends at once.
        """
        started = clock()
        deadline = started + wait_timeout
        if until is not None:
            deadline = min(deadline, until)
        impossible = []
        while True:
            readings = self.read()
            exceeded = evaluate(readings, limits, fail_on_throttled)
            now = clock()
            if not exceeded or now >= deadline:
                break
            impossible = unreachable(limits, self.totals(), self.path)
            if impossible:
                break
            sleep(min(interval, max(deadline - now, 0)))
        return {"settled": not exceeded, "waited": round(clock() - started, 1), "readings": readings,
                "exceeded": exceeded, "impossible": impossible}
