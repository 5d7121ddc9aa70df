# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the test suites share, imported as `tests.support.<module>`:

runner       Ansible as a user runs it (a module, ad hoc, a playbook, on a terminal)
docker_cli   the docker CLI and Compose v2 on this machine
stack        the demo app's instance (DemoStack), a private nginx, the role's variables, load
fixtures     the pytest fixtures of the suites on the real daemon
fakes        the unit tests' model of a Docker host with Celery workers and a broker
"""
