# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

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
