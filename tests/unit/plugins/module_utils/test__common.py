# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.lowspec.bluegreen.plugins.module_utils import _common


@pytest.mark.parametrize("app", ["shop", "demo", "a", "my_app-2", "0day"])
def test_valid_app_names(app):
    assert _common.validate_app_name(app) == app
    assert _common.project_name(app, "blue") == app + "-blue"


@pytest.mark.parametrize("app", ["", "Shop", "-shop", "shop app", "shop;rm -rf /", "a" * 56, "shop/../x", None])
def test_unsafe_app_names_are_refused_naming_the_option(app):
    with pytest.raises(_common.BlueGreenError) as err:
        _common.validate_app_name(app)
    assert str(err.value).startswith("app=")


def test_other_color_and_unknown_color():
    assert _common.other_color("blue") == "green"
    assert _common.other_color("green") == "blue"
    with pytest.raises(_common.BlueGreenError, match="color must be one of blue, green"):
        _common.other_color("purple")


def test_check_non_negative_names_the_option():
    _common.check_non_negative({"a": 0, "b": None}, ["a", "b"])
    with pytest.raises(_common.BlueGreenError, match="^stop_timeout must be zero or more, got -1$"):
        _common.check_non_negative({"stop_timeout": -1}, ["stop_timeout"])


def test_project_name_is_app_dash_color_and_checks_both():
    assert _common.project_name("shop", "green") == "shop-green"
    with pytest.raises(_common.BlueGreenError, match="color must be one of blue, green, got 'idle'"):
        _common.project_name("shop", "idle")
    with pytest.raises(_common.BlueGreenError, match="^app="):
        _common.project_name("Shop", "blue")
    assert _common.check_color("blue") == "blue"


def test_a_command_error_carries_what_the_user_needs_to_see():
    error = _common.CommandError("nginx -t failed: emerg", cmd=["nginx", "-t"], rc=1, stdout="", stderr="emerg\n")
    assert isinstance(error, _common.BlueGreenError) and str(error) == "nginx -t failed: emerg"
    assert error.details() == {"cmd": ["nginx", "-t"], "rc": 1, "stdout": "", "stderr": "emerg\n"}


def test_first_error_line_picks_the_cause():
    syntax = (Path(__file__).parent / "fixtures" / "compose-config-syntax-error.txt").read_text()
    assert _common.first_error_line(syntax).startswith("go-yaml load error")
    assert _common.first_error_line("warning: x\nError response from daemon: No such container: abc\n") == (
        "Error response from daemon: No such container: abc")
    assert _common.first_error_line("nginx: [emerg] unknown directive \"serverx\"\n") == (
        "nginx: [emerg] unknown directive \"serverx\"")
    assert _common.first_error_line("one\n  two  \n\n") == "two", "else the last line"
    assert _common.first_error_line("") == "" and _common.first_error_line(None) == ""


def test_seconds_are_rounded_for_results():
    assert _common.seconds(1.23456) == 1.23 and _common.seconds(0) == 0
