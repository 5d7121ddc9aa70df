# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to the collection: this file may change without notice.

from __future__ import annotations


class ModuleDocFragment:

    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The Docker daemon to talk to, as the C(DOCKER_HOST) environment variable of the
        C(docker) CLI (for example V(unix:///run/docker.sock) or V(ssh://pi@pi5)).
      - When not set, the CLI's own default (or C(DOCKER_HOST) of the task's environment) is used.
    type: str
requirements:
  - The C(docker) CLI on the managed host, talking to a Docker Engine (API 1.41 or later).
  - Docker Compose v2, as the C(docker compose) plugin or a standalone C(docker-compose) v2.
    Compose v1 is refused.
"""
