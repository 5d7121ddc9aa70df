# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""`module_defaults` with the action group reaches every module of the collection.

Every module takes `docker_host` (the module base owns it), so one
`group/lowspec.bluegreen.bluegreen` default sets it for all of them: the modules
that talk to Docker fail naming the daemon it points at, the others accept it.
"""

from __future__ import annotations

import json

from tests.support.runner import localhost_inventory, run_playbook

PLAYBOOK = """\
- name: Every module under one group default.
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/lowspec.bluegreen.bluegreen:
      docker_host: unix:///nonexistent/lowspec-docker.sock
  tasks:
    - name: compose_project_color.
      lowspec.bluegreen.compose_project_color: {app: mdtest, state: inspect, color: blue, state_dir: "%(state)s"}
      register: compose
      ignore_errors: true
    - name: celery_quiesce.
      lowspec.bluegreen.celery_quiesce: {project: mdtest-blue, celery_app: tasks}
      register: quiesce
      ignore_errors: true
    - name: host_pressure.
      lowspec.bluegreen.host_pressure: {wait_timeout: 0, cpu_some_avg10_max: 100, memory_some_avg10_max: 100}
      register: pressure
      ignore_errors: true
    - name: deploy_lock.
      lowspec.bluegreen.deploy_lock: {app: mdtest, state: absent, state_dir: "%(state)s"}
      register: lock
    - name: proxy_switch.
      lowspec.bluegreen.proxy_switch: {proxy: none, color: blue}
      register: switch
    - name: http_health (a port nothing listens on).
      lowspec.bluegreen.http_health: {url: "http://127.0.0.1:9/", retries: 1, timeout: 1}
      register: health
      ignore_errors: true
    - name: Write what each module said.
      ansible.builtin.copy:
        dest: "%(out)s"
        mode: "0644"
        content: "{{ {'compose': compose.msg | default(''), 'quiesce': quiesce.msg | default(''),
                      'pressure': pressure.msg | default(''), 'lock': lock.failed | default(false),
                      'switch': switch.failed | default(false), 'health': health.msg | default('')} | to_json }}"
"""


def test_one_group_default_sets_docker_host_for_every_module(tmp_path):
    out = tmp_path / "said.json"
    playbook = tmp_path / "group.yml"
    playbook.write_text(PLAYBOOK % {"state": tmp_path / "state", "out": out})
    result = run_playbook(playbook, inventory=str(localhost_inventory()))
    assert result.returncode == 0, result.stdout[-4000:]
    said = json.loads(out.read_text())
    for name in ("compose", "quiesce", "pressure"):
        assert "unix:///nonexistent/lowspec-docker.sock" in said[name], (name, said[name])
    # The modules that do not talk to Docker take the option and go on.
    assert said["lock"] is False and said["switch"] is False
    assert "Unsupported parameters" not in said["health"] and "refused" in said["health"], said["health"]
