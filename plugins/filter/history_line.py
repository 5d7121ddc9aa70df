# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: history_line
short_description: One readable line for a deploy in the host's history
version_added: 0.1.0
description:
  - Formats one entry of the history that M(lowspec.bluegreen.compose_project_color) keeps in the state file
    (when, color, release, where it came from, drain outcome, what was stopped, how long it took).
  - Used by the C(status) playbook.
options:
  _input:
    description: One history entry (a dictionary).
    type: dict
    required: true
author:
  - lowspec.bluegreen developers (@lowspec)
"""

EXAMPLES = r"""
---
- name: Show the last deploy.
  ansible.builtin.debug:
    msg: "{{ status.history | first | lowspec.bluegreen.history_line }}"
"""

RETURN = r"""
_value:
  description: The line, for example C(2026-11-29T17:20:19Z  green  v2  from blue v1, drained, stopped beat+worker, 41.2s).
  type: str
"""

from ansible.errors import AnsibleFilterError


def history_line(entry):
    if not isinstance(entry, dict):
        raise AnsibleFilterError("history_line expects a history entry (dict), got %s" % type(entry).__name__)
    parts = ["%s  %-5s  %s" % (entry.get("at", "?"), entry.get("color", "?"), entry.get("release", "?"))]
    notes = []
    if entry.get("previous_color"):
        notes.append("from %s %s" % (entry["previous_color"], entry.get("previous_release") or "?"))
    else:
        notes.append("first deploy")
    if entry.get("rolled_back_from"):
        notes.append("restored after %s failed at %s" % (entry["rolled_back_from"], entry.get("failed_step", "?")))
    if entry.get("rollback_of"):
        notes.append("rollback of %s" % entry["rollback_of"])
    if entry.get("drained") is False:
        notes.append("NOT drained (%s task(s) still running)" % entry.get("still_active", "?"))
    elif entry.get("drained"):
        notes.append("drained")
    stopped = entry.get("stopped") or []
    if stopped:
        services = sorted({item.get("service", "?") for item in stopped if isinstance(item, dict)})
        notes.append("%s %s" % ("paused" if entry.get("quiesce_mode") == "pause" else "stopped", "+".join(services)))
    if entry.get("duration_s") is not None:
        notes.append("%ss" % entry["duration_s"])
    return "%s  %s" % (parts[0], ", ".join(notes))


class FilterModule:
    def filters(self):
        return {"history_line": history_line}
