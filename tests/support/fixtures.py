# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fixtures of the suites that run against the real daemon; each tears down what it made, also on failure.

The integration and end-to-end suites' conftest.py files import them (pytest finds fixtures by name there).
"""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest

from tests.support.stack import DemoStack, Nginx


@pytest.fixture
def demo_stack(request):
    """A fresh demo app instance with its shared Redis up; torn down after the test."""
    app = "t%s" % uuid.uuid4().hex[:8]
    stack = DemoStack(app)
    try:
        stack.up_shared()
        yield stack
    finally:
        stack.teardown()


@pytest.fixture(scope="session", autouse=True)
def docker_available():
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True, check=False).returncode:
        pytest.fail("the integration suite needs a running Docker daemon: run it through `make test`")


@pytest.fixture
def nginx(demo_stack, tmp_path):
    """A private nginx for the demo stack, stopped after the test."""
    proxy = Nginx(tmp_path / "nginx", "%s_bluegreen" % demo_stack.app, demo_stack.ports["blue"])
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
