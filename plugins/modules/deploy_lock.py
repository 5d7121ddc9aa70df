#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_lock
short_description: Take or release the per-app deploy lock on a managed host
version_added: 0.1.0
description:
  - Takes (O(state=present)) or releases (O(state=absent)) the deploy lock of one app on the managed host,
    so that a second deploy of the same app on the same host is refused while the first one runs.
  - The lock is the file C(<state_dir>/<app>.lock), a small JSON record of who holds it (O(holder)),
    the deploy run's O(token), the host name, when it was taken (C(acquired_at), ISO 8601 UTC, and
    C(acquired_epoch)) and O(info). It is created atomically (C(O_CREAT|O_EXCL)) with mode C(0644), so two
    deploys racing for it cannot both win, and it is never world-writable.
  - Taking a lock that another deploy holds (another token) fails, naming the holder and since when.
    Taking a lock this deploy already holds (same O(token)) changes nothing.
  - A lock older than O(stale_after) seconds is stale (its deploy was probably killed). It is still
    refused, saying it is stale, unless O(break_stale=true) takes it over deliberately; the result's RV(broken)
    then says whose lock was broken.
  - Releasing removes the lock only when its token is O(token), or with O(force=true).
    Releasing a lock that does not exist changes nothing; releasing another deploy's lock fails.
  - A lock file that cannot be parsed (empty, not JSON) still counts as held; its age is the file's
    modification time, so it becomes stale and can be broken like any other.
extends_documentation_fragment:
  - lowspec.bluegreen._common
  - lowspec.bluegreen._attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode the module reports what it would do (including a refusal) and writes nothing.
  diff_mode:
    support: full
    details:
      - The diff shows the lock record before and after (an empty dict for no lock).
  idempotent:
    support: full
    details:
      - Taking the lock again with the same O(token) and releasing a lock that is gone both report no change.
      - Without O(token), O(state=present) generates a new token each run, so a second run is refused
        by the first run's lock. Pass a token that stays the same for the whole deploy run.
options:
  app:
    description:
      - The app whose deploy is locked, for example V(shop). Lowercase letters, digits, V(-) and V(_).
    type: str
    required: true
  state:
    description:
      - V(present) takes the lock, V(absent) releases it.
    type: str
    choices: [present, absent]
    required: true
  state_dir:
    description:
      - The directory on the managed host that holds the lock file (and the apps' state files).
      - Created with mode C(0755) when missing.
    type: path
    default: /var/lib/lowspec-bluegreen
  holder:
    description:
      - Who takes the lock, as shown to whoever is refused, for example
        V("{{ lookup('ansible.builtin.env', 'USER') }}@{{ lookup('ansible.builtin.pipe', 'hostname') }}").
      - The managed host cannot know the controller's user or host, so pass them here.
      - Only used with O(state=present); the holder of a lock already held is not changed.
    type: str
    default: ansible
  token:
    description:
      - An opaque id of this deploy run, the same for every task of the run (for example a UUID generated once
        on the controller). O(state=present) stores it; O(state=absent) releases only a lock with this token.
      - When omitted with O(state=present), a random token is generated and returned in RV(lock.token).
    type: str
  force:
    description:
      - With O(state=absent), remove the lock whatever its token. Use only when the deploy that took it is known
        to be gone.
    type: bool
    default: false
  stale_after:
    description:
      - Seconds after which a lock is stale, that is assumed left behind by a deploy that is gone.
        Must be zero or more.
    type: int
    default: 7200
  break_stale:
    description:
      - With O(state=present), take over a stale lock (older than O(stale_after)) instead of failing.
        The result's RV(broken) is the record of the lock that was broken.
      - A lock that is not stale is never broken.
    type: bool
    default: false
  info:
    description:
      - Extra facts stored in the lock record with O(state=present), for example the release and the colors,
        shown to whoever is refused.
    type: dict
notes:
  - The result keys are returned on failure too (RV(lock) is then the lock that is held), so a rescue block can
    show them.
  - As with every module that returns a C(path), Ansible adds the lock file's C(owner), C(group), C(mode), C(uid),
    C(gid), C(size) and C(state) (V(file), or V(absent) once released) to the result.
author:
  - lowspec.bluegreen developers (@lowspec)
seealso:
  - module: lowspec.bluegreen.host_pressure
    description: The other check a deploy makes before each stage.
"""

EXAMPLES = r"""
---
- name: Make one token for this deploy run
  ansible.builtin.set_fact:
    deploy_token: "{{ lookup('ansible.builtin.password', '/dev/null', chars=['ascii_lowercase', 'digits'], length=16) }}"
  run_once: true

- name: Take the deploy lock of shop
  lowspec.bluegreen.deploy_lock:
    app: shop
    state: present
    token: "{{ deploy_token }}"
    holder: "{{ lookup('ansible.builtin.env', 'USER') }}@{{ lookup('ansible.builtin.pipe', 'hostname') }}"
    info:
      release: v42
  register: shop_lock

- name: Take over the lock of a deploy that was killed more than an hour ago
  lowspec.bluegreen.deploy_lock:
    app: shop
    state: present
    token: "{{ deploy_token }}"
    stale_after: 3600
    break_stale: true

- name: Release the lock (in an always block, so every path releases it)
  lowspec.bluegreen.deploy_lock:
    app: shop
    state: absent
    token: "{{ deploy_token }}"
"""

RETURN = r"""
lock:
  description:
    - The lock record now in force (O(state=present)), or the one that was released (O(state=absent)).
    - When taking the lock is refused, the record of the lock that is held.
    - V(null) when there is no lock (releasing a lock that did not exist).
  returned: always
  type: dict
  contains:
    app:
      description: The app.
      type: str
      returned: success
      sample: shop
    holder:
      description: Who took the lock (O(holder)).
      type: str
      returned: success
      sample: alice@laptop
    token:
      description: The token of the deploy run that holds the lock.
      type: str
      returned: success
      sample: 4f9c1d0e6a7b4c2d
    host:
      description: The host name of the managed host that holds the lock file.
      type: str
      returned: success
      sample: pi5-01
    acquired_at:
      description: When the lock was taken, ISO 8601 UTC.
      type: str
      returned: success
      sample: "2026-11-29T16:50:03Z"
    acquired_epoch:
      description: When the lock was taken, seconds since the epoch.
      type: int
      returned: success
      sample: 1795971003
    info:
      description: The O(info) given when the lock was taken.
      type: dict
      returned: success
      sample: {release: v42}
    unreadable:
      description: Present (V(true)) when the lock file could not be parsed; its age is the file's modification time.
      type: bool
      returned: when the lock file is unreadable
      sample: true
  sample:
    app: shop
    holder: alice@laptop
    token: 4f9c1d0e6a7b4c2d
    host: pi5-01
    acquired_at: "2026-11-29T16:50:03Z"
    acquired_epoch: 1795971003
    info: {release: v42}
broken:
  description:
    - The record of the stale lock that O(break_stale=true) took over; V(null) when no lock was broken.
  returned: always
  type: dict
  sample:
    app: shop
    holder: bob@ci
    token: 0d1e2f3a4b5c6d7e
    host: pi5-01
    acquired_at: "2026-11-29T09:12:44Z"
    acquired_epoch: 1795943564
    info: {}
path:
  description: The lock file's path on the managed host.
  returned: always
  type: str
  sample: /var/lib/lowspec-bluegreen/shop.lock
"""

from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import (
    check_non_negative,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._lock import (
    DeployLock,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._module import (
    Manager,
    run_module,
)


class DeployLockManager(Manager):
    """Takes or releases one app's lock file (module_utils._lock.DeployLock does the file work)."""

    def __init__(self, module):
        super().__init__(module)
        params = module.params
        check_non_negative(params, ["stale_after"])
        self.state = params["state"]
        self.lock = DeployLock(params["app"], params["state_dir"], self.result, holder=params["holder"],
                               token=params["token"], force=params["force"], stale_after=params["stale_after"],
                               break_stale=params["break_stale"], info=params["info"],
                               check_mode=self.check_mode, diff_mode=self.diff_mode)
        self.result.update(lock=None, broken=None, path=self.lock.path)

    def run(self):
        if self.state == "present":
            self.lock.take()
        else:
            self.lock.release()
        return self.result


ARGUMENT_SPEC = dict(
    app=dict(type="str", required=True),
    state=dict(type="str", choices=["present", "absent"], required=True),
    state_dir=dict(type="path", default="/var/lib/lowspec-bluegreen"),
    holder=dict(type="str", default="ansible"),
    token=dict(type="str", no_log=False),
    force=dict(type="bool", default=False),
    stale_after=dict(type="int", default=7200),
    break_stale=dict(type="bool", default=False),
    info=dict(type="dict"),
)


def main():
    run_module(DeployLockManager, ARGUMENT_SPEC)


if __name__ == "__main__":
    main()
