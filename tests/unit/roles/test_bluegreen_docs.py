# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The role's documentation and its argument spec cover every default, as they are."""

from __future__ import annotations

from pathlib import Path

import yaml

ROLE = Path(__file__).resolve().parents[3] / "roles" / "bluegreen"


def test_readme_mirrors_the_defaults_file_verbatim():
    readme = (ROLE / "README.md").read_text()
    section = readme[readme.index("## Role variables"):]
    block = section[section.index("```yaml\n") + len("```yaml\n"):]
    block = block[:block.index("```")]
    defaults = (ROLE / "defaults" / "main.yml").read_text()
    assert "---\n" + block == defaults


def test_every_default_is_validated_by_the_argument_spec():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    spec = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    assert sorted(set(defaults) - set(options)) == []
    assert all(name.startswith("bluegreen_") for name in options)


def test_every_entry_point_the_playbooks_use_is_validated_like_main():
    spec = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    used = set()
    for playbook in (ROLE.parents[1] / "playbooks").glob("*.yml"):
        for play in yaml.safe_load(playbook.read_text()):
            for task in play.get("tasks", []) + play.get("pre_tasks", []) + play.get("post_tasks", []):
                include = task.get("ansible.builtin.include_role") or task.get("ansible.builtin.import_role") or {}
                if include.get("name") == "lowspec.bluegreen.bluegreen":
                    used.add(include.get("tasks_from", "main"))
    assert used >= {"rollback", "status", "cleanup"}, used
    for entry_point in used:
        assert spec[entry_point]["options"] == spec["main"]["options"], entry_point
