# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""http_health without a network: the real module with module_utils._http.HealthChecker's
attempt() replaced by scripted outcomes; its documented defaults, examples and results.
(Options against the argument spec: test_module_docs.py. One attempt's own behaviour:
module_utils/test__http.py. Real requests against real servers: tests/integration.)"""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.lowspec.bluegreen.plugins.module_utils import _http
from ansible_collections.lowspec.bluegreen.plugins.modules import http_health

DOC = yaml.safe_load(http_health.DOCUMENTATION)
RETURN = yaml.safe_load(http_health.RETURN)
URL = "http://127.0.0.1:8081/health/"


@pytest.fixture
def health(run_main, monkeypatch):
    """health(outcomes, **params): one call of the module whose attempts answer `outcomes` in turn."""

    def run(outcomes, **params):
        made = []

        def attempt(self, budget):
            made.append(budget)
            item = outcomes[min(len(made), len(outcomes)) - 1]
            return item(self.settings) if callable(item) else item

        monkeypatch.setattr(_http.HealthChecker, "attempt", attempt)
        result = run_main(http_health.main, dict({"url": URL, "delay": 0}, **params))
        result["_attempts_made"] = made
        return result

    return run


def answer(status, content_type="application/json", body=b'{"color": "green"}'):
    return lambda settings: _http.judge_answer(settings, status, content_type, body, latency=0.004)


REFUSED = _http.Outcome(False, _http.KIND_REFUSED, "connection refused by 127.0.0.1:8081 (nothing is listening there)")


def test_header_values_are_the_only_no_log_option():
    assert [name for name, option in http_health.ARGUMENT_SPEC.items() if option.get("no_log")] == ["headers"]


def test_documented_defaults():
    options = DOC["options"]
    assert options["method"]["default"] == "GET" and options["status_codes"]["default"] == [200]
    assert options["timeout"]["default"] == 2 and options["delay"]["default"] == 1
    assert options["successes"]["default"] == 1 and options["follow_redirects"]["default"] is False
    assert options["validate_certs"]["default"] is True and _http.DEFAULT_RETRIES == 10


def test_attributes_and_examples():
    assert DOC["attributes"]["check_mode"]["support"] == "full"
    assert DOC["attributes"]["diff_mode"]["support"] == "N/A"
    assert DOC["attributes"]["idempotent"]["support"] == "full"
    examples = yaml.safe_load(http_health.EXAMPLES)
    modules = [task for task in examples if "lowspec.bluegreen.http_health" in task]
    assert len(modules) == 3
    assert modules[1]["lowspec.bluegreen.http_health"]["headers"] == {"Host": "shop.example"}
    assert modules[1]["lowspec.bluegreen.http_health"]["json_match"]["color"] == "green"
    assert "ca_path" in modules[2]["lowspec.bluegreen.http_health"]


def test_every_return_key_is_returned(health):
    result = health([REFUSED, answer(200)], retries=3)
    assert not result["failed"] and not result["changed"]
    assert set(result) - {"changed", "failed", "invocation", "warnings", "_attempts_made"} == set(RETURN)
    assert result["attempts"] == 2 and result["successes"] == 1 and result["status"] == 200
    assert result["json"] == {"color": "green"} and result["latency_ms"] == {"min": 4.0, "median": 4.0, "max": 4.0}
    assert result["last_error"].startswith("connection refused") and result["url"] == URL


def test_a_failed_check_carries_the_message_and_the_facts(health):
    result = health([answer(503, "text/plain", b"down")], retries=2)
    assert result["failed"] and result["status"] == 503 and result["json"] is None and result["attempts"] == 2
    assert result["msg"] == ("%s is not healthy after 2 attempts in 0.0s (retries=2 used up); last attempt: "
                             "HTTP 503, expected 200; body: 'down'" % URL)


def test_consecutive_successes_are_required(health):
    result = health([answer(200), REFUSED, answer(200), answer(200)], retries=5, successes=2)
    assert not result["failed"] and result["attempts"] == 4 and result["successes"] == 2


def test_missing_requests_is_a_clear_failure(run_main, monkeypatch):
    monkeypatch.setattr(http_health, "HAS_REQUESTS", False)
    monkeypatch.setattr(http_health, "REQUESTS_IMPORT_ERROR", "Traceback: No module named 'requests'")
    result = run_main(http_health.main, {"url": URL})
    assert result["failed"] and "Failed to import the required Python library (requests)" in result["msg"]


@pytest.mark.parametrize("params, message", [
    ({"timeout": 0}, "timeout must be greater than 0 seconds, got 0.0"),
    ({"url": "127.0.0.1:8081/health/"}, "url '127.0.0.1:8081/health/' is malformed: it has no scheme; write "
                                        "http://HOST[:PORT]/PATH or https://HOST[:PORT]/PATH"),
    ({"successes": 3, "retries": 2}, "successes=3 is more than retries=2: 3 consecutive successes can never be "
                                     "reached in 2 attempts"),
])
def test_bad_input_fails_before_any_attempt(health, params, message):
    result = health([REFUSED], **params)
    assert result["failed"] and result["msg"] == message and result["_attempts_made"] == []


def test_bad_input_still_returns_the_url_and_no_attempts(health):
    """The result keys are returned on failure too (the module's notes), bad input included."""
    result = health([REFUSED], timeout=0)
    assert result["failed"] and result["url"] == URL and result["attempts"] == 0
