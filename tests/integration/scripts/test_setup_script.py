# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The set-up script's refusals: a clear message and a non-zero exit, nothing started."""

from __future__ import annotations

import os
import shutil
import subprocess

from tests.support.runner import ROOT

SETUP = str(ROOT / "scripts" / "setup.sh")


def _run(argv, env):
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)


def test_a_daemon_elsewhere_that_does_not_answer_is_named_not_started(tmp_path):
    env = dict(os.environ, DOCKER_HOST="unix://%s/nothing.sock" % tmp_path)
    result = _run(["bash", SETUP], env)
    assert result.returncode != 0
    assert "the Docker daemon at DOCKER_HOST=unix://%s/nothing.sock does not answer" % tmp_path in result.stderr
    assert "starting dockerd" not in result.stdout


def test_no_root_and_no_docker_access_is_refused(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.chown(str(home), "nobody")
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LOWSPEC_VENV": str(ROOT / ".venv")}
    result = _run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "bash", SETUP], env)
    assert result.returncode != 0
    assert "only root can start one here" in result.stderr
    assert "starting dockerd" not in result.stdout
