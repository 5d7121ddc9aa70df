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

from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import (
    COLORS,
    BlueGreenError,
    validate_app_name,
)

DEFAULT_STATE_DIR = "/var/lib/lowspec-bluegreen"
STATE_VERSION = 1
FILE_MODE = 0o644


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
# The quiesce journal: what a deploy stopped, froze or shrank, written down
# before each change, so that a run that never reaches its rescue (Ctrl-C, a
# lost controller or host) leaves behind what to put back.
# ---------------------------------------------------------------------------

def read_journal(path):
    """The journal's entries ({project, id, service, action, queues[, pool]}); none when there is no file."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return []
    except ValueError as exc:
        raise BlueGreenError("journal %s is not valid JSON (%s); fix or remove it" % (path, exc)) from exc
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("id"), str) and isinstance(e.get("project"), str) for e in entries):
        raise BlueGreenError("journal %s is not a list of entries with 'project' and 'id'; fix or remove it" % path)
    return entries


def journal_add(entries, project, new_entries):
    """Entries with new_entries of project added; a container written down again keeps its latest entry."""
    added = [dict(entry, project=project) for entry in new_entries]
    ids = {entry["id"] for entry in added}
    return [entry for entry in entries if entry["id"] not in ids] + added


def journal_without(entries, project):
    return [entry for entry in entries if entry["project"] != project]


def write_journal(path, entries):
    """Write the entries atomically; no entries, no file."""
    if entries:
        return _write_json(path, {"entries": entries})
    try:
        os.unlink(path)
    except FileNotFoundError:
        return path
    _sync_dir(os.path.dirname(path) or ".")
    return path


# ---------------------------------------------------------------------------
# Pure logic: which color is active, and recording a new active color
# ---------------------------------------------------------------------------

DEFAULT_HISTORY_SIZE = 10
# History keys the module sets itself; a caller's `record` cannot override them.
CORE_HISTORY_KEYS = ("release", "color", "previous_color", "previous_release", "at")


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
        other = _other(recorded)
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
    idle = _other(active) if active else COLORS[0]
    return active, idle, warnings


def _other(color):
    return COLORS[1] if color == COLORS[0] else COLORS[0]


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
