# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import json

import pytest

from ansible_collections.lowspec.bluegreen.plugins.module_utils import _common, _lock

NOW = 1795971003  # 2026-11-29T16:50:03Z


def record(age=0, token="tok-a", holder="alice@laptop", **extra):
    rec = _lock.new_record("shop", holder, token, "pi5-01", NOW - age, {"release": "v42"})
    rec.update(extra)
    return rec


def test_lock_path_validates_the_app():
    assert _lock.lock_path("/var/lib/lowspec-bluegreen", "shop") == "/var/lib/lowspec-bluegreen/shop.lock"
    with pytest.raises(_common.BlueGreenError, match="^app="):
        _lock.lock_path("/x", "../etc/passwd")


def test_new_record_fields():
    assert record() == {"app": "shop", "holder": "alice@laptop", "token": "tok-a", "host": "pi5-01",
                        "acquired_at": "2026-11-29T16:50:03Z", "acquired_epoch": NOW, "info": {"release": "v42"}}
    assert _lock.new_record("shop", "ansible", "t", "h", NOW + 0.9)["acquired_epoch"] == NOW
    assert _lock.new_record("shop", "ansible", "t", "h", NOW)["info"] == {}


@pytest.mark.parametrize("seconds, text", [
    (-5, "0s"), (0, "0s"), (59, "59s"), (60, "1m 00s"), (192, "3m 12s"), (3599, "59m 59s"),
    (3600, "1h 00m"), (7500, "2h 05m"), (86400, "1d 0h"), (3 * 86400 + 4 * 3600 + 59, "3d 4h"),
])
def test_format_age(seconds, text):
    assert _lock.format_age(seconds) == text


def test_staleness_is_strictly_older_than():
    assert not _lock.is_stale(record(age=7200), NOW, 7200)
    assert _lock.is_stale(record(age=7201), NOW, 7200)
    assert _lock.lock_age(record(age=-30), NOW) == 0  # clock ahead: not negative


def test_parse_record_round_trip():
    rec = record()
    assert _lock.parse_record(_lock.serialize(rec), "shop", NOW + 10) == rec


@pytest.mark.parametrize("text, reason", [("", "empty"), ("{not json", "not a JSON object"),
                                          ("[1, 2]", "not a JSON object")])
def test_unreadable_lock_file_is_still_a_lock_aged_by_mtime(text, reason):
    rec = _lock.parse_record(text, "shop", NOW - 100)
    assert rec["unreadable"] is True
    assert rec["holder"] == "unknown (unreadable lock file: %s)" % reason
    assert rec["token"] is None
    assert rec["acquired_epoch"] == NOW - 100
    assert rec["app"] == "shop"


def test_partial_record_gets_defaults():
    rec = _lock.parse_record(json.dumps({"token": "x"}), "shop", NOW)
    assert rec["acquired_epoch"] == NOW
    assert rec["acquired_at"] == "2026-11-29T16:50:03Z"
    assert rec["holder"] == "unknown"
    assert rec["info"] is None


def test_take_free_lock():
    assert _lock.decide_take(None, "tok-a", NOW, 7200, False) == (_lock.TAKE_CREATE, None)


def test_take_own_lock_is_kept():
    assert _lock.decide_take(record(), "tok-a", NOW, 7200, False) == (_lock.TAKE_KEEP, None)
    assert _lock.decide_take(record(age=99999), "tok-a", NOW, 7200, True) == (_lock.TAKE_KEEP, None)


def test_take_held_lock_is_refused_naming_holder_and_time():
    action, message = _lock.decide_take(record(age=192), "tok-b", NOW, 7200, False)
    assert action == _lock.TAKE_REFUSE
    assert message == (
        "deploy of app 'shop' is locked by alice@laptop on pi5-01 (token tok-a) since 2026-11-29T16:46:51Z "
        "(3m 12s ago); wait for it to finish, or if that deploy is gone, re-run with break_stale=true "
        "(allowed after 7200s, that is in 1h 56m)")


def test_break_stale_does_not_break_a_fresh_lock():
    action, message = _lock.decide_take(record(age=10), "tok-b", NOW, 7200, True)
    assert action == _lock.TAKE_REFUSE
    assert "wait for it to finish" in message


def test_stale_lock_refused_saying_stale_then_broken():
    action, message = _lock.decide_take(record(age=3 * 3600), "tok-b", NOW, 7200, False)
    assert action == _lock.TAKE_REFUSE
    assert message == (
        "deploy of app 'shop' is locked by alice@laptop on pi5-01 (token tok-a) since 2026-11-29T13:50:03Z "
        "(3h 00m ago); the lock is stale (older than stale_after=7200s): if that deploy is gone, "
        "re-run with break_stale=true to take it over")
    assert _lock.decide_take(record(age=3 * 3600), "tok-b", NOW, 7200, True) == (_lock.TAKE_BREAK, None)


def test_tokenless_take_never_matches():
    assert _lock.decide_take(record(token=None), None, NOW, 7200, False)[0] == _lock.TAKE_REFUSE


def test_release():
    assert _lock.decide_release(None, "tok-a", False) == (_lock.RELEASE_NONE, None)
    assert _lock.decide_release(record(), "tok-a", False) == (_lock.RELEASE_REMOVE, None)
    assert _lock.decide_release(record(), "tok-b", True) == (_lock.RELEASE_REMOVE, None)
    assert _lock.decide_release(record(), None, True) == (_lock.RELEASE_REMOVE, None)


def test_release_of_another_deploys_lock_is_refused():
    action, message = _lock.decide_release(record(), "tok-b", False)
    assert action == _lock.RELEASE_REFUSE
    assert message == (
        "not releasing the deploy lock of app 'shop': it is held by alice@laptop on pi5-01 (token tok-a) "
        "since 2026-11-29T16:50:03Z and token tok-b does not match; pass the token of the deploy that took it, "
        "or force=true to remove it anyway")
    assert "no token was given" in _lock.decide_release(record(), None, False)[1]
    assert _lock.decide_release(record(token=None), None, False)[0] == _lock.RELEASE_REFUSE


def test_same_record():
    assert _lock.same_record(record(), record())
    assert not _lock.same_record(record(), record(token="tok-b"))
    assert not _lock.same_record(record(), record(age=1))
