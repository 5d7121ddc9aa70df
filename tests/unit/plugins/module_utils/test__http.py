# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import socket
import ssl

import pytest

try:
    import requests
    import urllib3
except ImportError:
    requests = urllib3 = None

from ansible_collections.lowspec.bluegreen.plugins.module_utils import _http
from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import BlueGreenError

BASE = dict(url="http://127.0.0.1:8081/health/", method="GET", status_codes=[200], body_regex=None,
            json_match=None, headers=None, timeout=2.0, retries=None, delay=1.0, deadline=None,
            successes=1, follow_redirects=False, validate_certs=True, ca_path=None)


def params(**changes):
    given = dict(BASE)
    given.update(changes)
    return given


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------

def test_defaults_are_normalized():
    settings = _http.validate_params(params())
    assert settings["retries"] == _http.DEFAULT_RETRIES == 10
    assert settings["deadline"] is None
    assert (settings["scheme"], settings["host"], settings["port"]) == ("http", "127.0.0.1", 8081)
    assert settings["headers"] == {} and settings["json_match"] == []


def test_deadline_alone_means_attempts_until_the_deadline():
    settings = _http.validate_params(params(deadline=30, successes=25))
    assert settings["retries"] is None and settings["deadline"] == 30.0


@pytest.mark.parametrize("url,port", [("https://shop.internal/health", 443), ("http://[::1]:9000/", 9000),
                                      ("HTTP://localhost/", 80)])
def test_valid_urls(url, port):
    assert _http.validate_url(url)[2] == port


@pytest.mark.parametrize("changes,start,words", [
    (dict(url="localhost:8080/health"), "url", "no scheme"),
    (dict(url="ftp://127.0.0.1/"), "url", "unsupported scheme 'ftp'"),
    (dict(url="http://127.0.0.1:99999/"), "url", "malformed"),
    (dict(url="http://127.0.0.1:0/"), "url", "port 0"),
    (dict(url="http:///x"), "url", "names no host"),
    (dict(url="http://127.0.0.1/ x"), "url", "whitespace"),
    (dict(url=""), "url", "required"),
    (dict(url="http://u:p@127.0.0.1/"), "url", "credentials"),
    (dict(timeout=0), "timeout", "greater than 0"),
    (dict(timeout=-2), "timeout", "greater than 0"),
    (dict(delay=-1), "delay", "0 or more"),
    (dict(deadline=0), "deadline", "greater than 0"),
    (dict(retries=0), "retries", "1 or more"),
    (dict(successes=0), "successes", "1 or more"),
    (dict(successes=4, retries=3), "successes=4 is more than retries=3", "never be reached"),
    (dict(successes=11), "successes=11 is more than retries=10", "never be reached"),
    (dict(status_codes=[]), "status_codes", "at least one"),
    (dict(status_codes=[200, 600]), "status_codes", "600 is not"),
    (dict(body_regex="(["), "body_regex", "not a valid regular expression"),
    (dict(json_match={"a.": 1}), "json_match", "empty segment"),
    (dict(json_match={"": 1}), "json_match", "not a dotted path"),
    (dict(method="HEAD", json_match={"a": 1}), "json_match", "method=HEAD"),
    (dict(headers={"X-A": "1\r\nX-Injected: 1"}), "headers", "line break"),
    (dict(headers={"X A": "1"}), "headers", "not a valid HTTP header name"),
    (dict(headers={"X-A": None}), "headers", "must be a string"),
    (dict(ca_path="/nonexistent/ca.pem"), "ca_path", "does not exist"),
])
def test_bad_input_names_the_option(changes, start, words):
    with pytest.raises(BlueGreenError) as err:
        _http.validate_params(params(**changes))
    assert str(err.value).startswith(start)
    assert words in str(err.value)


def test_header_messages_never_show_the_value():
    with pytest.raises(BlueGreenError) as err:
        _http.validate_headers({"Authorization": "Bearer topsecret\n"})
    assert "topsecret" not in str(err.value) and "'Authorization'" in str(err.value)


def test_header_values_become_strings():
    assert _http.validate_headers({"X-Count": 3, "Host": "shop.example"}) == {"X-Count": "3", "Host": "shop.example"}


def test_ca_path_must_exist(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert _http.validate_params(params(ca_path=str(ca)))["ca_path"] == str(ca)


# ---------------------------------------------------------------------------
# JSON matching
# ---------------------------------------------------------------------------

DOC = {"color": "green", "code": 200, "ratio": 0.5, "ok": True, "none": None,
       "workers": [{"state": "ready"}, {"state": "booting"}], "a.b": 1}


@pytest.mark.parametrize("path,value", [("color", "green"), ("workers.1.state", "booting"),
                                        ("workers.-1.state", "booting"), ("none", None)])
def test_lookup_path(path, value):
    assert _http.lookup_path(DOC, path.split(".")) == (True, value)


@pytest.mark.parametrize("path,why", [
    ("colour", "no key 'colour' at the top level (keys: a.b, code, color"),
    ("workers.2.state", "workers is a list of 2 items, no index 2"),
    ("workers.x", "workers is a list, and 'x' is not an index"),
    ("color.shade", 'color is string "green", not an object or list'),
])
def test_lookup_path_says_why_not(path, why):
    found, message = _http.lookup_path(DOC, path.split("."))
    assert not found and message.startswith(why)


@pytest.mark.parametrize("expected,actual,same", [
    ("green", "green", True), (200, 200, True), (200, 200.0, True), (0.5, 0.5, True),
    (200, "200", False), ("200", 200, False), (True, 1, False), (1, True, False), (False, 0, False),
    (None, None, True), (None, "", False), ([1, 2], [1, 2], True), ({"a": 1}, {"a": 1}, True),
])
def test_values_match_is_typed(expected, actual, same):
    assert _http.values_match(expected, actual) is same


def test_json_mismatches_show_both_types():
    problems = _http.json_mismatches(DOC, [("code", ["code"], "200"), ("color", ["color"], "green"),
                                           ("ok", ["ok"], 1), ("missing", ["missing"], 1)])
    assert problems == [
        'code: expected "200" (string), got 200 (integer)',
        "ok: expected 1 (integer), got true (boolean)",
        "missing: no key 'missing' at the top level (keys: a.b, code, color, none, ok, ratio, workers)",
    ]


# ---------------------------------------------------------------------------
# judging one answer
# ---------------------------------------------------------------------------

def settings(**changes):
    return _http.validate_params(params(**changes))


def test_answer_ok_keeps_json():
    outcome = _http.judge_answer(settings(), 200, "application/json; charset=utf-8", b'{"color": "green"}', latency=0.01)
    assert outcome.ok and outcome.has_json and outcome.data == {"color": "green"} and outcome.latency == 0.01


@pytest.mark.parametrize("content_type", ["application/problem+json", "application/vnd.api+json", "APPLICATION/JSON"])
def test_json_content_types(content_type):
    assert _http.is_json_content_type(content_type)


def test_non_json_body_is_not_parsed_unless_asked():
    outcome = _http.judge_answer(settings(), 200, "text/plain", b'{"a": 1}')
    assert outcome.ok and not outcome.has_json and outcome.data is None


def test_wrong_status_shows_expected_and_body():
    outcome = _http.judge_answer(settings(status_codes=[200, 204]), 503, "text/html", b"<h1>Service\n  Unavailable</h1>")
    assert not outcome.ok and outcome.kind == _http.KIND_STATUS and outcome.status == 503
    assert outcome.error == "HTTP 503, expected 200 or 204; body: '<h1>Service Unavailable</h1>'"


def test_redirect_is_not_health():
    outcome = _http.judge_answer(settings(), 301, "", b"", location="https://shop.example/health/")
    assert outcome.kind == _http.KIND_STATUS
    assert outcome.error.startswith("HTTP 301 redirect to 'https://shop.example/health/', expected 200")
    assert "follow_redirects=false" in outcome.error


def test_redirect_accepted_when_listed():
    assert _http.judge_answer(settings(status_codes=[301]), 301, "", b"", location="/x").ok


def test_body_regex():
    regex = settings(body_regex=r"ready: (yes|true)")
    assert _http.judge_answer(regex, 200, "text/plain", b"db ok\nready: yes").ok
    outcome = _http.judge_answer(regex, 200, "text/plain", b"ready: no")
    assert outcome.kind == _http.KIND_BODY
    assert outcome.error == "HTTP 200, but the body does not match body_regex 'ready: (yes|true)'; body: 'ready: no'"


def test_body_decoded_with_its_charset():
    outcome = _http.judge_answer(settings(body_regex="café"), 200, "text/plain; charset=latin-1", "café".encode("latin-1"))
    assert outcome.ok


def test_invalid_json_is_its_own_error():
    outcome = _http.judge_answer(settings(json_match={"color": "green"}), 200, "text/html", b"<html>")
    assert outcome.kind == _http.KIND_INVALID_JSON
    assert outcome.error.startswith("HTTP 200, but the body is not valid JSON (Expecting value")
    assert outcome.error.endswith("body: '<html>'")


def test_json_mismatch_message():
    outcome = _http.judge_answer(settings(json_match={"color": "green"}), 200, "application/json", b'{"color": "blue"}')
    assert outcome.kind == _http.KIND_JSON and outcome.data == {"color": "blue"}
    assert outcome.error == ("HTTP 200, but json_match failed: color: expected \"green\" (string), got \"blue\" (string); "
                             "body: '{\"color\": \"blue\"}'")


def test_status_checked_before_body():
    outcome = _http.judge_answer(settings(body_regex="ok"), 500, "text/plain", b"not")
    assert outcome.kind == _http.KIND_STATUS


def test_cut_body():
    assert _http.cut_body("") == "(empty body)"
    assert _http.cut_body("a  b\n\tc") == "'a b c'"
    cut = _http.cut_body("x" * 250)
    assert cut == "'%s'... (50 more characters)" % ("x" * 200)


# ---------------------------------------------------------------------------
# network errors
# ---------------------------------------------------------------------------

needs_requests = pytest.mark.skipif(requests is None, reason="builds the exceptions requests raises")


def _wrapped(inner, outer=None):
    """The chain requests builds: requests error <- MaxRetryError(reason=urllib3 error) <- OS error."""
    outer = outer or requests.exceptions.ConnectionError
    try:
        try:
            raise inner
        except Exception as exc:
            raise urllib3.exceptions.MaxRetryError(None, "/health/", reason=exc) from exc
    except urllib3.exceptions.MaxRetryError as exc:
        return outer(exc)


@needs_requests
def test_refused():
    conn_err = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    conn_err.__cause__ = ConnectionRefusedError(111, "Connection refused")
    kind, message = _http.classify_error(_wrapped(conn_err), "127.0.0.1", 8081, 2)
    assert (kind, message) == (_http.KIND_REFUSED, "connection refused by 127.0.0.1:8081 (nothing is listening there)")


@needs_requests
def test_dns():
    gai = socket.gaierror(-2, "Name or service not known")
    err = urllib3.exceptions.NameResolutionError("nope.invalid", None, gai)
    err.__cause__ = gai
    kind, message = _http.classify_error(_wrapped(err), "nope.invalid", 80, 2)
    assert (kind, message) == (_http.KIND_DNS, "DNS lookup of 'nope.invalid' failed (Name or service not known)")


@needs_requests
def test_tls_verify():
    verify = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    verify.verify_message = "self-signed certificate"
    err = urllib3.exceptions.SSLError(verify)
    kind, message = _http.classify_error(_wrapped(err, requests.exceptions.SSLError), "127.0.0.1", 443, 2)
    assert (kind, message) == (_http.KIND_TLS, "TLS error: certificate verify failed: self-signed certificate")


@needs_requests
def test_tls_other():
    err = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    kind, message = _http.classify_error(_wrapped(err, requests.exceptions.SSLError), "127.0.0.1", 80, 2)
    assert kind == _http.KIND_TLS and "wrong version number" in message


@needs_requests
def test_timeouts():
    connect = requests.exceptions.ConnectTimeout("connect timed out")
    assert _http.classify_error(connect, "10.0.0.9", 80, 1.5) == (
        _http.KIND_TIMEOUT, "timed out connecting to 10.0.0.9:80 after 1.5s (timeout)")
    read = requests.exceptions.ReadTimeout("read timed out")
    assert _http.classify_error(read, "h", 80, 2) == (_http.KIND_TIMEOUT, "no complete answer within 2s (timeout)")
    assert _http.classify_error(socket.timeout("timed out"), "h", 80, 2)[0] == _http.KIND_TIMEOUT


@needs_requests
def test_reset_and_other():
    kind, message = _http.classify_error(requests.exceptions.ConnectionError(ConnectionResetError(104, "Connection reset by peer")),
                                         "h", 80, 2)
    assert kind == _http.KIND_CONNECTION and "reset" in message
    kind, message = _http.classify_error(ValueError("odd"), "h", 80, 2)
    assert (kind, message) == (_http.KIND_CONNECTION, "request to h:80 failed: ValueError: odd")


# ---------------------------------------------------------------------------
# the loop, with a fake clock
# ---------------------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.budgets = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds

    def attempts(self, outcomes, cost=0.1):
        """attempt(): returns the next outcome; each costs `cost` (or all of its budget when it is a timeout)."""
        items = list(outcomes)

        def attempt(budget):
            self.budgets.append(budget)
            outcome = items.pop(0) if items else items_last[0]
            self.now += budget if outcome.kind == _http.KIND_TIMEOUT else min(cost, budget)
            return outcome

        items_last = [items[-1]]
        return attempt


OK = _http.Outcome(True, status=200, latency=0.1)
BAD = _http.Outcome(False, _http.KIND_STATUS, "HTTP 503, expected 200", status=503, latency=0.1)
SLOW = _http.Outcome(False, _http.KIND_TIMEOUT, "no complete answer within 2s (timeout)")


def test_poll_healthy_after_failures():
    fake = FakeClock()
    result = _http.poll(fake.attempts([BAD, BAD, OK]), 2, 1, 1, retries=10, clock=fake.clock, sleep=fake.sleep)
    assert result.healthy and len(result.outcomes) == 3 and result.consecutive == 1
    assert result.last_error == "HTTP 503, expected 200"
    assert result.elapsed == pytest.approx(0.3 + 2)


def test_poll_a_failure_resets_consecutive_successes():
    fake = FakeClock()
    result = _http.poll(fake.attempts([OK, OK, BAD, OK, OK, OK]), 2, 0, 3, retries=10,
                        clock=fake.clock, sleep=fake.sleep)
    assert result.healthy and len(result.outcomes) == 6 and result.consecutive == 3


def test_poll_stops_when_successes_are_out_of_reach():
    fake = FakeClock()
    result = _http.poll(fake.attempts([OK, BAD, BAD]), 2, 0, 3, retries=5, clock=fake.clock, sleep=fake.sleep)
    assert result.stop == _http.STOP_UNREACHABLE and len(result.outcomes) == 3


def test_poll_retries_bound():
    fake = FakeClock()
    result = _http.poll(fake.attempts([SLOW]), 2, 1, 1, retries=4, clock=fake.clock, sleep=fake.sleep)
    assert result.stop == _http.STOP_RETRIES and len(result.outcomes) == 4
    # retries x (timeout + delay), minus the delay not slept after the last attempt
    assert result.elapsed == pytest.approx(4 * 2 + 3 * 1)


def test_poll_deadline_wins_over_retries_and_is_never_exceeded():
    fake = FakeClock()
    result = _http.poll(fake.attempts([SLOW]), 2, 1, 1, retries=100, deadline=5, clock=fake.clock, sleep=fake.sleep)
    assert result.stop == _http.STOP_DEADLINE
    assert result.elapsed <= 5
    # attempts at 0-2, 3-5 (budget cut to what is left): no attempt is given more than remains
    assert fake.budgets == [2, 2]


def test_poll_deadline_cuts_the_last_attempt_budget():
    fake = FakeClock()
    result = _http.poll(fake.attempts([SLOW]), 2, 0.5, 1, deadline=3.5, clock=fake.clock, sleep=fake.sleep)
    assert fake.budgets == [2, 1.0]
    assert result.elapsed == pytest.approx(3.5)


def test_poll_deadline_without_retries_keeps_trying():
    fake = FakeClock()
    result = _http.poll(fake.attempts([BAD]), 2, 1, 1, deadline=30, clock=fake.clock, sleep=fake.sleep)
    assert result.stop == _http.STOP_DEADLINE and len(result.outcomes) == 28
    assert result.elapsed <= 30


def test_latency_summary():
    assert _http.latency_summary([]) == {"min": None, "median": None, "max": None}
    assert _http.latency_summary([0.003, None, 0.001, 0.0022]) == {"min": 1.0, "median": 2.2, "max": 3.0}


def test_failure_messages():
    fake = FakeClock()
    base = settings(retries=3)
    result = _http.poll(fake.attempts([BAD]), 2, 1, 1, retries=3, clock=fake.clock, sleep=fake.sleep)
    assert _http.failure_message(base, result) == (
        "http://127.0.0.1:8081/health/ is not healthy after 3 attempts in 2.3s (retries=3 used up); "
        "last attempt: HTTP 503, expected 200")
    fake = FakeClock()
    with_deadline = settings(deadline=2.1, successes=2)
    result = _http.poll(fake.attempts([BAD, OK]), 2, 1, 2, deadline=2.1, clock=fake.clock, sleep=fake.sleep)
    assert _http.failure_message(with_deadline, result) == (
        "http://127.0.0.1:8081/health/ is not healthy after 2 attempts in 1.2s (deadline of 2.1s reached); "
        "the last attempt passed (HTTP 200), but only 1 of 2 required consecutive successes; "
        "last error: HTTP 503, expected 200")


def test_poll_watch_ends_it_at_once():
    fake = FakeClock()
    looked = []

    def watch():
        looked.append(fake.now)
        if len(looked) == 3:
            raise BlueGreenError("demo-green-web-1 exited (exit code 3)")

    with pytest.raises(BlueGreenError, match="exited"):
        _http.poll(fake.attempts([BAD]), 2, 1, 3, deadline=60, clock=fake.clock, sleep=fake.sleep, watch=watch)
    assert len(fake.budgets) == 2, "watched before each attempt: the third is never made"


# ---------------------------------------------------------------------------
# The checks the deploy modules run, and HealthChecker (one attempt is a thread with a wall-clock bound)
# ---------------------------------------------------------------------------

def test_health_settings_are_a_get_that_follows_no_redirect():
    settings = _http.health_settings("http://127.0.0.1:8002/health/", json_match={"color": "green"}, successes=3,
                                     deadline=120, headers={"Host": "shop.example"})
    assert settings["method"] == "GET" and settings["follow_redirects"] is False and settings["retries"] is None
    assert settings["deadline"] == 120.0 and settings["successes"] == 3 and settings["status_codes"] == [200]
    assert settings["json_match"] == [("color", ["color"], "green")] and settings["headers"] == {"Host": "shop.example"}
    with pytest.raises(BlueGreenError, match="has no scheme"):
        _http.health_settings("127.0.0.1:8002/health/")


needs_requests = pytest.mark.skipif(not _http.HAS_REQUESTS, reason="the checker needs requests")


@needs_requests
def test_an_attempt_is_bounded_by_wall_clock_time():
    """A fetch that hangs (as a DNS lookup or a dripping body can) is abandoned at the budget."""
    import time

    checker = _http.HealthChecker(_http.health_settings("http://127.0.0.1:8081/health/"))
    checker._fetch = lambda budget, box: time.sleep(5)
    started = time.monotonic()
    outcome = checker.attempt(0.2)
    took = time.monotonic() - started
    assert outcome.kind == _http.KIND_TIMEOUT and outcome.error == "no complete answer within 0.2s (timeout)"
    assert 0.2 <= took < 0.5


@needs_requests
def test_a_tls_verify_failure_gets_a_hint():
    checker = _http.HealthChecker(_http.health_settings("https://127.0.0.1:8443/"))

    def fetch(budget, box):
        error = ssl.SSLCertVerificationError(1, "certificate verify failed")
        error.verify_message = "self-signed certificate"
        box["error"] = error

    checker._fetch = fetch
    outcome = checker.attempt(1)
    assert outcome.kind == _http.KIND_TLS
    assert outcome.error == ("TLS error: certificate verify failed: self-signed certificate (validate_certs=true: "
                             "set ca_path to the CA that signed the server's certificate, or validate_certs=false)")


@needs_requests
def test_an_answer_is_judged_against_the_settings():
    checker = _http.HealthChecker(_http.health_settings("http://127.0.0.1:8081/", json_match={"color": "green"}))
    checker._fetch = lambda budget, box: box.update(answer=(200, "application/json", None, b'{"color": "blue"}',
                                                            False))
    outcome = checker.attempt(1)
    assert not outcome.ok and outcome.kind == _http.KIND_JSON and 'expected "green"' in outcome.error


@needs_requests
def test_check_reports_the_facts_and_takes_a_shorter_deadline():
    checker = _http.HealthChecker(_http.health_settings("http://127.0.0.1:8081/", successes=2, delay=0,
                                                        deadline=120))
    answers = iter([_http.Outcome(False, _http.KIND_REFUSED, "connection refused by 127.0.0.1:8081"),
                    _http.Outcome(True, status=200, latency=0.002, data={"color": "green"}, has_json=True),
                    _http.Outcome(True, status=200, latency=0.004, data={"color": "green"}, has_json=True)])
    budgets = []
    checker.attempt = lambda budget: budgets.append(budget) or next(answers)
    healthy, facts, message = checker.check(deadline=0.5)
    assert healthy and message is None and budgets[0] <= 0.5, "no attempt outlasts the deadline asked for"
    assert facts["attempts"] == 3 and facts["successes"] == 2 and facts["status"] == 200
    assert facts["json"] == {"color": "green"} and facts["latency_ms"] == {"min": 2.0, "median": 3.0, "max": 4.0}
    assert facts["last_error"] == "connection refused by 127.0.0.1:8081" and facts["url"] == "http://127.0.0.1:8081/"


@needs_requests
def test_a_failed_check_says_why():
    checker = _http.HealthChecker(_http.health_settings("http://127.0.0.1:8081/", deadline=1, delay=0))
    checker.attempt = lambda budget: _http.Outcome(False, _http.KIND_STATUS, "HTTP 502, expected 200", status=502)
    healthy, facts, message = checker.check(deadline=0.05)
    assert not healthy and facts["status"] == 502 and facts["json"] is None
    assert message.startswith("http://127.0.0.1:8081/ is not healthy after ") and "HTTP 502, expected 200" in message
