# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The real daemon's fixtures (tests/support/fixtures.py): pytest finds them here by name."""

from tests.support.fixtures import demo_stack, docker_available, nginx  # noqa: F401 pylint: disable=unused-import
