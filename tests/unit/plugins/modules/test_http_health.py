# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""http_health without a network: its docs against its argument_spec and its results,
the wall-clock bound of one attempt, and the missing-library message.
The real requests against real servers are in tests/integration/test_http_health.py."""
from __future__ import annotations

import json
import ssl
import time

import pytest
import yaml

from ansible_collections.lowspec.bluegreen.plugins.module_utils import _http
from ansible_collections.lowspec.bluegreen.plugins.modules import http_health

DOC = yaml.safe_load(http_health.DOCUMENTATION)
RETURN = yaml.safe_load(http_health.RETURN)

BASE = dict(url="http://127.0.0.1:8081/health/", method="GET", status_codes=[200], body_regex=None,
            json_match=None, headers=None, timeout=2.0, retries=None, delay=1.0, deadline=None,
            successes=1, follow_redirects=False, validate_certs=True, ca_path=None)


class Captured(Exception):
    pass


class SpecCatcher:
    """Stands in for AnsibleModule: records how main() builds it, then stops main()."""
    seen = {}

    def __init__(self, **kwargs):
        SpecCatcher.seen = kwargs
        raise Captured()


def argument_spec(monkeypatch):
    monkeypatch.setattr(http_health, "AnsibleModule", SpecCatcher)
    with pytest.raises(Captured):
        http_health.main()
    return SpecCatcher.seen


def test_every_option_is_documented_as_declared(monkeypatch):
    seen = argument_spec(monkeypatch)
    assert seen["supports_check_mode"] is True
    spec, options = seen["argument_spec"], DOC["options"]
    assert set(spec) == set(options)
    for name, declared in spec.items():
        documented = options[name]
        assert documented["type"] == declared["type"], name
        assert documented.get("default") == declared.get("default"), name
        assert documented.get("choices") == declared.get("choices"), name
        assert documented.get("elements") == declared.get("elements"), name
        assert bool(documented.get("required")) == bool(declared.get("required")), name


def test_header_values_are_no_log(monkeypatch):
    spec = argument_spec(monkeypatch)["argument_spec"]
    assert spec["headers"]["no_log"] is True
    assert [name for name, option in spec.items() if option.get("no_log")] == ["headers"]


def test_documented_defaults_of_the_issue():
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


def test_every_return_key_is_documented_and_returned():
    for name, doc in RETURN.items():
        assert {"description", "returned", "type", "sample"} <= set(doc), name
    checker = http_health.HttpHealthChecker(_http.validate_params(dict(BASE, retries=3, delay=0)))
    answers = iter([
        _http.Outcome(False, _http.KIND_REFUSED, "connection refused by 127.0.0.1:8081 (nothing is listening there)"),
        _http.judge_answer(checker.settings, 200, "application/json", b'{"color": "green"}', latency=0.004),
    ])
    checker.attempt = lambda budget: next(answers)
    healthy, facts, message = checker.run()
    assert healthy and message is None
    assert set(facts) - {"changed"} == set(RETURN)
    assert facts["attempts"] == 2 and facts["successes"] == 1 and facts["status"] == 200
    assert facts["json"] == {"color": "green"} and facts["latency_ms"] == {"min": 4.0, "median": 4.0, "max": 4.0}
    assert facts["last_error"].startswith("connection refused") and facts["changed"] is False
    json.dumps(facts)


def test_failed_run_carries_the_message():
    checker = http_health.HttpHealthChecker(_http.validate_params(dict(BASE, retries=2, delay=0)))
    checker.attempt = lambda budget: _http.judge_answer(checker.settings, 503, "text/plain", b"down")
    healthy, facts, message = checker.run()
    assert not healthy and facts["status"] == 503 and facts["json"] is None
    assert message == ("http://127.0.0.1:8081/health/ is not healthy after 2 attempts in 0.0s (retries=2 used up); "
                       "last attempt: HTTP 503, expected 200; body: 'down'")


@pytest.mark.skipif(not http_health.HAS_REQUESTS, reason="the checker needs requests")
def test_attempt_is_bounded_by_wall_clock_time():
    """A fetch that hangs (as a DNS lookup or a dripping body can) is abandoned at the budget."""
    checker = http_health.HttpHealthChecker(_http.validate_params(dict(BASE)))
    checker._fetch = lambda budget, box: time.sleep(5)
    started = time.monotonic()
    outcome = checker.attempt(0.2)
    took = time.monotonic() - started
    assert outcome.kind == _http.KIND_TIMEOUT and outcome.error == "no complete answer within 0.2s (timeout)"
    assert 0.2 <= took < 0.5


@pytest.mark.skipif(not http_health.HAS_REQUESTS, reason="the checker needs requests")
def test_tls_verify_failure_gets_a_hint():
    checker = http_health.HttpHealthChecker(_http.validate_params(dict(BASE, url="https://127.0.0.1:8443/")))

    def fetch(budget, box):
        error = ssl.SSLCertVerificationError(1, "certificate verify failed")
        error.verify_message = "self-signed certificate"
        box["error"] = error

    checker._fetch = fetch
    outcome = checker.attempt(1)
    assert outcome.kind == _http.KIND_TLS
    assert outcome.error == ("TLS error: certificate verify failed: self-signed certificate (validate_certs=true: "
                             "set ca_path to the CA that signed the server's certificate, or validate_certs=false)")


def test_missing_requests_is_a_clear_failure(monkeypatch, capsys):
    from ansible.module_utils.testing import patch_module_args

    monkeypatch.setattr(http_health, "HAS_REQUESTS", False)
    monkeypatch.setattr(http_health, "REQUESTS_IMPORT_ERROR", "Traceback: No module named 'requests'")
    with patch_module_args({"url": "http://127.0.0.1:8081/"}):
        with pytest.raises(SystemExit) as code:
            http_health.main()
    assert code.value.code == 1
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] and "Failed to import the required Python library (requests)" in result["msg"]


def test_bad_input_fails_before_any_attempt(monkeypatch, capsys):
    from ansible.module_utils.testing import patch_module_args

    def no_network(*args, **kwargs):
        raise AssertionError("no attempt may be made")

    monkeypatch.setattr(http_health.HttpHealthChecker, "attempt", no_network)
    with patch_module_args({"url": "http://127.0.0.1:8081/", "timeout": 0}):
        with pytest.raises(SystemExit):
            http_health.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] and result["msg"] == "timeout must be greater than 0 seconds, got 0.0"
    assert result["attempts"] == 0
