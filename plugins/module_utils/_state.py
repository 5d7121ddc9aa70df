# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to the collection: this file may change without notice.
#
# The host's record of an app's active color: one small JSON file per app in
# the state directory, written atomically (temp file + fsync + rename), mode
# 0644, with a bounded history of recent deploys (SD cards wear out: the file
# stays small and is written once per deploy).

from __future__ import annotations

import datetime
import json
import os
import tempfile
import time

from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import (
    COLORS,
    BlueGreenError,
    other_color,
    validate_app_name,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._lock import (
    LOCK_SUFFIX,
    parse_record,
)

DEFAULT_STATE_DIR = "/var/lib/lowspec-bluegreen"
STATE_VERSION = 1
FILE_MODE = 0o644
JOURNAL_SUFFIX = ".journal.json"


def state_path(state_dir, app):
    return os.path.join(state_dir, "%s.json" % validate_app_name(app))


def empty_state(app):
    return {"version": STATE_VERSION, "app": app, "active_color": None, "release": None,
            "updated_at": None, "history": []}


def read_state(state_dir, app):
    """The app's state, or an empty one when no file exists yet."""
    path = state_path(state_dir, app)
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return empty_state(app)
    except ValueError as exc:
        raise BlueGreenError("state file %s is not valid JSON (%s); fix or remove it" % (path, exc)) from exc
    state = empty_state(app)
    state.update(data)
    if state["active_color"] not in (None,) + COLORS:
        raise BlueGreenError("state file %s names an unknown color %r" % (path, state["active_color"]))
    return state


def write_state(state_dir, app, state):
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    return _write_json(state_path(state_dir, app), state)


def _write_json(path, data):
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _sync_dir(directory)
    return path


def _sync_dir(directory):
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# ---------------------------------------------------------------------------
# The journal: a deploy's record of progress on the host, beside the state
# file. Each container a deploy stops, freezes or shrinks is written down
# before the change, so that a run that never reaches its rescue (Ctrl-C, a
# lost controller or host) leaves behind what to put back; and a wait that
# spans several module calls (each bounded, so that Ansible shows progress)
# keeps its start here, so that its deadline holds across the calls. The
# deploy removes it once it has recorded its new color.
# ---------------------------------------------------------------------------

class Journal:
    """entries: [{project, id, service, action, queues, at[, pool]}]; waits: {name: [start, last call], epoch s}."""

    # A wait whose last call is older than this is over (a deploy that failed or was interrupted): a new
    # call of the same wait starts afresh.
    STALE_WAIT = 120

    def __init__(self, path):
        self.path = path
        self.entries = []
        self.waits = {}
        if path:
            self._load()

    def _load(self):
        try:
            with open(self.path, "r", encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return
        except ValueError as exc:
            raise BlueGreenError("journal %s is not valid JSON (%s); fix or remove it" % (self.path, exc)) from exc
        entries = data.get("entries") if isinstance(data, dict) else None
        if not isinstance(entries, list) or not all(
                isinstance(e, dict) and isinstance(e.get("id"), str) and isinstance(e.get("project"), str)
                for e in entries):
            raise BlueGreenError("journal %s is not a list of entries with 'project' and 'id'; fix or remove it"
                                 % self.path)
        self.entries = entries
        for name, times in (data.get("waits") or {}).items():
            if isinstance(times, list) and len(times) == 2 and all(isinstance(t, (int, float)) for t in times):
                self.waits[str(name)] = [float(times[0]), float(times[1])]

    def save(self):
        """Write atomically; nothing to keep, no file."""
        if not self.path:
            return
        if self.entries or self.waits:
            _write_json(self.path, {"entries": self.entries, "waits": self.waits})
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return
        _sync_dir(os.path.dirname(self.path) or ".")

    def of(self, project):
        return [entry for entry in self.entries if entry["project"] == project]

    def add(self, project, new_entries, now=None):
        """Write entries down now; a container written down again keeps its latest entry and its first `at`
        (epoch s: when it was first written down, just before its first change)."""
        now = round(time.time() if now is None else now, 3)
        first = dict((entry["id"], entry["at"]) for entry in self.entries if entry.get("at"))
        added = [dict(entry, project=project, at=first.get(entry["id"]) or entry.get("at") or now)
                 for entry in new_entries]
        ids = {entry["id"] for entry in added}
        self.entries = [entry for entry in self.entries if entry["id"] not in ids] + added
        self.save()

    def forget(self, project):
        """Everything of the project is back (or meant to stay stopped): its entries are done with."""
        if self.of(project):
            self.entries = [entry for entry in self.entries if entry["project"] != project]
            self.save()

    def wait_started(self, name, now):
        """When the wait `name` began: now, unless a call of the same wait of this run wrote it down just before."""
        times = self.waits.get(name)
        if times and now - times[1] < self.STALE_WAIT and times[1] >= self.run_started():
            return times[0]
        return now

    def run_started(self):
        """When the run holding the app's lock (`<app>.lock` beside `<app>.journal.json`) took it; 0 if unknown.

        A wait last called before that belongs to an earlier run, cut off mid-wait (a lost host, a Ctrl-C):
        the run that took the lock over starts its waits afresh, whatever the earlier one had left.
        """
        base = os.path.basename(self.path or "")
        if not base.endswith(JOURNAL_SUFFIX):
            return 0
        lock = os.path.join(os.path.dirname(self.path), base[:-len(JOURNAL_SUFFIX)] + LOCK_SUFFIX)
        try:
            with open(lock, "r", encoding="utf-8") as handle:
                return parse_record(handle.read(), base[:-len(JOURNAL_SUFFIX)], os.fstat(handle.fileno()).st_mtime)[
                    "acquired_epoch"]
        except OSError:
            return 0

    def wait_goes_on(self, name, started, now=None):
        """A call ends before its wait does: keep the wait's start for the next call."""
        if self.path:
            self.waits[name] = [started, time.time() if now is None else now]
            self.save()

    def wait_done(self, name):
        if self.waits.pop(name, None) is not None:
            self.save()

    def clear(self):
        if self.entries or self.waits:
            self.entries, self.waits = [], {}
            self.save()


# ---------------------------------------------------------------------------
# Pure logic: which color is active, and recording a new active color
# ---------------------------------------------------------------------------

DEFAULT_HISTORY_SIZE = 10


def resolve_colors(recorded, web):
    """(active, idle, warnings) from the recorded color and what really runs.

    `recorded` is the state file's active color (None when there is no file or
    no color in it). `web` maps each color to {"running": bool, "created": str}
    for that color's web service ("running" means at least one web container is
    running and not paused; "created" is the oldest such container's creation
    time, ISO 8601). The rules (documented in the module):

    - recorded color's web runs: it is active (the other may run too: the
      previous release after a deploy);
    - recorded color's web does not run, the other's does: the running color
      is active (never start the idle color over the only running release);
    - recorded color, no web runs: the record stands;
    - nothing recorded, one web runs: that color is active;
    - nothing recorded, both run: the older web (created first) is active,
      blue on a tie;
    - nothing recorded, nothing runs: no active color; idle is blue.
    """
    running = [color for color in COLORS if (web.get(color) or {}).get("running")]
    warnings = []
    if recorded is not None and recorded not in COLORS:
        raise BlueGreenError("unknown recorded color %r" % (recorded,))
    if recorded:
        other = other_color(recorded)
        if recorded in running:
            active = recorded
        elif other in running:
            active = other
            warnings.append(
                "the state file names %s as active, but no %s web container is running while %s's is: "
                "treating %s as active (record it with state=active to silence this)"
                % (recorded, recorded, other, other))
        else:
            active = recorded
            warnings.append(
                "the state file names %s as active, but no web container of either color is running: "
                "keeping %s as active" % (recorded, recorded))
    elif len(running) == 1:
        active = running[0]
        warnings.append(
            "no active color is recorded, but %s's web is running: treating %s as active "
            "(record it with state=active to silence this)" % (active, active))
    elif len(running) == 2:
        active = sorted(COLORS, key=lambda c: (web[c].get("created") or "", COLORS.index(c)))[0]
        warnings.append(
            "no active color is recorded and the web of both colors is running: treating %s as active "
            "because its web is the older one (record the right color with state=active)" % active)
    else:
        active = None
    idle = other_color(active) if active else COLORS[0]
    return active, idle, warnings


def last_release_of(state, color):
    """The release most recently recorded for `color`, from the record and its history."""
    if state.get("active_color") == color and state.get("release") is not None:
        return state.get("release")
    for entry in state.get("history") or []:
        if entry.get("color") == color:
            return entry.get("release")
    return None


def record_active(state, color, release=None, record=None, history_size=DEFAULT_HISTORY_SIZE, now=None):
    """(new_state, changed): `state` with `color` recorded as active.

    Re-recording the active color with the same release (or no release) is no
    change. Otherwise the new state gets a history entry, newest first:
    {release, color, previous_color, previous_release, at, **record}, and the
    history is cut to `history_size` entries. `release` None means: the release
    last recorded for that color (a rollback to the previous color keeps its
    release). `now` is an ISO 8601 UTC time string (injected for tests).
    """
    if color not in COLORS:
        raise BlueGreenError("color must be one of %s, got %r" % (", ".join(COLORS), color))
    if history_size is None or history_size < 0:
        raise BlueGreenError("history_size must be zero or more, got %s" % (history_size,))
    before_color = state.get("active_color")
    before_release = state.get("release")
    if release is None:
        release = before_release if before_color == color else last_release_of(state, color)
    if before_color == color and before_release == release:
        return state, False
    at = now or utc_now()
    entry = dict(record or {})
    entry.update(release=release, color=color, previous_color=before_color,
                 previous_release=before_release, at=at)
    new = dict(state)
    new.update(active_color=color, release=release, updated_at=at,
               history=([entry] + list(state.get("history") or []))[:history_size])
    return new, True


def state_diff(before, after):
    """The diff the module returns for the state file."""
    def view(state):
        return {"active_color": state.get("active_color"), "release": state.get("release")}
    return {"before": view(before), "after": view(after)}


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
