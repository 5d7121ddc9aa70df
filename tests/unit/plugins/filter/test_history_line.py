# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.lowspec.bluegreen.plugins.filter.history_line import history_line


def test_a_deploy_line_names_colors_drain_stopped_services_and_duration():
    line = history_line({
        "at": "2026-11-29T17:20:19Z", "color": "green", "release": "v2", "previous_color": "blue",
        "previous_release": "v1", "drained": True, "quiesce_mode": "stop", "duration_s": 41.2,
        "stopped": [{"service": "worker", "id": "a"}, {"service": "beat", "id": "b"}],
    })
    assert line == "2026-11-29T17:20:19Z  green  v2  from blue v1, drained, stopped beat+worker, 41.2s"


def test_first_deploy_restore_and_undrained_are_said():
    assert history_line({"at": "t", "color": "blue", "release": "v1"}).endswith("first deploy")
    line = history_line({"at": "t", "color": "blue", "release": "v1", "previous_color": "blue",
                         "rolled_back_from": "broken", "failed_step": "health", "drained": False, "still_active": 2})
    assert "restored after broken failed at health" in line
    assert "NOT drained (2 task(s) still running)" in line


def test_not_a_dict_is_refused():
    with pytest.raises(AnsibleFilterError):
        history_line("v1")
