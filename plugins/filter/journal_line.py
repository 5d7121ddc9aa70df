# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: journal_line
short_description: One readable line for a container in a deploy's journal
version_added: 0.2.0
description:
  - Formats one entry of the journal a deploy keeps on the host (C(<state_dir>/<app>.journal.json)), a container
    that the deploy stopped, froze or shrank and that a rescue, or the re-run of an interrupted deploy, brings back.
  - Used by the C(status) playbook.
options:
  _input:
    description: One journal entry (a dictionary with C(project), C(service), C(id) and C(action)).
    type: dict
    required: true
author:
  - lowspec.bluegreen developers (@lowspec)
"""

EXAMPLES = r"""
---
- name: Show what an unfinished deploy stopped.
  ansible.builtin.debug:
    msg: "{{ journal.entries | map('lowspec.bluegreen.journal_line') | join(', ') }}"
"""

RETURN = r"""
_value:
  description: The line, for example C(shop-blue worker 8296434d8e9e stopped).
  type: str
"""

from ansible.errors import AnsibleFilterError


def journal_line(entry):
    if not isinstance(entry, dict):
        raise AnsibleFilterError("journal_line expects a journal entry (dict), got %s" % type(entry).__name__)
    return "%s %s %s %s" % (entry.get("project", "?"), entry.get("service") or "?", str(entry.get("id", "?"))[:12],
                            entry.get("action") or "?")


class FilterModule:
    def filters(self):
        return {"journal_line": journal_line}
