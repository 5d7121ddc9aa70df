# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The target: one fleet test host (tests/e2e/fleet/fleet.sh), the small-host budget around
everything it runs, process accounting, and its Docker daemon's exec events.

The test host is a network namespace with its own sshd and Docker daemon (and that
daemon's containerd). The budget is a cgroup v1 parent (cpu, cpuacct, memory; cpuset
and pids for the containers) with one CPU of cfs quota and a memory cap, and four
children measured apart:

  app     every container of the app (compose `cgroup_parent: /<budget>/app`)
  tool    the test host's sshd: every SSH session, every module process and every
          docker CLI call a deploy makes on the host (children inherit the cgroup)
  daemon  the test host's dockerd and containerd (and the containerd shims they start)
  net     the stack's nginx and the daemon's docker-proxy processes (the data path)

The controller (ansible-playbook and its ssh clients; the scripts' ssh client) runs in
a cpuacct group of its own outside the budget, so its CPU (a daemonised ControlPersist
master included) is measured and never counted against the small host.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import threading
import time
from pathlib import Path

import yaml

from .common import CG, ROOT, read, write

PLACED = ("cpu", "cpuacct", "memory")  # hierarchies the target's own processes are moved in
CREATED = ("cpu", "cpuacct", "memory", "cpuset", "pids")


class TestHost:
    """One host of tests/e2e/fleet/fleet.sh, read from its inventory and its files."""

    def __init__(self, name=None):
        env = os.environ.get
        self.name = name or env("BENCH_FLEET_HOST", "pi5-1")
        self.fleet_dir = Path(env("LOWSPEC_FLEET_DIR", str(ROOT / ".build" / "fleet")))
        self.run_dir = Path(env("LOWSPEC_FLEET_RUN_DIR", "/run/lowspec-fleet"))
        inventory = yaml.safe_load((self.fleet_dir / "inventory.yml").read_text())
        group = inventory["all"]["children"]["pi5"]
        hosts = group.get("hosts") or {}
        if self.name not in hosts:
            raise RuntimeError("test host %s is not in %s (bash tests/e2e/fleet/fleet.sh up 1)"
                               % (self.name, self.fleet_dir / "inventory.yml"))
        gvars = group["vars"]
        self.addr = hosts[self.name]["ansible_host"]
        self.key = gvars["ansible_ssh_private_key_file"]
        self.python = gvars["ansible_python_interpreter"]
        self.ssh_common_args = gvars["ansible_ssh_common_args"]
        self.docker_host = gvars["bluegreen_docker_host"].replace("{{ inventory_hostname }}", self.name)
        self.netns = "/var/run/netns/lsbg-%s" % self.name  # fleet.sh's NS_PREFIX
        self.host_dir = self.fleet_dir / "hosts" / self.name

    # processes -------------------------------------------------------------
    def _pid(self, path):
        text = read(path, "") or ""
        pid = int(text.strip()) if text.strip().isdigit() else None
        if pid is None or not Path("/proc/%d" % pid).exists():
            raise RuntimeError("%s: no live process in %s" % (self.name, path))
        return pid

    @property
    def sshd_pid(self):
        return self._pid(self.host_dir / "sshd.pid")

    @property
    def dockerd_pid(self):
        return self._pid(self.run_dir / self.name / "dockerd.pid")

    def containerd_pids(self):
        return [pid for pid in children_of(self.dockerd_pid) if comm(pid) == "containerd"]

    # commands ----------------------------------------------------------------
    def docker_env(self, base=None):
        env = dict(os.environ if base is None else base)
        env["DOCKER_HOST"] = self.docker_host
        return env

    def ssh_argv(self, remote_command):
        """ssh to the test host as Ansible does (the inventory's options), running one command."""
        return (["ssh", "-i", self.key, "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]
                + self.ssh_common_args.split() + ["root@%s" % self.addr, remote_command])

    def in_netns(self, argv):
        return ["nsenter", "--net=%s" % self.netns] + list(argv)

    def check(self):
        """The host answers: sshd alive, the daemon answers, its cgroup driver is cgroupfs."""
        self._pid(self.host_dir / "sshd.pid")
        info = subprocess.run(["docker", "info", "--format", "{{json .}}"], env=self.docker_env(),
                              capture_output=True, text=True, check=True, timeout=30).stdout
        driver = json.loads(info).get("CgroupDriver")
        if driver != "cgroupfs":
            raise RuntimeError("the test daemon's cgroup driver is %s: cgroup_parent paths need cgroupfs" % driver)
        return driver


def comm(pid):
    return (read("/proc/%d/comm" % pid, "") or "").strip()


def children_of(pid):
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        status = read("/proc/%s/status" % entry.name, "") or ""
        for line in status.splitlines():
            if line.startswith("PPid:"):
                if int(line.split()[1]) == pid:
                    found.append(int(entry.name))
                break
    return found


def cgroup_of(pid):
    """{hierarchy: path} of a process (cgroup v1 lines)."""
    found = {}
    for line in (read("/proc/%d/cgroup" % pid, "") or "").splitlines():
        _num, ctls, path = line.split(":", 2)
        for ctl in ctls.split(","):
            if ctl:
                found[ctl] = path
    return found


# ---------------------------------------------------------------------------
# The budget
# ---------------------------------------------------------------------------

class Budget:
    """The small host: a cgroup v1 parent with one CPU of quota and a memory cap, children
    app / tool / daemon / net (module docstring), plus the controller's cpuacct group."""

    CHILDREN = ("app", "tool", "daemon", "net")

    def __init__(self, name, cpus, mem_cap_mb):
        self.name = name
        self.cpus = cpus
        self.mem_cap = mem_cap_mb * 1024 * 1024
        self.controller = name + "-controller"
        self.placed = {}  # pid -> its cgroups before (to put it back)

    @property
    def cgroup_parent(self):
        """Compose's cgroup_parent for the app's containers: absolute, so that runc does not
        place them relative to the (moved) containerd's own cgroup."""
        return "/%s/app" % self.name

    def path(self, ctl, child=None):
        return CG / ctl / self.name / child if child else CG / ctl / self.name

    def create(self):
        for ctl in CREATED:
            for child in (None,) + self.CHILDREN:
                self.path(ctl, child).mkdir(parents=True, exist_ok=True)
        cpus = read(CG / "cpuset" / "cpuset.cpus").strip()
        mems = read(CG / "cpuset" / "cpuset.mems").strip()
        for child in (None,) + self.CHILDREN:
            write(self.path("cpuset", child) / "cpuset.cpus", cpus)
            write(self.path("cpuset", child) / "cpuset.mems", mems)
        write(self.path("cpu") / "cpu.cfs_period_us", 100000)
        write(self.path("cpu") / "cpu.cfs_quota_us", int(self.cpus * 100000))
        write(self.path("memory") / "memory.limit_in_bytes", self.mem_cap)
        (CG / "cpuacct" / self.controller).mkdir(exist_ok=True)

    def place(self, pid, child):
        """Move a running process (all its threads) into a child, in cpu, cpuacct and memory."""
        before = cgroup_of(pid)
        self.placed.setdefault(pid, before)
        for ctl in PLACED:
            write(self.path(ctl, child) / "cgroup.procs", pid)

    def place_in_controller(self, pid):
        write(CG / "cpuacct" / self.controller / "cgroup.procs", pid)

    def controller_procs_file(self):
        return str(CG / "cpuacct" / self.controller / "cgroup.procs")

    def procs_files(self, child):
        return [str(self.path(ctl, child) / "cgroup.procs") for ctl in PLACED]

    def cpu_s(self, child=None):
        return int(read(self.path("cpuacct", child) / "cpuacct.usage", "0") or 0) / 1e9

    def controller_cpu_s(self):
        return int(read(CG / "cpuacct" / self.controller / "cpuacct.usage", "0") or 0) / 1e9

    def oom_kills(self):
        for line in (read(self.path("memory") / "memory.oom_control", "") or "").splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return None

    def release(self):
        """Every process of tool / daemon / net back where it was (or to the root group)."""
        for child in ("tool", "daemon", "net"):
            for ctl in PLACED:
                for pid in (read(self.path(ctl, child) / "cgroup.procs", "") or "").split():
                    pid = int(pid)
                    back = self.placed.get(pid, {}).get(ctl, "/")
                    target = CG / ctl / back.lstrip("/")
                    if not (target / "cgroup.procs").exists() or back.startswith("/" + self.name):
                        target = CG / ctl
                    try:
                        write(target / "cgroup.procs", pid)
                    except OSError:
                        write(CG / ctl / "cgroup.procs", pid)
        for pid in (read(CG / "cpuacct" / self.controller / "cgroup.procs", "") or "").split():
            try:
                write(CG / "cpuacct" / "cgroup.procs", pid)
            except OSError:
                pass

    def remove(self):
        """rmdir this budget (deepest first) in every hierarchy, and the controller group."""
        remove_cgroups(self.name)
        remove_cgroups(self.controller)


def remove_cgroups(name, attempts=20):
    """rmdir every /sys/fs/cgroup/<hierarchy>/<name> tree, deepest first (runc creates the
    containers' directories in every hierarchy, the unified one included)."""
    for hierarchy in CG.iterdir():
        top = hierarchy / name
        if not top.is_dir():
            continue
        for _attempt in range(attempts):
            try:
                dirs = sorted((Path(d) for d, _s, _f in os.walk(top)), key=lambda p: len(p.parts), reverse=True)
                for directory in dirs:
                    directory.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.25)


# ---------------------------------------------------------------------------
# Process accounting (Linux BSD accounting, acct v3 records)
# ---------------------------------------------------------------------------

ACCT_V3 = struct.Struct("<BBHIIIIIIf8H16s")  # 64 bytes: linux/acct.h struct acct_v3
AHZ = 100.0


def _comp_t(value):
    """comp_t: 13-bit mantissa, 3-bit base-8 exponent, in AHZ ticks -> seconds."""
    return ((value & 0x1FFF) << (3 * (value >> 13))) / AHZ


class Accounting:
    """`accton FILE` for the whole run: one record per process that exited, machine-wide.
    The deploys' target-side processes are told from the rest by their ancestry (a chain
    of parents up to the test host's sshd) or by having been seen in the tool cgroup
    (a process orphaned by its module, e.g. a `docker stop` left running in the background)."""

    def __init__(self, path):
        self.path = Path(path)
        self.on = False

    def start(self):
        self.path.touch()
        subprocess.run(["accton", str(self.path)], check=True, capture_output=True)
        self.on = True

    def stop(self):
        if self.on:
            subprocess.run(["accton", "off"], check=False, capture_output=True)
            self.on = False

    def records(self):
        data = self.path.read_bytes() if self.path.exists() else b""
        found = []
        for offset in range(0, len(data) - ACCT_V3.size + 1, ACCT_V3.size):
            (_flag, version, _tty, exitcode, _uid, _gid, pid, ppid, btime, etime,
             utime, stime, _mem, _io, _rw, _minflt, _majflt, _swaps, name) = ACCT_V3.unpack_from(data, offset)
            if version != 3:
                continue
            found.append({"pid": pid, "ppid": ppid, "btime": btime, "etime_s": etime / AHZ,
                          "cpu_s": _comp_t(utime) + _comp_t(stime), "exit": exitcode,
                          "comm": name.split(b"\0", 1)[0].decode("ascii", "replace")})
        return found


def target_processes(records, sshd_pid, t_from, t_to, seen=None):
    """The accounting records of processes that ran on the target side in [t_from, t_to]:
    descendants of the test host's sshd (through exited parents' records, matched by time
    as pids are reused), or pids the sampler saw in the tool cgroup ({pid: comm})."""
    seen = seen or {}
    by_pid = {}
    for rec in records:
        by_pid.setdefault(rec["pid"], []).append(rec)

    def parent(rec):
        best = None
        for cand in by_pid.get(rec["ppid"], ()):
            if cand["btime"] <= rec["btime"] + 1 and cand["btime"] + cand["etime_s"] + 1.5 >= rec["btime"]:
                if best is None or cand["btime"] > best["btime"]:
                    best = cand
        return best

    memo = {}

    def under_sshd(rec, depth=0):
        key = id(rec)
        if key in memo:
            return memo[key]
        if rec["ppid"] == sshd_pid:
            result = True
        elif depth > 30:
            result = False
        else:
            up = parent(rec)
            result = under_sshd(up, depth + 1) if up is not None else False
        memo[key] = result
        return result

    lo, hi = int(t_from) - 1, t_to + 1
    found = []
    for rec in records:
        if not lo <= rec["btime"] <= hi:
            continue
        if under_sshd(rec) or seen.get(str(rec["pid"])) == rec["comm"][:15]:
            up = parent(rec) or {}
            found.append(dict(rec, parent_comm=up.get("comm"), parent_btime=up.get("btime")))
    return found


def docker_cli_counts(procs):
    """docker CLI calls among target processes: invocations (a docker or docker-compose
    process whose parent is neither, e.g. `docker compose up` = one invocation of two
    processes), processes by name, and their CPU."""
    names = ("docker", "docker-compose")
    cli = [p for p in procs if p["comm"] in names]
    top = [p for p in cli if p.get("parent_comm") not in names]
    return {
        "invocations": len(top),
        "processes": len(cli),
        "by_name": {n: sum(1 for p in cli if p["comm"] == n) for n in names},
        "cpu_s": sum(p["cpu_s"] for p in cli),
        "all_processes": len(procs),
        "all_cpu_s": sum(p["cpu_s"] for p in procs),
        "by_comm": _count_by(procs),
    }


def _count_by(procs):
    counts = {}
    for p in procs:
        counts[p["comm"]] = counts.get(p["comm"], 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


# ---------------------------------------------------------------------------
# The test daemon's exec events
# ---------------------------------------------------------------------------

class ExecWatcher:
    """Every exec the test daemon creates while it runs (CLI `docker exec` and SDK exec_run
    alike): `docker events --filter event=exec_create`, streamed live from before the deploy
    (the daemon keeps only its last 256 events for a later --since query)."""

    def __init__(self, host):
        argv = ["docker", "events", "--filter", "event=exec_create", "--format", "{{json .}}"]
        self.proc = subprocess.Popen(argv, env=host.docker_env(), stdout=subprocess.PIPE,  # pylint: disable=consider-using-with
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
        self.events = []
        self.reader = threading.Thread(target=self._pump, daemon=True)
        self.reader.start()

    def _pump(self):
        for line in self.proc.stdout:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            action = item.get("Action") or item.get("status") or ""
            command = action.split(":", 1)[1].strip() if ":" in action else ""
            attrs = (item.get("Actor") or {}).get("Attributes") or {}
            self.events.append({"t": (item.get("timeNano") or 0) / 1e9 or item.get("time"),
                                "container": attrs.get("name", (item.get("id") or "")[:12]), "command": command})

    def stop(self):
        time.sleep(0.5)  # the last events in flight
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.reader.join(5)
        return self.events

    @staticmethod
    def window(events, t_from, t_to):
        return [e for e in events if t_from <= e["t"] <= t_to]
