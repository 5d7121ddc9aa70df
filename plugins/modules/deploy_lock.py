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

import os
import socket
import time
import uuid

from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import (
    BlueGreenError,
    check_non_negative,
    validate_app_name,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._lock import (
    DIR_MODE,
    FILE_MODE,
    RELEASE_NONE,
    RELEASE_REFUSE,
    TAKE_BREAK,
    TAKE_KEEP,
    TAKE_REFUSE,
    decide_release,
    decide_take,
    held_message,
    lock_path,
    new_record,
    parse_record,
    same_record,
    serialize,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._module import (
    Manager,
    run_module,
)

# How long an empty, just-created lock file is given to get its content.
EMPTY_GRACE = 2.0
EMPTY_RETRIES = 20


class LockRefused(BlueGreenError):
    """Taking or releasing was refused; carries the lock record in force."""

    def __init__(self, msg, record):
        super().__init__(msg)
        self.record = record


class DeployLockManager(Manager):
    """Reads, creates, breaks and removes one app's lock file."""

    def __init__(self, module):
        super().__init__(module)
        params = module.params
        self.app = validate_app_name(params["app"])
        check_non_negative(params, ["stale_after"])
        self.state = params["state"]
        self.state_dir = params["state_dir"]
        self.path = lock_path(self.state_dir, self.app)
        self.holder = params["holder"]
        self.token = params["token"] or None
        self.force = params["force"]
        self.stale_after = params["stale_after"]
        self.break_stale = params["break_stale"]
        self.info = params["info"] or {}
        self.result.update(lock=None, broken=None, path=self.path)

    # -- files --------------------------------------------------------------

    def read(self, path=None):
        """The record of the lock file at path (default: ours), or None when there is none.

        A file that is empty and only just created is being written by a racing
        run (O_EXCL creates it before its content): read it again for a moment.
        """
        path = path or self.path
        for _attempt in range(EMPTY_RETRIES):
            try:
                with open(path, "r", encoding="utf-8") as handle:
                    text = handle.read()
                    mtime = os.fstat(handle.fileno()).st_mtime
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise BlueGreenError("cannot read the deploy lock %s: %s" % (path, exc.strerror or exc)) from exc
            if text.strip() or time.time() - mtime > EMPTY_GRACE:
                break
            time.sleep(EMPTY_GRACE / EMPTY_RETRIES)
        return parse_record(text, self.app, mtime)

    def _sync_dir(self):
        dir_fd = os.open(self.state_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def create(self, record):
        """Create the lock file exclusively; False when another run created it first."""
        try:
            os.makedirs(self.state_dir, mode=DIR_MODE, exist_ok=True)
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
        except FileExistsError:
            return False
        except OSError as exc:
            raise BlueGreenError("cannot create the deploy lock %s: %s" % (self.path, exc.strerror or exc)) from exc
        try:
            os.fchmod(fd, FILE_MODE)  # whatever the umask says
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(serialize(record))
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            os.unlink(self.path)
            raise
        self._sync_dir()
        return True

    def remove(self, expected):
        """Remove the lock file if it still holds `expected`; return what was removed (None if gone).

        The file is first renamed aside, so a lock that another run wrote in the
        meantime is put back, never deleted.
        """
        aside = "%s.%s.releasing" % (self.path, uuid.uuid4().hex[:12])
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return None
        found = self.read(aside)
        if found is None or not same_record(found, expected):
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
            os.unlink(aside)
            found = self.read() or found
            raise LockRefused(
                "the deploy lock of app '%s' changed while it was being removed; it is now held by %s "
                "since %s: re-run" % (self.app, found.get("holder"), found.get("acquired_at")), found)
        os.unlink(aside)
        self._sync_dir()
        return found

    # -- states -------------------------------------------------------------

    def take(self):
        now = time.time()
        existing = self.read()
        token = self.token or uuid.uuid4().hex
        action, message = decide_take(existing, self.token, now, self.stale_after, self.break_stale)
        if action == TAKE_REFUSE:
            raise LockRefused(message, existing)
        if action == TAKE_KEEP:
            self.result["lock"] = existing
            self.set_diff(existing, existing)
            return
        record = new_record(self.app, self.holder, token, socket.gethostname(), now, self.info)
        if action == TAKE_BREAK:
            self.result["broken"] = existing
        self.result.update(changed=True, lock=record)
        self.set_diff(existing, record)
        if self.check_mode:
            return
        if action == TAKE_BREAK:
            self.remove(existing)
        if not self.create(record):
            taken = self.read()
            if taken is None:
                raise BlueGreenError("the deploy lock %s appeared and vanished while it was being taken: re-run"
                                     % self.path)
            self.result.update(changed=action == TAKE_BREAK, lock=None)
            raise LockRefused(held_message(taken, time.time(), self.stale_after), taken)

    def release(self):
        existing = self.read()
        action, message = decide_release(existing, self.token, self.force)
        self.result["lock"] = existing
        if action == RELEASE_NONE:
            self.set_diff(None, None)
            return
        if action == RELEASE_REFUSE:
            raise LockRefused(message, existing)
        self.result["changed"] = True
        self.set_diff(existing, None)
        if self.check_mode:
            return
        removed = self.remove(existing)
        if removed is None:
            self.result.update(changed=False, lock=None)
            self.set_diff(None, None)

    def set_diff(self, before, after):
        if self.diff_mode:
            self.result["diff"] = dict(before=before or {}, after=after or {},
                                       before_header=self.path, after_header=self.path)

    def run(self):
        try:
            if self.state == "present":
                self.take()
            else:
                self.release()
        except LockRefused as exc:
            self.result["lock"] = exc.record
            raise
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
