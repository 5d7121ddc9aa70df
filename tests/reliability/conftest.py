# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The heavy reliability suite reuses the integration suite's fixtures and helpers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "lowspec_integration_conftest", Path(__file__).resolve().parents[1] / "integration" / "conftest.py")
integration = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(integration)

# pytest finds fixtures by attribute: re-export the integration ones.
demo_stack = integration.demo_stack
nginx = integration.nginx
_docker_available = integration._docker_available  # pylint: disable=protected-access
