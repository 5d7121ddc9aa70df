# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to the collection: this file may change without notice.
#
# The per-app deploy lock: the lock record, its age and
# staleness, what taking or releasing a lock should do, and the messages the
# user reads (pure functions); and DeployLock, the file work that deploy_lock
# does, and compose_project_color when a deploy's first call takes the lock.

from __future__ import annotations

import datetime
import json
import os
import socket
import time
import uuid

from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import (
    BlueGreenError,
    validate_app_name,
)

LOCK_SUFFIX = ".lock"
FILE_MODE = 0o644
DIR_MODE = 0o755
RECORD_KEYS = ("app", "holder", "token", "host", "acquired_at", "acquired_epoch", "info")

# What taking a lock does.
TAKE_CREATE = "create"      # no lock: create it
TAKE_KEEP = "keep"          # we hold it already (same token): nothing to do
TAKE_BREAK = "break"        # stale and break_stale: replace it, reporting whose it was
TAKE_REFUSE = "refuse"      # someone else holds it

# What releasing a lock does.
RELEASE_NONE = "none"       # no lock: nothing to do
RELEASE_REMOVE = "remove"   # ours (or force): remove it
RELEASE_REFUSE = "refuse"   # someone else's, no force


def lock_path(state_dir, app):
    return os.path.join(state_dir, validate_app_name(app) + LOCK_SUFFIX)


def iso_utc(epoch):
    """ISO 8601 UTC with a Z, to the second: 2026-11-29T16:50:03Z."""
    moment = datetime.datetime.fromtimestamp(int(epoch), tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_age(seconds):
    """A short human duration: 45s, 3m 12s, 2h 05m, 3d 4h."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "%ds" % seconds
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return "%dm %02ds" % (minutes, secs)
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return "%dh %02dm" % (hours, minutes)
    days, hours = divmod(hours, 24)
    return "%dd %dh" % (days, hours)


def new_record(app, holder, token, host, now, info=None):
    """The record a new lock file holds."""
    epoch = int(now)
    return {
        "app": app,
        "holder": holder,
        "token": token,
        "host": host,
        "acquired_at": iso_utc(epoch),
        "acquired_epoch": epoch,
        "info": dict(info or {}),
    }


def parse_record(text, app, mtime):
    """The record of an existing lock file's text.

    A file that is not a JSON object (half-written by a crashed run, edited by
    hand) is still a lock: its age is the file's modification time and its
    holder says it is unreadable, so it can be reported and broken like any other.
    """
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        reason = "empty" if not (text or "").strip() else "not a JSON object"
        record = new_record(app, "unknown (unreadable lock file: %s)" % reason, None, None, mtime)
        record["unreadable"] = True
        return record
    record = dict(data)
    for key in RECORD_KEYS:
        record.setdefault(key, None)
    try:
        record["acquired_epoch"] = int(record["acquired_epoch"])
    except (TypeError, ValueError):
        record["acquired_epoch"] = int(mtime)
    if not record["acquired_at"]:
        record["acquired_at"] = iso_utc(record["acquired_epoch"])
    if not record["holder"]:
        record["holder"] = "unknown"
    return record


def serialize(record):
    return json.dumps(record, indent=1, sort_keys=True) + "\n"


def lock_age(record, now):
    """Seconds since the lock was taken (0 if its clock was ahead of ours)."""
    return max(0, int(now) - int(record["acquired_epoch"]))


def is_stale(record, now, stale_after):
    return lock_age(record, now) > stale_after


def _who(record):
    who = str(record.get("holder"))
    if record.get("host"):
        who += " on %s" % record["host"]
    if record.get("token"):
        who += " (token %s)" % record["token"]
    return who


def held_message(record, now, stale_after):
    """Why taking the lock was refused, and what the user can do about it."""
    age = lock_age(record, now)
    head = "deploy of app '%s' is locked by %s since %s (%s ago)" % (
        record.get("app"), _who(record), record.get("acquired_at"), format_age(age))
    if is_stale(record, now, stale_after):
        return head + ("; the lock is stale (older than stale_after=%ds): if that deploy is gone, "
                       "re-run with break_stale=true to take it over" % stale_after)
    return head + ("; wait for it to finish, or if that deploy is gone, re-run with break_stale=true "
                   "(allowed after %ds, that is in %s)" % (stale_after, format_age(stale_after - age + 1)))


def decide_take(existing, token, now, stale_after, break_stale):
    """(action, message) for taking the lock with `token` over `existing` (a record or None)."""
    if existing is None:
        return TAKE_CREATE, None
    if token is not None and existing.get("token") == token:
        return TAKE_KEEP, None
    if break_stale and is_stale(existing, now, stale_after):
        return TAKE_BREAK, None
    return TAKE_REFUSE, held_message(existing, now, stale_after)


def decide_release(existing, token, force):
    """(action, message) for releasing the lock with `token` (or by force)."""
    if existing is None:
        return RELEASE_NONE, None
    if force or (token is not None and existing.get("token") == token):
        return RELEASE_REMOVE, None
    if token is None:
        why = "no token was given"
    else:
        why = "token %s does not match" % token
    return RELEASE_REFUSE, (
        "not releasing the deploy lock of app '%s': it is held by %s since %s and %s; "
        "pass the token of the deploy that took it, or force=true to remove it anyway"
        % (existing.get("app"), _who(existing), existing.get("acquired_at"), why))


def same_record(left, right):
    """Whether two reads of a lock file describe the same lock."""
    keys = ("token", "acquired_epoch", "holder", "host")
    return all(left.get(key) == right.get(key) for key in keys)


# ---------------------------------------------------------------------------
# The lock file
# ---------------------------------------------------------------------------

# How long an empty, just-created lock file is given to get its content.
EMPTY_GRACE = 2.0
EMPTY_RETRIES = 20


class LockRefused(BlueGreenError):
    """Taking or releasing was refused; carries the lock record in force."""

    def __init__(self, msg, record):
        super().__init__(msg)
        self.record = record


class DeployLock:
    """Reads, creates, breaks and removes one app's lock file; reports into `result` (lock, broken, changed, diff)."""

    def __init__(self, app, state_dir, result, holder="ansible", token=None, force=False, stale_after=7200,
                 break_stale=False, info=None, check_mode=False, diff_mode=False):
        self.app = validate_app_name(app)
        self.state_dir = state_dir
        self.path = lock_path(state_dir, self.app)
        self.result = result
        self.holder = holder
        self.token = token or None
        self.force = force
        self.stale_after = stale_after
        self.break_stale = break_stale
        self.info = info or {}
        self.check_mode = check_mode
        self.diff_mode = diff_mode

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

    def take(self):
        self._noting_refusal(self._take)

    def release(self):
        self._noting_refusal(self._release)

    def _noting_refusal(self, step):
        """RV(lock) is the record in force when the step is refused."""
        try:
            step()
        except LockRefused as exc:
            self.result["lock"] = exc.record
            raise

    def _take(self):
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

    def _release(self):
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
