# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to the collection: this file may change without notice.
#
# The per-app deploy lock: the lock record, its age and
# staleness, what taking or releasing a lock should do, and the messages the
# user reads. Pure functions; the deploy_lock module does the file work.

from __future__ import annotations

import datetime
import json
import os

from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import (
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
