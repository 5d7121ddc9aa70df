# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to the collection: this file may change without notice.
#
# Words shared by every module: colors, project names, and the error type the
# modules turn into fail_json messages.

from __future__ import annotations

import re

COLORS = ("blue", "green")
COLOR_CHOICES = ("blue", "green", "active", "idle")

# What Compose accepts as a project name, minus the color suffix we add.
_APP_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,54}$")


class BlueGreenError(Exception):
    """An error whose message is written for the user."""


def validate_app_name(app, option="app"):
    """Fail with a message naming the option unless Compose accepts `<app>-blue`."""
    if not isinstance(app, str) or not _APP_NAME_RE.match(app):
        raise BlueGreenError(
            "%s=%r is not a valid app name: use 1-55 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit (Compose project names allow nothing else)" % (option, app)
        )
    return app


def other_color(color):
    if color not in COLORS:
        raise BlueGreenError("color must be one of %s, got %r" % (", ".join(COLORS), color))
    return COLORS[1] if color == COLORS[0] else COLORS[0]


def project_name(app, color):
    """The compose project of one color of an app: `<app>-<color>`."""
    validate_app_name(app)
    if color not in COLORS:
        raise BlueGreenError("color must be one of %s, got %r" % (", ".join(COLORS), color))
    return "%s-%s" % (app, color)


def shared_project_name(app):
    return "%s-shared" % validate_app_name(app)


def check_non_negative(params, names):
    """Fail naming the first option in `names` whose value is negative."""
    for name in names:
        value = params.get(name)
        if value is not None and value < 0:
            raise BlueGreenError("%s must be zero or more, got %s" % (name, value))
