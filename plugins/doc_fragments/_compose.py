# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to the collection: this file may change without notice.
#
# The compose project options (app, project_src, files, env_files, env,
# variables) of the modules that run Compose.

from __future__ import annotations


class ModuleDocFragment:

    DOCUMENTATION = r"""
options:
  app:
    description:
      - The application's name. Each color is the Compose project C(<app>-<color>), for example
        C(shop-blue) and C(shop-green); the state file is C(<app>.json).
      - 1 to 55 lowercase letters, digits, V(-) or V(_), starting with a letter or a digit (what Compose
        accepts in a project name). Anything else fails before any command runs.
    type: str
    required: true
  project_src:
    description:
      - The directory of the app's compose file(s); Compose runs with it as project directory and
        working directory.
      - It must exist. Relative O(files) and O(env_files) are resolved against it.
    type: path
  files:
    description:
      - The compose files, relative to O(project_src) (absolute paths are used as they are), in the
        order Compose merges them.
      - When not set, Compose's default lookup in O(project_src) applies (V(compose.yaml),
        V(compose.yml), V(docker-compose.yaml), V(docker-compose.yml)); one of them must exist.
      - Each file must exist. Requires O(project_src).
    type: list
    elements: str
  env_files:
    description:
      - Environment files for interpolation (C(docker compose --env-file)), relative to O(project_src).
      - Each file must exist. Requires O(project_src).
    type: list
    elements: str
  env:
    description:
      - Variables for interpolation of the compose files, passed to Compose in its environment
        (never on its command line, never in the module's C(actions)).
      - Values may hold secrets; the option is not logged, and Ansible masks each of its values wherever it
        appears in the result - a short value such as V(2) would be masked inside container ids too. Put values
        that are no secret (ports, sizes, counts) in O(variables) instead.
    type: dict
  variables:
    description:
      - Variables for interpolation that are no secret (ports, sizes, counts), passed like O(env) but shown in
        the output as they are. O(env) wins where both set a variable.
    type: dict
    version_added: 0.1.0
"""
