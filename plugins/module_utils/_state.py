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
    path = state_path(state_dir, app)
    os.makedirs(state_dir, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % app, suffix=".tmp", dir=state_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state, handle, indent=1, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(state_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path
