# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to the collection: this file may change without notice.
#
# The HTTP health check every module of the collection uses (http_health, the
# new web's check in compose_project_color, the check through the proxy in
# proxy_switch): input validation, the retry loop (with an injectable clock,
# so it is unit-testable without a network), the judgement of one HTTP answer
# (status, body regex, JSON fields), the naming of network errors, the
# messages a user reads when a check fails, and HealthChecker, the one part
# that touches the network (through requests, imported under a guard).

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import statistics
import threading
import time
import traceback
from urllib.parse import urlsplit

REQUESTS_IMPORT_ERROR = None
try:
    import requests
    import urllib3
except ImportError:
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_REQUESTS = True

from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import (
    BlueGreenError,
)

# Attempts made when neither `retries` nor `deadline` is set.
DEFAULT_RETRIES = 10
# How much of a body a failure message shows.
BODY_PREVIEW_CHARS = 200
# How much of a body one attempt reads (a health answer is small; a small host
# must not buffer a runaway response).
MAX_BODY_BYTES = 1024 * 1024

# RFC 9110 token characters: what a header name may contain.
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_JSON_CONTENT_RE = re.compile(r"^\s*application/(?:[\w.+-]+\+)?json\s*(?:;|$)", re.IGNORECASE)
_CHARSET_RE = re.compile(r"charset\s*=\s*\"?([\w.:-]+)", re.IGNORECASE)

# Error kinds, one per way an attempt can fail. `kind` is part of each outcome.
KIND_DNS = "dns"
KIND_REFUSED = "refused"
KIND_TIMEOUT = "timeout"
KIND_TLS = "tls"
KIND_CONNECTION = "connection"
KIND_STATUS = "status"
KIND_BODY = "body"
KIND_INVALID_JSON = "invalid_json"
KIND_JSON = "json"


# ---------------------------------------------------------------------------
# Input validation: everything is checked before the first request
# ---------------------------------------------------------------------------

def validate_url(url):
    """Return (scheme, host, port) of an http(s) URL, or fail naming the `url` option."""
    if not isinstance(url, str) or not url:
        raise BlueGreenError("url is required: give an http:// or https:// URL")
    if url != url.strip() or any(ch.isspace() for ch in url):
        raise BlueGreenError("url %r is malformed: it contains whitespace" % url)
    if "://" not in url:
        raise BlueGreenError(
            "url %r is malformed: it has no scheme; write http://HOST[:PORT]/PATH or https://HOST[:PORT]/PATH" % url
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BlueGreenError("url %r is malformed: %s" % (url, exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BlueGreenError("url %r has an unsupported scheme %r: use http or https" % (url, parts.scheme))
    if not parts.hostname:
        raise BlueGreenError("url %r is malformed: it names no host" % url)
    if parts.username is not None or parts.password is not None:
        raise BlueGreenError(
            "url must not carry credentials (user:password@): they would be logged; "
            "pass an Authorization header in headers, whose values are never logged"
        )
    if port is None:
        port = 443 if scheme == "https" else 80
    elif port == 0:
        raise BlueGreenError("url %r is malformed: port 0 is not a port one can connect to" % url)
    return scheme, parts.hostname, port


def validate_headers(headers):
    """Header names must be HTTP tokens, values single-line strings. Messages never show a value."""
    clean = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not _HEADER_NAME_RE.match(name):
            raise BlueGreenError("headers: %r is not a valid HTTP header name" % (name,))
        if value is None or isinstance(value, (dict, list)):
            raise BlueGreenError("headers: the value of %r must be a string" % name)
        value = value if isinstance(value, str) else str(value)
        if "\r" in value or "\n" in value or "\0" in value:
            raise BlueGreenError("headers: the value of %r contains a line break or NUL character" % name)
        clean[name] = value
    return clean


def parse_json_path(path):
    """Split a dotted path (`a.b.0.c`) into its segments, or fail naming `json_match`."""
    if not isinstance(path, str) or not path:
        raise BlueGreenError("json_match: %r is not a dotted path (example: status.color)" % (path,))
    segments = path.split(".")
    if any(segment == "" for segment in segments):
        raise BlueGreenError("json_match: %r is not a valid dotted path (empty segment)" % path)
    return segments


def validate_params(params):
    """Check every option before any request; return the normalized settings.

    Raises BlueGreenError with a message that names the option at fault.
    """
    settings = {}
    settings["scheme"], settings["host"], settings["port"] = validate_url(params.get("url"))
    settings["url"] = params["url"]
    method = params.get("method") or "GET"
    settings["method"] = method

    codes = params.get("status_codes")
    if codes is None:
        codes = [200]
    if not codes:
        raise BlueGreenError("status_codes must list at least one HTTP status code")
    for code in codes:
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
            raise BlueGreenError("status_codes: %r is not an HTTP status code (100-599)" % (code,))
    settings["status_codes"] = list(codes)

    timeout = params.get("timeout")
    if timeout is None or timeout <= 0:
        raise BlueGreenError("timeout must be greater than 0 seconds, got %s" % timeout)
    delay = params.get("delay")
    if delay is None or delay < 0:
        raise BlueGreenError("delay must be 0 or more seconds, got %s" % delay)
    deadline = params.get("deadline")
    if deadline is not None and deadline <= 0:
        raise BlueGreenError("deadline must be greater than 0 seconds, got %s" % deadline)
    retries = params.get("retries")
    if retries is not None and retries < 1:
        raise BlueGreenError("retries must be 1 or more attempts, got %s" % retries)
    if retries is None and deadline is None:
        retries = DEFAULT_RETRIES
    successes = params.get("successes")
    if successes is None or successes < 1:
        raise BlueGreenError("successes must be 1 or more, got %s" % successes)
    if retries is not None and successes > retries:
        raise BlueGreenError(
            "successes=%d is more than retries=%d: %d consecutive successes can never be reached "
            "in %d attempts" % (successes, retries, successes, retries)
        )
    settings.update(timeout=float(timeout), delay=float(delay), retries=retries, successes=successes,
                    deadline=None if deadline is None else float(deadline))

    body_regex = params.get("body_regex")
    settings["body_regex"] = None
    if body_regex is not None:
        try:
            settings["body_regex"] = re.compile(body_regex)
        except re.error as exc:
            raise BlueGreenError("body_regex %r is not a valid regular expression: %s" % (body_regex, exc)) from None

    json_match = params.get("json_match")
    settings["json_match"] = []
    for path, expected in (json_match or {}).items():
        settings["json_match"].append((path, parse_json_path(path), expected))

    if method == "HEAD":
        for option in ("body_regex", "json_match"):
            if params.get(option):
                raise BlueGreenError(
                    "%s cannot be used with method=HEAD: a HEAD answer has no body; use method=GET" % option
                )

    settings["headers"] = validate_headers(params.get("headers"))

    ca_path = params.get("ca_path")
    if ca_path is not None:
        if not os.path.exists(ca_path):
            raise BlueGreenError("ca_path %r does not exist on the managed host" % ca_path)
        if not os.access(ca_path, os.R_OK):
            raise BlueGreenError("ca_path %r is not readable" % ca_path)
    settings["ca_path"] = ca_path
    settings["validate_certs"] = params.get("validate_certs", True)
    settings["follow_redirects"] = params.get("follow_redirects", False)
    return settings


# ---------------------------------------------------------------------------
# JSON field matching
# ---------------------------------------------------------------------------

def json_type(value):
    """The name shown for a value's type in messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return type(value).__name__


def values_match(expected, actual):
    """Typed equality: 200 matches 200 and 200.0, never "200"; true never matches 1."""
    numbers = ("integer", "float")
    kind_e, kind_a = json_type(expected), json_type(actual)
    if kind_e != kind_a and not (kind_e in numbers and kind_a in numbers):
        return False
    return expected == actual


def show_value(value, limit=80):
    """A short JSON rendering of a value for messages."""
    try:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return text


def lookup_path(data, segments):
    """Follow a dotted path into parsed JSON. Return (True, value) or (False, why not)."""
    current = data
    for index, segment in enumerate(segments):
        where = ".".join(segments[:index]) or "the top level"
        if isinstance(current, dict):
            if segment not in current:
                keys = ", ".join(sorted(str(k) for k in current)[:10]) or "none"
                return False, "no key %r at %s (keys: %s)" % (segment, where, keys)
            current = current[segment]
        elif isinstance(current, list):
            if not re.match(r"^-?\d+$", segment):
                return False, "%s is a list, and %r is not an index" % (where, segment)
            position = int(segment)
            if not -len(current) <= position < len(current):
                return False, "%s is a list of %d items, no index %d" % (where, len(current), position)
            current = current[position]
        else:
            return False, "%s is %s %s, not an object or list" % (where, json_type(current), show_value(current))
    return True, current


def json_mismatches(data, json_match):
    """Messages for every (path, segments, expected) of json_match that the data does not satisfy."""
    problems = []
    for path, segments, expected in json_match:
        found, value = lookup_path(data, segments)
        if not found:
            problems.append("%s: %s" % (path, value))
        elif not values_match(expected, value):
            problems.append("%s: expected %s (%s), got %s (%s)" % (
                path, show_value(expected), json_type(expected), show_value(value), json_type(value)))
    return problems


# ---------------------------------------------------------------------------
# One answer: judged against the expectations
# ---------------------------------------------------------------------------

class Outcome:
    """What one attempt came to: ok or a kind of failure with a readable message."""

    def __init__(self, ok, kind=None, error=None, status=None, latency=None, data=None, has_json=False):
        self.ok = ok
        self.kind = kind
        self.error = error
        self.status = status
        self.latency = latency
        self.data = data
        self.has_json = has_json

    def __repr__(self):
        return "Outcome(ok=%r, kind=%r, status=%r, error=%r)" % (self.ok, self.kind, self.status, self.error)


def cut_body(text, limit=BODY_PREVIEW_CHARS):
    """A body made readable for a message: whitespace collapsed, cut to `limit` characters."""
    text = " ".join((text or "").split())
    if not text:
        return "(empty body)"
    if len(text) > limit:
        return "%r... (%d more characters)" % (text[:limit], len(text) - limit)
    return repr(text)


def decode_body(raw, content_type):
    match = _CHARSET_RE.search(content_type or "")
    encoding = match.group(1) if match else "utf-8"
    try:
        return raw.decode(encoding, errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")


def is_json_content_type(content_type):
    return bool(_JSON_CONTENT_RE.match(content_type or ""))


def judge_answer(settings, status, content_type="", body=b"", location=None, latency=None, truncated=False):
    """Judge one HTTP answer: status first, then body_regex, then json_match."""
    text = decode_body(body or b"", content_type)
    data, has_json, json_error = None, False, None
    if settings["json_match"] or is_json_content_type(content_type):
        try:
            data, has_json = json.loads(text), True
        except ValueError as exc:
            json_error = str(exc)
            if truncated:
                json_error += " (the body is larger than %d bytes and was cut)" % MAX_BODY_BYTES

    def failed(kind, message):
        return Outcome(False, kind, message, status=status, latency=latency, data=data, has_json=has_json)

    if status not in settings["status_codes"]:
        expected = " or ".join(str(code) for code in settings["status_codes"])
        if 300 <= status < 400 and location is not None and not settings["follow_redirects"]:
            return failed(KIND_STATUS, "HTTP %d redirect to %r, expected %s: redirects are not followed "
                                       "(follow_redirects=false), a redirect is not health" % (status, location, expected))
        return failed(KIND_STATUS, "HTTP %d, expected %s; body: %s" % (status, expected, cut_body(text)))
    regex = settings["body_regex"]
    if regex is not None and not regex.search(text):
        return failed(KIND_BODY, "HTTP %d, but the body does not match body_regex %r; body: %s"
                      % (status, regex.pattern, cut_body(text)))
    if settings["json_match"]:
        if json_error is not None:
            return failed(KIND_INVALID_JSON, "HTTP %d, but the body is not valid JSON (%s), which json_match needs; "
                                             "body: %s" % (status, json_error, cut_body(text)))
        problems = json_mismatches(data, settings["json_match"])
        if problems:
            return failed(KIND_JSON, "HTTP %d, but json_match failed: %s; body: %s"
                          % (status, "; ".join(problems), cut_body(text)))
    return Outcome(True, status=status, latency=latency, data=data, has_json=has_json)


# ---------------------------------------------------------------------------
# Network errors: named by what happened, not by the library's class names
# ---------------------------------------------------------------------------

def _chain(exc):
    """Every exception reachable from exc: causes, contexts, and exceptions held in args/reason."""
    seen, todo = [], [exc]
    while todo:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        todo.extend([item.__cause__, item.__context__, getattr(item, "reason", None)])
        todo.extend(arg for arg in item.args if isinstance(arg, BaseException))
    return seen


def _names(exc):
    return set(cls.__name__ for cls in type(exc).__mro__)


def classify_error(exc, host, port, timeout):
    """(kind, readable message) for an exception raised while making one request."""
    chain = _chain(exc)
    for item in chain:
        if isinstance(item, socket.gaierror) or "NameResolutionError" in _names(item):
            reason = next((i.strerror or str(i) for i in chain if isinstance(i, socket.gaierror)), None)
            return KIND_DNS, "DNS lookup of %r failed%s" % (host, " (%s)" % reason if reason else "")
    for item in chain:
        if isinstance(item, ssl.SSLError) or "SSLError" in _names(item):
            detail = next((i for i in chain if isinstance(i, ssl.SSLError)), item)
            reason = getattr(detail, "verify_message", None) or getattr(detail, "reason", None) or str(detail)
            if isinstance(detail, ssl.SSLCertVerificationError):
                return KIND_TLS, "TLS error: certificate verify failed: %s" % reason
            return KIND_TLS, "TLS error: %s" % (str(detail) or reason)
    for item in chain:
        if isinstance(item, ConnectionRefusedError):
            return KIND_REFUSED, "connection refused by %s:%s (nothing is listening there)" % (host, port)
    for item in chain:
        names = _names(item)
        if "ConnectTimeout" in names or "ConnectTimeoutError" in names:
            return KIND_TIMEOUT, "timed out connecting to %s:%s after %gs (timeout)" % (host, port, timeout)
    for item in chain:
        names = _names(item)
        if isinstance(item, (socket.timeout, TimeoutError)) or "ReadTimeout" in names or "ReadTimeoutError" in names:
            return KIND_TIMEOUT, "no complete answer within %gs (timeout)" % timeout
    for item in chain:
        if isinstance(item, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
            return KIND_CONNECTION, "connection to %s:%s was reset: %s" % (host, port, item.strerror or item)
    for item in chain:
        if "RemoteDisconnected" in _names(item) or "ProtocolError" in _names(item):
            return KIND_CONNECTION, "connection to %s:%s failed: %s" % (host, port, item)
    return KIND_CONNECTION, "request to %s:%s failed: %s: %s" % (host, port, type(exc).__name__, exc)


def timeout_outcome(timeout, latency=None):
    """The outcome of an attempt that had no complete answer when its time ran out."""
    return Outcome(False, KIND_TIMEOUT, "no complete answer within %gs (timeout)" % timeout, latency=latency)


# ---------------------------------------------------------------------------
# The retry loop, bounded in attempts and in time
# ---------------------------------------------------------------------------

STOP_HEALTHY = "healthy"
STOP_RETRIES = "retries"
STOP_DEADLINE = "deadline"
STOP_UNREACHABLE = "unreachable"


class PollResult:
    def __init__(self):
        self.outcomes = []
        self.consecutive = 0
        self.elapsed = 0.0
        self.stop = None

    @property
    def healthy(self):
        return self.stop == STOP_HEALTHY

    @property
    def last(self):
        return self.outcomes[-1] if self.outcomes else None

    @property
    def last_error(self):
        for outcome in reversed(self.outcomes):
            if not outcome.ok:
                return outcome.error
        return None


def poll(attempt, timeout, delay, successes, retries=None, deadline=None, clock=time.monotonic, sleep=time.sleep,
         watch=None):
    """Call attempt(seconds) -> Outcome until `successes` consecutive ones are ok.

    Stops when `retries` attempts are made, when the successes can no longer be
    reached in the attempts left, or when `deadline` seconds have passed. With a
    deadline, no attempt is given more time than remains, and no delay is slept
    that would end past it: the whole poll never outlasts the deadline by more
    than the caller's enforcement of one attempt's time. `watch()`, called
    before each attempt, may raise to end the poll at once (the container that
    should answer has exited).
    """
    result = PollResult()
    start = clock()
    bound = None if deadline is None else start + deadline
    while True:
        if watch is not None:
            watch()
        budget = timeout
        if bound is not None:
            remaining = bound - clock()
            if remaining <= 0:
                result.stop = STOP_DEADLINE
                break
            budget = min(timeout, remaining)
        outcome = attempt(budget)
        result.outcomes.append(outcome)
        result.consecutive = result.consecutive + 1 if outcome.ok else 0
        if result.consecutive >= successes:
            result.stop = STOP_HEALTHY
            break
        if retries is not None:
            left = retries - len(result.outcomes)
            if left <= 0:
                result.stop = STOP_RETRIES
                break
            if result.consecutive + left < successes:
                result.stop = STOP_UNREACHABLE
                break
        if bound is not None and clock() + delay >= bound:
            result.stop = STOP_DEADLINE
            break
        if delay:
            sleep(delay)
    result.elapsed = clock() - start
    return result


def latency_summary(latencies):
    """min/median/max in milliseconds over the attempts that got an answer."""
    values = [1000.0 * value for value in latencies if value is not None]
    if not values:
        return {"min": None, "median": None, "max": None}
    return {
        "min": round(min(values), 1),
        "median": round(statistics.median(values), 1),
        "max": round(max(values), 1),
    }


def failure_message(settings, result):
    """The message of a failed check: URL, attempts, time, why it stopped and the last status or error."""
    attempts = len(result.outcomes)
    if result.stop == STOP_DEADLINE:
        why = "deadline of %gs reached" % settings["deadline"]
    elif result.stop == STOP_UNREACHABLE:
        why = "stopped early: %d consecutive successes can no longer be reached within retries=%d" % (
            settings["successes"], settings["retries"])
    else:
        why = "retries=%d used up" % settings["retries"]
    head = "%s is not healthy after %d attempt%s in %.1fs (%s)" % (
        settings["url"], attempts, "" if attempts == 1 else "s", result.elapsed, why)
    last = result.last
    if last is None:
        return head + "; no attempt could be made"
    if last.ok:
        return head + "; the last attempt passed (HTTP %s), but only %d of %d required consecutive successes; " \
                      "last error: %s" % (last.status, result.consecutive, settings["successes"], result.last_error)
    return head + "; last attempt: " + last.error


# ---------------------------------------------------------------------------
# The network part
# ---------------------------------------------------------------------------

USER_AGENT = "lowspec.bluegreen"


class HealthChecker:
    """Makes the attempts of one check; the loop, the judgement and the messages are the functions above."""

    def __init__(self, settings):
        if not HAS_REQUESTS:
            raise BlueGreenError("the Python package requests is needed for HTTP checks on the managed host: %s"
                                 % (REQUESTS_IMPORT_ERROR or "").strip().splitlines()[-1:])
        self.settings = settings
        if settings["validate_certs"]:
            self.verify = settings["ca_path"] or True
        else:
            self.verify = False
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self.headers = {"User-Agent": USER_AGENT}
        self.headers.update(settings["headers"])

    def _fetch(self, budget, box):
        """One request in a worker thread; puts the answer or the exception into box."""
        session = requests.Session()
        session.trust_env = False
        try:
            answer = session.request(
                self.settings["method"], self.settings["url"], headers=self.headers,
                timeout=(budget, budget), allow_redirects=self.settings["follow_redirects"],
                verify=self.verify, stream=True,
            )
            try:
                chunks, size, truncated = [], 0, False
                for chunk in answer.iter_content(65536):
                    if box.get("abandoned"):
                        return
                    chunks.append(chunk)
                    size += len(chunk)
                    if size >= MAX_BODY_BYTES:
                        truncated = size > MAX_BODY_BYTES
                        break
                box["answer"] = (answer.status_code, answer.headers.get("Content-Type", ""),
                                 answer.headers.get("Location"), b"".join(chunks)[:MAX_BODY_BYTES], truncated)
            finally:
                answer.close()
        except Exception as exc:  # pylint: disable=broad-except
            box["error"] = exc
        finally:
            session.close()

    def attempt(self, budget):
        """One attempt, never longer than `budget` seconds of wall-clock time."""
        box = {}
        started = time.monotonic()
        worker = threading.Thread(target=self._fetch, args=(budget, box), name="health-attempt")
        worker.daemon = True
        worker.start()
        worker.join(budget)
        latency = time.monotonic() - started
        if worker.is_alive():
            box["abandoned"] = True
            return timeout_outcome(budget)
        if "error" in box:
            kind, message = classify_error(box["error"], self.settings["host"], self.settings["port"], budget)
            if kind == KIND_TLS and "verify failed" in message:
                message += (" (validate_certs=true: set ca_path to the CA that signed the server's certificate,"
                            " or validate_certs=false)")
            return Outcome(False, kind, message)
        status, content_type, location, body, truncated = box["answer"]
        return judge_answer(self.settings, status, content_type, body, location, latency, truncated)

    def check(self, watch=None, deadline=None):
        """(healthy, facts, message): poll until healthy or the bound; `deadline` overrides the settings' one."""
        settings = dict(self.settings)
        if deadline is not None:
            settings["deadline"] = deadline
        result = poll(self.attempt, settings["timeout"], settings["delay"], settings["successes"],
                      retries=settings["retries"], deadline=settings["deadline"], watch=watch)
        last = result.last
        answered = [outcome.latency for outcome in result.outcomes if outcome.status is not None]
        facts = dict(
            url=settings["url"],
            status=last.status if last else None,
            attempts=len(result.outcomes),
            successes=result.consecutive,
            elapsed=round(result.elapsed, 3),
            latency_ms=latency_summary(answered),
            json=last.data if last is not None and last.has_json else None,
            last_error=result.last_error,
        )
        return result.healthy, facts, (None if result.healthy else failure_message(settings, result))


def color_check_options(deadline):
    """The argument spec shared by the checks whose answer names a color and a release (compose_project_color's
    `health`, the switch's `check`); `deadline` is each one's default bound."""
    return dict(
        headers=dict(type="dict", default={}, no_log=True),
        successes=dict(type="int", default=3),
        timeout=dict(type="float", default=2),
        delay=dict(type="float", default=0.25),
        deadline=dict(type="int", default=deadline),
        status_codes=dict(type="list", elements="int", default=[200]),
        color_field=dict(type="str", default="color"),
        release_field=dict(type="str", default="release"),
        validate_certs=dict(type="bool", default=True),
    )


def color_check_settings(url, check, color, release=None):
    """health_settings() of a check (the options of color_check_options()) whose JSON answer must name `color`
    in its color_field and `release` in its release_field; an empty field, or release None, is not checked."""
    match = {}
    if check["color_field"]:
        match[check["color_field"]] = color
    if check["release_field"] and release is not None:
        match[check["release_field"]] = release
    return health_settings(url, json_match=match or None, successes=check["successes"], timeout=check["timeout"],
                           delay=check["delay"], deadline=check["deadline"], headers=check["headers"],
                           validate_certs=check["validate_certs"], status_codes=check["status_codes"])


def health_settings(url, json_match=None, successes=3, timeout=2.0, delay=0.25, deadline=120.0, headers=None,
                    validate_certs=True, status_codes=None, ca_path=None):
    """validate_params() for the checks the deploy modules run (GET, no redirects followed)."""
    return validate_params(dict(
        url=url, method="GET", status_codes=status_codes or [200], body_regex=None, json_match=json_match,
        headers=headers or {}, timeout=timeout, retries=None, delay=delay, deadline=deadline, successes=successes,
        follow_redirects=False, validate_certs=validate_certs, ca_path=ca_path))
