# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Wait: one call's share of a bounded wait, its deadline kept in the journal across calls."""

from __future__ import annotations

import json
import types

import pytest

from ansible_collections.lowspec.bluegreen.plugins.module_utils import _state
from ansible_collections.lowspec.bluegreen.plugins.module_utils._state import Journal
from ansible_collections.lowspec.bluegreen.plugins.module_utils._wait import Wait


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock(1800000000.0)
    # The journal stamps a wait's last call with the wall clock: the same one here.
    monkeypatch.setattr(_state, "time", types.SimpleNamespace(time=clock))
    return clock


def test_without_a_journal_the_whole_wait_is_this_call(clock):
    wait = Wait("drain:shop-blue", 30, journal=None, wait_slice=10, clock=clock)
    assert wait.until == wait.deadline == clock.now + 30 and wait.remaining() == 30
    clock.now += 29
    assert not wait.expired() and not wait.slice_over() and wait.left() == 1
    clock.now += 1
    assert wait.expired() and wait.slice_over() and wait.remaining() == 0 and wait.left() == 0
    wait.pause()
    wait.done()


def test_a_journal_without_a_path_is_no_journal(clock):
    wait = Wait("drain:shop-blue", 30, journal=Journal(None), wait_slice=10, clock=clock)
    assert wait.until == wait.deadline


def test_a_slice_ends_the_call_and_the_next_call_keeps_the_deadline(tmp_path, clock):
    path = str(tmp_path / "shop.journal.json")
    start = clock.now
    first = Wait("drain:shop-blue", 30, Journal(path), wait_slice=10, clock=clock)
    assert first.until == start + 10 and first.deadline == start + 30
    clock.now += 10
    assert first.slice_over() and not first.expired()
    assert first.progress("draining") == "draining: 10 s of 30 s waited, 20 s left"
    first.pause()
    clock.now += 2  # Ansible's own time between the calls
    second = Wait("drain:shop-blue", 30, Journal(path), wait_slice=10, clock=clock)
    assert second.started == start and second.deadline == start + 30 and second.until == start + 22
    clock.now = start + 25
    third_start = clock.now
    second.pause()
    third = Wait("drain:shop-blue", 30, Journal(path), wait_slice=10, clock=clock)
    assert third.until == third.deadline == start + 30, "a slice never runs past the deadline"
    assert third.remaining() == 5 and third.elapsed() == third_start - start
    third.done()
    assert Wait("drain:shop-blue", 30, Journal(path), wait_slice=10, clock=clock).started == clock.now


def test_a_wait_left_long_ago_starts_afresh(tmp_path, clock):
    path = str(tmp_path / "shop.journal.json")
    Wait("drain:shop-blue", 300, Journal(path), wait_slice=10, clock=clock).pause()
    clock.now += Journal.STALE_WAIT + 1
    assert Wait("drain:shop-blue", 300, Journal(path), wait_slice=10, clock=clock).started == clock.now


def write_lock(tmp_path, acquired_epoch):
    record = {"app": "shop", "holder": "ansible deploying v2", "acquired_epoch": acquired_epoch}
    (tmp_path / "shop.lock").write_text(json.dumps(record))


def test_a_wait_of_the_run_that_holds_the_lock_goes_on(tmp_path, clock):
    path = str(tmp_path / "shop.journal.json")
    start = clock.now
    write_lock(tmp_path, int(start) - 30)
    Wait("web:shop-green", 120, Journal(path), wait_slice=10, clock=clock).pause()
    clock.now += 12
    assert Wait("web:shop-green", 120, Journal(path), wait_slice=10, clock=clock).started == start


def test_a_wait_left_by_a_run_cut_off_before_the_lock_was_taken_over_starts_afresh(tmp_path, clock):
    # The lost run paused its wait; a new run took the lock over a few seconds later: its wait is its own.
    path = str(tmp_path / "shop.journal.json")
    write_lock(tmp_path, int(clock.now) - 30)
    Wait("web:shop-green", 120, Journal(path), wait_slice=10, clock=clock).pause()
    clock.now += 20
    write_lock(tmp_path, int(clock.now))
    clock.now += 5
    again = Wait("web:shop-green", 120, Journal(path), wait_slice=10, clock=clock)
    assert again.started == clock.now and again.deadline == clock.now + 120


def test_a_wait_on_its_own_clock_is_continued(tmp_path):
    clock = Clock(4000000000.0)  # a clock that is not the host's
    path = str(tmp_path / "shop.journal.json")
    Wait("drain:shop-blue", 300, Journal(path), wait_slice=10, clock=clock).pause()
    clock.now += 10
    assert Wait("drain:shop-blue", 300, Journal(path), wait_slice=10, clock=clock).started == 4000000000.0


def test_a_wait_that_ends_otherwise_than_paused_leaves_nothing_in_the_journal(tmp_path, clock):
    path = tmp_path / "shop.journal.json"
    with Wait("drain:shop-blue", 30, Journal(str(path)), wait_slice=10, clock=clock) as wait:
        wait.pause()
    assert "drain:shop-blue" in Journal(str(path)).waits, "paused: the next call goes on"
    clock.now += 5
    with pytest.raises(RuntimeError):
        with Wait("drain:shop-blue", 30, Journal(str(path)), wait_slice=10, clock=clock) as wait:
            assert wait.started == clock.now - 5
            raise RuntimeError("the worker vanished")
    assert not path.exists(), "a failed wait is over: the next one starts afresh"
