# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""deploy_lock against real files: take, refuse, keep, release, stale, break, modes, check mode, races."""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.runner import run_module, run_playbook


@pytest.fixture
def state_dir(tmp_path):
    return tmp_path / "state"


def lock(state_dir, **args):
    payload = {"app": "shop", "state": "present", "state_dir": str(state_dir)}
    payload.update(args)
    check_mode = payload.pop("_check", False)
    diff = payload.pop("_diff", False)
    return run_module("deploy_lock", payload, check_mode=check_mode, diff=diff)


def lock_file(state_dir):
    return state_dir / "shop.lock"


def write_lock(state_dir, age, token="old-run", holder="bob@ci"):
    """A lock left behind by a deploy that started `age` seconds ago."""
    state_dir.mkdir(parents=True, exist_ok=True)
    epoch = int(time.time()) - age
    record = {"app": "shop", "holder": holder, "token": token, "host": "pi5-01",
              "acquired_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)),
              "acquired_epoch": epoch, "info": {"release": "v41"}}
    lock_file(state_dir).write_text(json.dumps(record))
    return record


def test_take_writes_the_record_atomically_with_safe_modes(state_dir):
    result = lock(state_dir, token="run-1", holder="alice@laptop", info={"release": "v42", "colors": ["blue", "green"]})
    assert result["rc"] == 0, result
    assert result["changed"] is True
    assert result["broken"] is None
    assert result["path"] == str(lock_file(state_dir))
    on_disk = json.loads(lock_file(state_dir).read_text())
    assert on_disk == result["lock"]
    assert set(on_disk) == {"app", "holder", "token", "host", "acquired_at", "acquired_epoch", "info"}
    assert on_disk["app"] == "shop"
    assert on_disk["holder"] == "alice@laptop"
    assert on_disk["token"] == "run-1"
    assert on_disk["host"] == socket.gethostname()
    assert on_disk["info"] == {"release": "v42", "colors": ["blue", "green"]}
    assert abs(on_disk["acquired_epoch"] - time.time()) < 30
    assert on_disk["acquired_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(on_disk["acquired_epoch"]))
    mode = stat.S_IMODE(os.stat(lock_file(state_dir)).st_mode)
    assert mode == 0o644
    assert not mode & stat.S_IWOTH
    assert stat.S_IMODE(os.stat(state_dir).st_mode) & stat.S_IWOTH == 0
    assert [p.name for p in state_dir.iterdir()] == ["shop.lock"]  # no temp files left behind


def test_second_deploy_is_refused_naming_holder_and_time(state_dir):
    first = lock(state_dir, token="run-1", holder="alice@laptop")
    before = lock_file(state_dir).read_bytes()
    second = lock(state_dir, token="run-2", holder="bob@ci")
    assert second["rc"] != 0
    assert second.get("failed") is True
    assert second["changed"] is False
    msg = second["msg"]
    assert msg.startswith("deploy of app 'shop' is locked by alice@laptop on %s (token run-1) since %s ("
                          % (socket.gethostname(), first["lock"]["acquired_at"])), msg
    assert "ago); wait for it to finish, or if that deploy is gone, re-run with break_stale=true" in msg
    assert "allowed after 7200s" in msg
    assert second["lock"] == first["lock"]
    assert lock_file(state_dir).read_bytes() == before


def test_same_token_is_idempotent(state_dir):
    first = lock(state_dir, token="run-1")
    before = lock_file(state_dir).read_bytes()
    again = lock(state_dir, token="run-1", holder="someone else", info={"release": "v43"})
    assert again["rc"] == 0, again
    assert again["changed"] is False
    assert again["lock"] == first["lock"]
    assert lock_file(state_dir).read_bytes() == before


def test_take_without_token_generates_one_and_a_second_tokenless_take_is_refused(state_dir):
    first = lock(state_dir)
    assert first["rc"] == 0
    token = first["lock"]["token"]
    assert token and len(token) >= 16
    assert lock(state_dir)["rc"] != 0
    assert lock(state_dir, token=token)["changed"] is False
    released = lock(state_dir, state="absent", token=token)
    assert released["changed"] is True


def test_release_by_another_token_is_refused_and_keeps_the_lock(state_dir):
    lock(state_dir, token="run-1", holder="alice@laptop")
    before = lock_file(state_dir).read_bytes()
    other = lock(state_dir, state="absent", token="run-2")
    assert other["rc"] != 0
    assert other["changed"] is False
    assert other["msg"].startswith("not releasing the deploy lock of app 'shop': it is held by alice@laptop")
    assert "token run-2 does not match" in other["msg"]
    assert other["lock"]["token"] == "run-1"
    tokenless = lock(state_dir, state="absent")
    assert tokenless["rc"] != 0 and "no token was given" in tokenless["msg"]
    assert lock_file(state_dir).read_bytes() == before


def test_release_then_release_again_is_no_change(state_dir):
    taken = lock(state_dir, token="run-1")
    released = lock(state_dir, state="absent", token="run-1")
    assert released["rc"] == 0, released
    assert released["changed"] is True
    assert released["lock"] == taken["lock"]
    assert not lock_file(state_dir).exists()
    assert list(state_dir.iterdir()) == []
    again = lock(state_dir, state="absent", token="run-1")
    assert again["rc"] == 0
    assert again["changed"] is False
    assert again["lock"] is None


def test_release_without_state_dir_is_no_change(state_dir):
    result = lock(state_dir, state="absent", token="run-1")
    assert result["rc"] == 0 and result["changed"] is False
    assert not state_dir.exists()


def test_force_release(state_dir):
    lock(state_dir, token="run-1")
    forced = lock(state_dir, state="absent", token="run-2", force=True)
    assert forced["rc"] == 0 and forced["changed"] is True
    assert forced["lock"]["token"] == "run-1"
    assert not lock_file(state_dir).exists()


def test_stale_lock_is_refused_saying_stale_then_broken_deliberately(state_dir):
    old = write_lock(state_dir, age=3 * 3600 + 5)
    refused = lock(state_dir, token="run-2", holder="alice@laptop")
    assert refused["rc"] != 0
    assert refused["msg"].startswith("deploy of app 'shop' is locked by bob@ci on pi5-01 (token old-run) since %s "
                                     "(3h 00m ago); the lock is stale (older than stale_after=7200s)"
                                     % old["acquired_at"]), refused["msg"]
    assert "re-run with break_stale=true to take it over" in refused["msg"]
    assert json.loads(lock_file(state_dir).read_text()) == old

    broken = lock(state_dir, token="run-2", holder="alice@laptop", break_stale=True)
    assert broken["rc"] == 0, broken
    assert broken["changed"] is True
    assert broken["broken"] == old
    assert broken["lock"]["token"] == "run-2"
    assert broken["lock"]["holder"] == "alice@laptop"
    assert json.loads(lock_file(state_dir).read_text()) == broken["lock"]
    assert stat.S_IMODE(os.stat(lock_file(state_dir)).st_mode) == 0o644
    assert sorted(p.name for p in state_dir.iterdir()) == ["shop.lock"]

    again = lock(state_dir, token="run-2", break_stale=True)
    assert again["changed"] is False and again["broken"] is None


def test_break_stale_never_breaks_a_fresh_lock(state_dir):
    write_lock(state_dir, age=60)
    result = lock(state_dir, token="run-2", break_stale=True)
    assert result["rc"] != 0
    assert "(1m 0" in result["msg"] and "wait for it to finish" in result["msg"]
    assert json.loads(lock_file(state_dir).read_text())["token"] == "old-run"


def test_stale_after_option(state_dir):
    write_lock(state_dir, age=120)
    assert lock(state_dir, token="run-2", stale_after=600, break_stale=True)["rc"] != 0
    result = lock(state_dir, token="run-2", stale_after=60, break_stale=True)
    assert result["rc"] == 0 and result["broken"]["token"] == "old-run"


def test_unreadable_lock_file_is_held_and_breakable_when_stale(state_dir):
    state_dir.mkdir()
    lock_file(state_dir).write_text("")
    fresh = lock(state_dir, token="run-2", break_stale=True)
    assert fresh["rc"] != 0
    assert "locked by unknown (unreadable lock file: empty)" in fresh["msg"]
    old = time.time() - 3 * 3600
    os.utime(lock_file(state_dir), (old, old))
    broken = lock(state_dir, token="run-2", break_stale=True)
    assert broken["rc"] == 0, broken
    assert broken["broken"]["unreadable"] is True
    assert json.loads(lock_file(state_dir).read_text())["token"] == "run-2"


def test_check_mode_writes_nothing(state_dir):
    would = lock(state_dir, token="run-1", _check=True, _diff=True)
    assert would["rc"] == 0 and would["changed"] is True
    assert would["lock"]["token"] == "run-1"
    assert would["diff"]["before"] == {} and would["diff"]["after"]["token"] == "run-1"
    assert not state_dir.exists()

    old = write_lock(state_dir, age=3 * 3600)
    before = lock_file(state_dir).read_bytes()
    refused = lock(state_dir, token="run-1", _check=True)
    assert refused["rc"] != 0 and "stale" in refused["msg"]
    would_break = lock(state_dir, token="run-1", break_stale=True, _check=True)
    assert would_break["rc"] == 0 and would_break["changed"] is True and would_break["broken"] == old
    would_release = lock(state_dir, state="absent", token="old-run", _check=True, _diff=True)
    assert would_release["changed"] is True and would_release["diff"]["after"] == {}
    assert lock_file(state_dir).read_bytes() == before


def test_diff_of_release(state_dir):
    taken = lock(state_dir, token="run-1", _diff=True)
    assert taken["diff"]["before"] == {} and taken["diff"]["after"] == taken["lock"]
    released = lock(state_dir, state="absent", token="run-1", _diff=True)
    assert released["diff"]["before"] == taken["lock"] and released["diff"]["after"] == {}


@pytest.mark.parametrize("app", ["Shop", "../etc/x", "shop;rm -rf /", ""])
def test_bad_app_name_is_refused_and_nothing_written(state_dir, app):
    result = lock(state_dir, app=app, token="run-1")
    assert result["rc"] != 0
    assert result["msg"].startswith("app=")
    assert not state_dir.exists()


def test_negative_stale_after_is_refused(state_dir):
    result = lock(state_dir, token="run-1", stale_after=-1)
    assert result["rc"] != 0
    assert result["msg"] == "stale_after must be zero or more, got -1"
    assert not state_dir.exists()


def test_racing_deploys_exactly_one_wins(state_dir):
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda n: lock(state_dir, token="run-%d" % n), range(6)))
    winners = [r for r in results if r["rc"] == 0]
    assert len(winners) == 1, [r.get("msg") for r in results]
    assert all("is locked by ansible" in r["msg"] for r in results if r["rc"] != 0)
    assert json.loads(lock_file(state_dir).read_text())["token"] == winners[0]["lock"]["token"]


def test_through_a_playbook_with_the_action_group_defaults(tmp_path, state_dir):
    playbook = tmp_path / "lock.yml"
    playbook.write_text("""
- name: Lock round trip
  hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/lowspec.bluegreen.bluegreen:
      state_dir: %s
  tasks:
    - name: Take the lock
      lowspec.bluegreen.deploy_lock:
        app: shop
        state: present
        token: run-1
      register: taken
    - name: A second deploy is refused
      lowspec.bluegreen.deploy_lock:
        app: shop
        state: present
        token: run-2
      register: refused
      ignore_errors: true
    - name: Release the lock
      lowspec.bluegreen.deploy_lock:
        app: shop
        state: absent
        token: run-1
      register: released
    - name: Check
      ansible.builtin.assert:
        that:
          - taken is changed
          - refused is failed
          - "'is locked by ansible' in refused.msg"
          - released is changed
          - released.lock.token == 'run-1'
""" % state_dir)
    proc = run_playbook(playbook)
    assert proc.returncode == 0, proc.stdout
    assert "ok=4" in proc.stdout and "changed=2" in proc.stdout and "ignored=1" in proc.stdout, proc.stdout
    assert list(state_dir.iterdir()) == []
