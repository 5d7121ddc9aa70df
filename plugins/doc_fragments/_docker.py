# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to the collection: this file may change without notice.

from __future__ import annotations


class ModuleDocFragment:

    DOCUMENTATION = r"""
options: {}
requirements:
  - The Python package C(docker) (the Docker SDK for Python, 7 or later) on the managed host, talking to a
    Docker Engine (API 1.41 or later).
  - The C(docker) CLI on the managed host.
  - Docker Compose v2, as the C(docker compose) plugin or a standalone C(docker-compose) v2 (for the modules
    that run Compose). Compose v1 is refused.
"""
