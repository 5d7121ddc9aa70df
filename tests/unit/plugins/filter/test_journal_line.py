# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.lowspec.bluegreen.plugins.filter.journal_line import FilterModule, journal_line

ENTRY = {"project": "shop-blue", "id": "8296434d8e9e2b1c0d5f7a3e6c4b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b",
         "service": "worker", "action": "stopped", "queues": ["celery"], "stop_issued_at": 1796160000.5}


def test_a_journal_entry_reads_as_project_service_short_id_and_action():
    assert journal_line(ENTRY) == "shop-blue worker 8296434d8e9e stopped"
    assert journal_line(dict(ENTRY, action="shrunk", pool={"before": 3, "after": 1})) == (
        "shop-blue worker 8296434d8e9e shrunk")


def test_what_an_entry_lacks_is_a_question_mark():
    assert journal_line({"id": "abc"}) == "? ? abc ?"
    assert journal_line({"project": "shop-green", "service": "", "action": None}) == "shop-green ? ? ?"


@pytest.mark.parametrize("value", ["shop-blue worker", None, ["shop-blue"]])
def test_not_an_entry_is_refused(value):
    with pytest.raises(AnsibleFilterError, match="journal_line expects a journal entry"):
        journal_line(value)


def test_the_filter_is_registered_under_its_name():
    assert FilterModule().filters() == {"journal_line": journal_line}
