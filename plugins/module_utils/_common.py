# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to the collection: this file may change without notice.
#
# Words shared by every module: colors, project names, and the error types the
# module base (_module.py) turns into fail_json messages.

from __future__ import annotations

import re

COLORS = ("blue", "green")

# What Compose accepts as a project name, minus the color suffix we add.
_APP_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,54}$")


class BlueGreenError(Exception):
    """An error whose message is written for the user."""


class CommandError(BlueGreenError):
    """A command (docker compose, nginx, a switch command) failed; carries what the user needs to see."""

    def __init__(self, msg, cmd=None, rc=None, stdout="", stderr=""):
        super().__init__(msg)
        self.cmd = cmd
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    def details(self):
        return {"cmd": self.cmd, "rc": self.rc, "stdout": self.stdout, "stderr": self.stderr}


def validate_app_name(app, option="app"):
    """Fail with a message naming the option unless Compose accepts `<app>-blue`."""
    if not isinstance(app, str) or not _APP_NAME_RE.match(app):
        raise BlueGreenError(
            "%s=%r is not a valid app name: use 1-55 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit (Compose project names allow nothing else)" % (option, app)
        )
    return app


def check_color(color):
    if color not in COLORS:
        raise BlueGreenError("color must be one of %s, got %r" % (", ".join(COLORS), color))
    return color


def other_color(color):
    check_color(color)
    return COLORS[1] if color == COLORS[0] else COLORS[0]


def project_name(app, color):
    """The compose project of one color of an app: `<app>-<color>`."""
    validate_app_name(app)
    return "%s-%s" % (app, check_color(color))


def check_non_negative(params, names):
    """Fail naming the first option in `names` whose value is negative."""
    for name in names:
        value = params.get(name)
        if value is not None and value < 0:
            raise BlueGreenError("%s must be zero or more, got %s" % (name, value))


def first_error_line(text):
    """The most telling line of a command's stderr, for a one-line message."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    for line in lines:
        if re.search(r"error|invalid|not found|no such|denied|refused|failed|emerg", line, re.IGNORECASE):
            return line
    return lines[-1] if lines else ""


def seconds(value):
    """A duration rounded for results and messages."""
    return round(value, 2)
