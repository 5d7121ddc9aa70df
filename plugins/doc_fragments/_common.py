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
      - The Docker daemon to talk to, as the C(DOCKER_HOST) environment variable of the C(docker) CLI (for
        example V(unix:///run/docker.sock), V(tcp://127.0.0.1:2375) or V(ssh://pi@pi5)).
      - When empty, C(DOCKER_HOST) of the task's environment, else the default socket.
      - Every module of the collection takes this option, so that it can be set once for all of them with
        C(module_defaults) and the action group C(group/lowspec.bluegreen.bluegreen). Modules that do not talk
        to Docker ignore it.
    type: str
    default: ""
"""
