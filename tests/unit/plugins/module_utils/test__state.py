# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The state file: active color resolution, recording and history (pure), and the atomic write."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.lowspec.bluegreen.plugins.module_utils import _state
from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import BlueGreenError

NOW = "2026-11-29T17:00:00Z"


def web(blue=None, green=None):
    """web status per color: None = not running, else the creation time of its running web."""
    return {color: {"running": created is not None, "created": created or ""}
            for color, created in (("blue", blue), ("green", green))}


# recorded color, running webs -> active, idle, warning fragment (None: no warning)
RESOLUTION = [
    ("blue", web(blue="t1"), "blue", "green", None),
    ("blue", web(blue="t2", green="t1"), "blue", "green", None),
    ("green", web(green="t1"), "green", "blue", None),
    ("blue", web(green="t1"), "green", "blue", "names blue as active, but no blue web"),
    ("green", web(blue="t1"), "blue", "green", "names green as active, but no green web"),
    ("blue", web(), "blue", "green", "no web container of either color"),
    (None, web(green="t1"), "green", "blue", "no active color is recorded, but green's web"),
    (None, web(blue="t1"), "blue", "green", "no active color is recorded, but blue's web"),
    (None, web(blue="t2", green="t1"), "green", "blue", "both colors"),
    (None, web(blue="t1", green="t2"), "blue", "green", "both colors"),
    (None, web(blue="t1", green="t1"), "blue", "green", "both colors"),
    (None, web(), None, "blue", None),
]


@pytest.mark.parametrize("recorded, running, active, idle, warning", RESOLUTION)
def test_resolve_colors_follows_the_documented_table(recorded, running, active, idle, warning):
    got_active, got_idle, warnings = _state.resolve_colors(recorded, running)
    assert (got_active, got_idle) == (active, idle)
    if warning is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warning in warnings[0]


def test_resolve_colors_refuses_an_unknown_recorded_color():
    with pytest.raises(BlueGreenError):
        _state.resolve_colors("purple", web())


def test_first_record_adds_a_history_entry_with_the_extra_facts():
    state = _state.empty_state("shop")
    new, changed = _state.record_active(state, "blue", "v1", {"took_s": 12, "color": "ignored"}, now=NOW)
    assert changed
    assert new["active_color"] == "blue" and new["release"] == "v1" and new["updated_at"] == NOW
    assert new["history"] == [{"release": "v1", "color": "blue", "previous_color": None,
                               "previous_release": None, "at": NOW, "took_s": 12}]
    assert state["active_color"] is None and state["history"] == []  # input untouched


def test_recording_the_same_color_and_release_is_no_change():
    state, _changed = _state.record_active(_state.empty_state("shop"), "blue", "v1", now=NOW)
    for release in ("v1", None):
        again, changed = _state.record_active(state, "blue", release, {"took_s": 1}, now="later")
        assert not changed and again is state


def test_a_new_release_of_the_same_color_is_a_change():
    state, _changed = _state.record_active(_state.empty_state("shop"), "blue", "v1", now=NOW)
    new, changed = _state.record_active(state, "blue", "v2", now="t2")
    assert changed and new["history"][0]["previous_color"] == "blue" and new["history"][0]["previous_release"] == "v1"


def test_history_is_newest_first_and_bounded():
    state = _state.empty_state("shop")
    for n in range(1, 6):
        color = "blue" if n % 2 else "green"
        state, _changed = _state.record_active(state, color, "v%d" % n, history_size=3, now="t%d" % n)
    assert [entry["release"] for entry in state["history"]] == ["v5", "v4", "v3"]
    state, _changed = _state.record_active(state, "green", "v6", history_size=0, now="t6")
    assert state["history"] == [] and state["active_color"] == "green"


def test_no_release_means_the_colors_last_release():
    state, _changed = _state.record_active(_state.empty_state("shop"), "blue", "v1", now="t1")
    state, _changed = _state.record_active(state, "green", "v2", now="t2")
    back, changed = _state.record_active(state, "blue", None, now="t3")
    assert changed and back["release"] == "v1" and back["history"][0]["previous_release"] == "v2"
    assert _state.last_release_of(back, "green") == "v2"
    assert _state.last_release_of(_state.empty_state("shop"), "blue") is None


@pytest.mark.parametrize("color, size", [("purple", 10), ("blue", -1), ("blue", None)])
def test_record_active_refuses_bad_input(color, size):
    with pytest.raises(BlueGreenError):
        _state.record_active(_state.empty_state("shop"), color, "v1", history_size=size)


def test_state_diff_shows_color_and_release():
    before = _state.empty_state("shop")
    after, _changed = _state.record_active(before, "green", "v2", now=NOW)
    assert _state.state_diff(before, after) == {
        "before": {"active_color": None, "release": None},
        "after": {"active_color": "green", "release": "v2"},
    }


def test_utc_now_is_iso_8601_utc():
    value = _state.utc_now()
    assert len(value) == 20 and value.endswith("Z") and value[10] == "T"


def test_write_then_read_round_trip_atomic_and_0644(tmp_path):
    state_dir = str(tmp_path / "state")
    assert _state.read_state(state_dir, "shop") == _state.empty_state("shop")
    new, _changed = _state.record_active(_state.empty_state("shop"), "blue", "v1", now=NOW)
    path = _state.write_state(state_dir, "shop", new)
    assert path == os.path.join(state_dir, "shop.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(state_dir) == ["shop.json"]
    assert _state.read_state(state_dir, "shop") == new


def test_read_state_refuses_broken_files(tmp_path):
    (tmp_path / "shop.json").write_text("{not json")
    with pytest.raises(BlueGreenError, match="not valid JSON"):
        _state.read_state(str(tmp_path), "shop")
    (tmp_path / "shop.json").write_text(json.dumps({"active_color": "purple"}))
    with pytest.raises(BlueGreenError, match="unknown color"):
        _state.read_state(str(tmp_path), "shop")


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    state_dir = str(tmp_path)
    old, _changed = _state.record_active(_state.empty_state("shop"), "blue", "v1", now=NOW)
    _state.write_state(state_dir, "shop", old)
    new, _changed = _state.record_active(old, "green", "v2", now=NOW)

    def boom(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(_state.os, "replace", boom)
    with pytest.raises(OSError):
        _state.write_state(state_dir, "shop", new)
    assert os.listdir(state_dir) == ["shop.json"]
    assert _state.read_state(state_dir, "shop") == old


# -- the journal ----------------------------------------------------------------------------------------

def stopped(cid, service="worker", queues=("celery",)):
    return {"id": cid, "service": service, "action": "stopped", "queues": list(queues)}


def on_disk(path):
    return json.loads(path.read_text())


def test_entries_are_written_at_once_atomically_and_0644(tmp_path):
    path = tmp_path / "shop.journal.json"
    journal = _state.Journal(str(path))
    assert journal.entries == [] and journal.waits == {} and not path.exists()
    journal.add("shop-blue", [stopped("a"), stopped("b", "beat", [])], now=100.0)
    assert on_disk(path) == {"entries": [dict(stopped("a"), project="shop-blue", at=100.0),
                                         dict(stopped("b", "beat", []), project="shop-blue", at=100.0)], "waits": {}}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644 and os.listdir(tmp_path) == ["shop.journal.json"]
    assert _state.Journal(str(path)).of("shop-blue") == journal.of("shop-blue")


def test_a_container_written_down_again_keeps_its_latest_entry(tmp_path):
    journal = _state.Journal(str(tmp_path / "j.json"))
    journal.add("shop-blue", [stopped("a", queues=[])], now=100.0)
    journal.add("shop-blue", [stopped("a", queues=["celery"])], now=105.0)
    # ...and the time of its first change: when the deploy first touched it.
    assert journal.of("shop-blue") == [dict(stopped("a"), project="shop-blue", at=100.0)]


def test_forget_takes_out_one_project_and_the_file_goes_once_empty(tmp_path):
    path = tmp_path / "j.json"
    journal = _state.Journal(str(path))
    journal.add("shop-blue", [stopped("a")])
    journal.add("shop-green", [stopped("b")])
    journal.forget("shop-blue")
    assert [e["id"] for e in _state.Journal(str(path)).entries] == ["b"]
    journal.forget("shop-green")
    assert not path.exists()
    journal.forget("shop-green")  # nothing left: no error, no file
    assert not path.exists()


def test_clear_removes_entries_and_waits(tmp_path):
    path = tmp_path / "j.json"
    journal = _state.Journal(str(path))
    journal.add("shop-blue", [stopped("a")])
    journal.wait_goes_on("drain:shop-blue", 100.0, now=110.0)
    journal.clear()
    assert not path.exists() and journal.entries == [] and journal.waits == {}


def test_without_a_path_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    journal = _state.Journal(None)
    journal.add("shop-blue", [stopped("a")])
    journal.wait_goes_on("drain:shop-blue", 100.0, now=110.0)
    assert os.listdir(tmp_path) == [] and journal.waits == {}
    assert journal.wait_started("drain:shop-blue", 200.0) == 200.0


@pytest.mark.parametrize("text, fragment", [
    ("{not json", "is not valid JSON"),
    ("[]", "is not a list of entries with 'project' and 'id'"),
    ('{"entries": [{"id": "a"}]}', "is not a list of entries with 'project' and 'id'"),
    ('{"entries": [{"id": 1, "project": "p"}]}', "is not a list of entries"),
])
def test_a_damaged_journal_is_refused_naming_it(tmp_path, text, fragment):
    path = tmp_path / "j.json"
    path.write_text(text)
    with pytest.raises(BlueGreenError) as err:
        _state.Journal(str(path))
    assert str(err.value).startswith("journal %s " % path) and fragment in str(err.value)
    assert "fix or remove it" in str(err.value)


def test_a_wait_keeps_its_start_across_calls_until_it_is_done(tmp_path):
    path = tmp_path / "j.json"
    journal = _state.Journal(str(path))
    assert journal.wait_started("drain:shop-blue", 1000.0) == 1000.0
    journal.wait_goes_on("drain:shop-blue", 1000.0, now=1010.0)
    assert on_disk(path) == {"entries": [], "waits": {"drain:shop-blue": [1000.0, 1010.0]}}
    later = _state.Journal(str(path))
    assert later.wait_started("drain:shop-blue", 1011.0) == 1000.0, "the next call goes on with the same start"
    assert later.wait_started("ready:shop-blue", 1011.0) == 1011.0, "each wait by its name"
    later.wait_done("drain:shop-blue")
    assert not path.exists() and _state.Journal(str(path)).wait_started("drain:shop-blue", 1012.0) == 1012.0


def test_a_stale_wait_starts_afresh(tmp_path):
    journal = _state.Journal(str(tmp_path / "j.json"))
    journal.wait_goes_on("drain:shop-blue", 1000.0, now=1010.0)
    fresh = 1010.0 + _state.Journal.STALE_WAIT
    assert journal.wait_started("drain:shop-blue", fresh - 1) == 1000.0
    assert journal.wait_started("drain:shop-blue", fresh) == fresh, "a deploy that stopped long ago"


def test_malformed_waits_are_ignored(tmp_path):
    path = tmp_path / "j.json"
    path.write_text(json.dumps({"entries": [], "waits": {"a": [1, 2], "b": "x", "c": [1], "d": ["1", 2]}}))
    assert _state.Journal(str(path)).waits == {"a": [1.0, 2.0]}
