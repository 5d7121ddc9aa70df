#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_pressure
short_description: Wait, within a deadline, until a small host's CPU, memory and disk pressure has settled
version_added: 0.1.0
description:
  - Measures the managed host before a deploy stage (start web, start workers, the next fleet batch) and waits
    until every reading is within its limit, or fails with the figures once O(wait_timeout) has passed.
  - "The readings are: C(some avg10) of C(/proc/pressure/cpu) and C(/proc/pressure/memory) (Linux pressure
    stall information: the share of the last 10 seconds in which some task waited for CPU or for memory);
    C(MemAvailable) of C(/proc/meminfo); the free space (as C(df) shows it) of the filesystem holding O(path);
    and on a Raspberry Pi the throttling state of C(vcgencmd get_throttled)."
  - A reading the host cannot give is reported as V(null) and never blocks, for example pressure on a
    kernel without PSI (Raspberry Pi OS kernels need C(psi=1) on the kernel command line), or
    the throttling state where C(vcgencmd) is not installed.
  - A reading equal to its limit is within it. A limit of V(0) for a minimum (or of V(100) for a pressure
    maximum) turns that check off.
  - The module never changes anything.
extends_documentation_fragment:
  - lowspec.bluegreen._common
  - lowspec.bluegreen._attributes
  - lowspec.bluegreen._attributes.INFO_MODULE
options:
  stage:
    description:
      - Names the stage about to start, for the messages, for example V(start web) or V(batch 2).
    type: str
  cpu_some_avg10_max:
    description:
      - The highest CPU pressure (C(some avg10) of C(/proc/pressure/cpu), percent) at which the host counts as settled.
    type: float
    default: 80
  memory_some_avg10_max:
    description:
      - The highest memory pressure (C(some avg10) of C(/proc/pressure/memory), percent) at which the host counts
        as settled.
    type: float
    default: 20
  mem_available_min_mb:
    description:
      - The least C(MemAvailable) (MiB) with which the host counts as settled.
    type: int
    default: 128
  disk_free_min_mb:
    description:
      - The least free space (MiB) under O(path) with which the host counts as settled.
    type: int
    default: 1024
  fail_on_throttled:
    description:
      - Whether a Raspberry Pi that is throttled now or under-voltage now (bits 2 and 0 of C(vcgencmd get_throttled))
        counts as not settled. By default the state is only reported.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for the host to settle. V(0) checks once.
      - The module reads again every O(interval) seconds and returns as soon as one reading is within all limits;
        it never waits longer than this (plus the time of one reading).
    type: float
    default: 120
  interval:
    description:
      - Seconds between two readings. Must be greater than 0.
    type: float
    default: 2
  path:
    description:
      - A path on the managed host whose filesystem's free space is measured.
      - When not set, the Docker root directory (C(DockerRootDir) of C(docker info)) is used; the module then fails
        if the Docker daemon is not reachable or its root directory is not on this host.
    type: path
  docker_host:
    description:
      - The Docker daemon asked for its root directory when O(path) is not set (for example
        V(unix:///run/docker.sock)), reached through the Docker SDK. It must run on the managed host.
      - When empty, C(DOCKER_HOST) of the task's environment, else the default socket.
    type: str
    default: ""
requirements:
  - Linux (C(/proc)). The Python package C(docker) only when O(path) is not set.
notes:
  - The result keys are returned on failure too, so a rescue block can show them.
  - Thresholds and timeouts must be zero or more; a negative one fails before anything is read.
author:
  - lowspec.bluegreen developers (@lowspec)
seealso:
  - name: PSI - Pressure Stall Information
    description: The kernel's documentation of /proc/pressure.
    link: https://docs.kernel.org/accounting/psi.html
"""

EXAMPLES = r"""
---
- name: Wait until the host has settled before starting the new web service
  lowspec.bluegreen.host_pressure:
    stage: start web
    wait_timeout: 120

- name: Before the workers start, insist on more headroom and a Pi that is not throttled
  lowspec.bluegreen.host_pressure:
    stage: start workers
    cpu_some_avg10_max: 50
    mem_available_min_mb: 256
    fail_on_throttled: true
  register: pressure

- name: Show the figures
  ansible.builtin.debug:
    msg: "cpu {{ pressure.readings.cpu_some_avg10 }}%, {{ pressure.readings.mem_available_mb }} MB available"

- name: Check free space under the app's data directory once, without asking Docker
  lowspec.bluegreen.host_pressure:
    path: /srv/shop
    disk_free_min_mb: 2048
    wait_timeout: 0
"""

RETURN = r"""
settled:
  description: Whether the last reading was within every limit.
  returned: always
  type: bool
  sample: true
waited:
  description: Seconds from the first reading to the last.
  returned: always
  type: float
  sample: 4.1
readings:
  description: The last reading.
  returned: always
  type: dict
  contains:
    cpu_some_avg10:
      description: C(some avg10) of C(/proc/pressure/cpu), percent; V(null) when the host has no PSI.
      type: float
      returned: always
      sample: 12.5
    memory_some_avg10:
      description: C(some avg10) of C(/proc/pressure/memory), percent; V(null) when the host has no PSI.
      type: float
      returned: always
      sample: 0.0
    mem_available_mb:
      description: C(MemAvailable) of C(/proc/meminfo), MiB; V(null) when the kernel does not report it.
      type: int
      returned: always
      sample: 3120
    disk_free_mb:
      description: Free space (for unprivileged writers, as C(df) shows it) under RV(readings.disk_path), MiB.
      type: int
      returned: always
      sample: 20480
    disk_path:
      description: The path whose filesystem was measured (O(path), or the Docker root directory).
      type: str
      returned: always
      sample: /var/lib/docker
    throttled:
      description:
        - Whether the Raspberry Pi is throttled now or under-voltage now; V(null) where C(vcgencmd) is not available.
      type: bool
      returned: always
      sample: false
    throttled_raw:
      description: The raw value of C(vcgencmd get_throttled), hexadecimal; V(null) where not available.
      type: str
      returned: always
      sample: "0x50000"
  sample:
    cpu_some_avg10: 12.5
    memory_some_avg10: 0.0
    mem_available_mb: 3120
    disk_free_mb: 20480
    disk_path: /var/lib/docker
    throttled: null
    throttled_raw: null
exceeded:
  description: The readings that exceeded their limits, one sentence each; empty when settled.
  returned: always
  type: list
  elements: str
  sample: ["disk free 312 MB < 1024 MB under /var/lib/docker"]
"""

import os

from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import (
    BlueGreenError,
    check_non_negative,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._docker import (
    Engine,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._module import (
    Manager,
    run_module,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._pressure import (
    THRESHOLD_OPTIONS,
    Gauge,
    failure_message,
    threshold_options,
)


class HostPressureManager(Manager):
    """Reads the host until it settles or the deadline passes."""

    def __init__(self, module):
        super().__init__(module)
        params = self.params
        self.result.update(settled=False, waited=0.0, readings=None, exceeded=[])
        check_non_negative(params, list(THRESHOLD_OPTIONS) + ["wait_timeout", "interval"])
        if params["interval"] <= 0:
            raise BlueGreenError("interval must be greater than 0, got %s" % params["interval"])
        self.limits = dict((name, params[name]) for name in THRESHOLD_OPTIONS)
        path = params["path"] or self.docker_root_dir()
        if not os.path.exists(path):
            raise BlueGreenError("cannot measure free disk space under %s: no such path on this host" % path)
        self.gauge = Gauge(module, path)

    def docker_root_dir(self):
        try:
            root = Engine(self.module, self.params["docker_host"]).info().get("DockerRootDir")
        except BlueGreenError as exc:
            raise BlueGreenError(
                "path is not set and the Docker root directory cannot be found (%s); set path to the "
                "directory whose free space matters" % exc) from exc
        if not root:
            raise BlueGreenError("path is not set and docker info names no DockerRootDir; set path")
        if not os.path.exists(root):
            raise BlueGreenError(
                "path is not set and the Docker root directory %s (from docker info) is not on this host; "
                "set path, or docker_host to the daemon of this host" % root)
        return root

    def run(self):
        params = self.params
        outcome = self.gauge.wait(self.limits, params["wait_timeout"], params["interval"], params["fail_on_throttled"])
        impossible = outcome.pop("impossible")
        self.result.update(outcome)
        if not outcome["settled"]:
            raise BlueGreenError(failure_message(outcome["exceeded"], params["wait_timeout"], params["stage"],
                                                 impossible))
        return self.result


ARGUMENT_SPEC = dict(
    threshold_options(),
    stage=dict(type="str"),
    fail_on_throttled=dict(type="bool", default=False),
    wait_timeout=dict(type="float", default=120),
    interval=dict(type="float", default=2),
    path=dict(type="path"),
)


def main():
    run_module(HostPressureManager, ARGUMENT_SPEC)


if __name__ == "__main__":
    main()
