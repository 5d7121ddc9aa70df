# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""http_health against real HTTP(S) servers started here on 127.0.0.1 (nothing mocked).

Each server is a ThreadingHTTPServer in a thread on port 0; a `behave(n, request)`
function decides the n-th answer. Servers stop in the fixture's teardown.
"""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.runner import run_adhoc, run_module

SECRET = "s3cr3t-tok3n-7f1d9a"


class Answer:
    def __init__(self, status=200, body=b"", headers=None, wait=0.0, drip=None):
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.headers = headers or {}
        self.wait = wait          # seconds before the status line
        self.drip = drip          # seconds between body bytes (a slow body)


def json_answer(data, status=200):
    return Answer(status, json.dumps(data), {"Content-Type": "application/json"})


class Server:
    def __init__(self, behave, tls_context=None):
        self.behave = behave
        self.seen = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # pylint: disable=arguments-differ
                pass

            def serve(self, head=False):
                with server.lock:
                    server.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers)})
                    count = len(server.seen)
                answer = server.behave(count, self)
                if answer.wait:
                    time.sleep(answer.wait)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                if head:
                    return
                try:
                    if answer.drip:
                        for byte in answer.body:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(answer.drip)
                    else:
                        self.wfile.write(answer.body)
                except OSError:
                    pass  # the client gave up

            def do_GET(self):  # pylint: disable=invalid-name
                self.serve()

            def do_HEAD(self):  # pylint: disable=invalid-name
                self.serve(head=True)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.scheme = "http"
        if tls_context is not None:
            self.httpd.socket = tls_context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def count(self):
        return len(self.seen)

    def url(self, path="/health/", host="127.0.0.1"):
        return "%s://%s:%d%s" % (self.scheme, host, self.port, path)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def serve():
    """serve(behave, tls_context=None) -> a running Server; all are stopped after the test."""
    started = []

    def start(behave, tls_context=None):
        server = Server(behave, tls_context)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _self_signed(directory, name, sans=None):
    """A self-signed certificate (its own CA), by default for 127.0.0.1 and localhost; returns (cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(san) for san in sans] if sans else
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / ("%s.pem" % name), directory / ("%s.key" % name)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    return {"server": _self_signed(directory, "server"), "other": _self_signed(directory, "other"),
            "named": _self_signed(directory, "named", sans=["shop.internal"])}


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def health(args, **kwargs):
    """run_module plus the wall-clock time of the whole module run."""
    started = time.monotonic()
    result = run_module("http_health", args, **kwargs)
    result["_wall"] = time.monotonic() - started
    return result


FAST = {"timeout": 1, "delay": 0.05}


# ---------------------------------------------------------------------------
# Healthy paths
# ---------------------------------------------------------------------------

def test_healthy_after_failed_attempts(serve):
    server = serve(lambda n, req: Answer(503, "starting") if n <= 3 else json_answer({"color": "green"}))
    result = health(dict(FAST, url=server.url()))
    assert result["rc"] == 0, result
    assert not result.get("failed") and result["changed"] is False
    assert result["attempts"] == 4 and result["successes"] == 1 and result["status"] == 200
    assert result["json"] == {"color": "green"}
    assert result["last_error"].startswith("HTTP 503, expected 200")
    assert set(result["latency_ms"]) == {"min", "median", "max"}
    assert result["latency_ms"]["min"] <= result["latency_ms"]["median"] <= result["latency_ms"]["max"]
    assert result["url"] == server.url()
    assert all(seen["method"] == "GET" for seen in server.seen)


def test_flapping_server_needs_consecutive_successes(serve):
    pattern = [200, 503, 200, 200, 503, 200, 200, 200, 200]
    server = serve(lambda n, req: Answer(pattern[n - 1] if n <= len(pattern) else 200, "ok"))
    result = health(dict(FAST, url=server.url(), successes=3))
    assert result["rc"] == 0, result
    assert result["attempts"] == 8 and result["successes"] == 3
    # one success is not enough for a flapping server: the same server, fewer attempts, fails
    server2 = serve(lambda n, req: Answer(pattern[n - 1] if n <= len(pattern) else 200, "ok"))
    result = health(dict(FAST, url=server2.url(), successes=3, retries=6))
    assert result["rc"] != 0 and result["failed"]
    # after attempt 5 (a failure), 3 in a row cannot fit in the one attempt left: it stops early
    assert result["attempts"] == 5, result
    assert "can no longer be reached within retries=6" in result["msg"]
    assert result["msg"].startswith(server2.url() + " is not healthy after 5 attempts")


def test_head_method_checks_the_status_only(serve):
    server = serve(lambda n, req: Answer(200, "x"))
    result = health(dict(FAST, url=server.url(), method="HEAD"))
    assert result["rc"] == 0, result
    assert server.seen[0]["method"] == "HEAD"


def test_host_header_through_a_proxy_and_json_match(serve):
    def behave(n, req):
        if req.headers.get("Host") != "shop.example":
            return Answer(404, "unknown virtual host")
        return json_answer({"color": "green", "release": "v42", "workers": [{"state": "ready"}]})

    server = serve(behave)
    result = health(dict(FAST, url=server.url(), headers={"Host": "shop.example"},
                         json_match={"color": "green", "release": "v42", "workers.0.state": "ready"}))
    assert result["rc"] == 0, result
    assert result["json"]["color"] == "green"


# ---------------------------------------------------------------------------
# Failures: each distinct and readable
# ---------------------------------------------------------------------------

def test_503_forever_fails_within_its_deadline(serve, capsys):
    server = serve(lambda n, req: Answer(503, "Service Unavailable: still booting"))
    deadline, timeout = 1.5, 0.5
    result = health(dict(url=server.url(), deadline=deadline, timeout=timeout, delay=0.2))
    assert result["rc"] != 0 and result["failed"]
    assert result["elapsed"] <= deadline + timeout, result
    assert result["elapsed"] >= deadline - 0.2 - 0.1  # it did use its time (no early give-up)
    assert result["attempts"] >= 3  # no retries set: attempts go on until the deadline
    assert result["attempts"] == server.count
    assert result["status"] == 503
    msg = result["msg"]
    assert msg.startswith(server.url()) and "deadline of 1.5s reached" in msg
    assert "attempts" in msg and "HTTP 503, expected 200" in msg and "still booting" in msg
    with capsys.disabled():
        print("\n[timing] 503 forever: deadline=%.1fs timeout=%.1fs -> module elapsed=%.3fs, "
              "process wall=%.3fs, attempts=%d" % (deadline, timeout, result["elapsed"], result["_wall"],
                                                   result["attempts"]))


def test_retries_bound_without_deadline(serve):
    server = serve(lambda n, req: Answer(500, "boom"))
    result = health(dict(url=server.url(), retries=3, timeout=0.5, delay=0.1))
    assert result["rc"] != 0
    assert result["attempts"] == 3 == server.count
    assert result["elapsed"] <= 3 * (0.5 + 0.1)
    assert "after 3 attempts" in result["msg"] and "retries=3 used up" in result["msg"]


def test_redirect_is_not_health_by_default(serve):
    def behave(n, req):
        if req.path == "/health/":
            return Answer(302, "", {"Location": "/login"})
        return Answer(200, "login page")

    server = serve(behave)
    result = health(dict(FAST, url=server.url(), retries=2))
    assert result["rc"] != 0
    assert result["status"] == 302
    assert "HTTP 302 redirect to '/login'" in result["msg"] and "follow_redirects=false" in result["msg"]
    assert all(seen["path"] == "/health/" for seen in server.seen)

    result = health(dict(FAST, url=server.url(), follow_redirects=True))
    assert result["rc"] == 0, result
    assert result["status"] == 200 and server.seen[-1]["path"] == "/login"


def test_connection_refused(serve):
    port = _free_port()
    result = health(dict(url="http://127.0.0.1:%d/health/" % port, retries=2, delay=0.05, timeout=0.5))
    assert result["rc"] != 0 and result["status"] is None
    assert result["last_error"] == "connection refused by 127.0.0.1:%d (nothing is listening there)" % port
    assert "after 2 attempts" in result["msg"]
    assert result["latency_ms"] == {"min": None, "median": None, "max": None}


def test_slow_server_beyond_timeout(serve, capsys):
    server = serve(lambda n, req: Answer(200, "late", wait=1.5))
    result = health(dict(url=server.url(), timeout=0.3, retries=2, delay=0.05))
    assert result["rc"] != 0
    assert result["last_error"] == "no complete answer within 0.3s (timeout)"
    assert result["elapsed"] <= 2 * (0.3 + 0.05) + 0.2, result
    with capsys.disabled():
        print("\n[timing] slow server (wait 1.5s), timeout=0.3 retries=2 delay=0.05: module elapsed=%.3fs, attempts=%d"
              % (result["elapsed"], result["attempts"]))


def test_slow_body_is_bounded_by_wall_clock(serve, capsys):
    """Bytes keep coming, so no socket read times out: the attempt is still cut at `timeout`."""
    server = serve(lambda n, req: Answer(200, "x" * 40, drip=0.1))
    result = health(dict(url=server.url(), timeout=0.5, retries=1))
    assert result["rc"] != 0
    assert "no complete answer within 0.5s" in result["msg"]
    assert result["elapsed"] <= 0.5 + 0.2, result
    with capsys.disabled():
        print("\n[timing] dripping body, timeout=0.5 retries=1: module elapsed=%.3fs, attempts=%d"
              % (result["elapsed"], result["attempts"]))


def test_slow_server_within_deadline(serve, capsys):
    server = serve(lambda n, req: Answer(200, "late", wait=5))
    result = health(dict(url=server.url(), timeout=0.8, deadline=1.2, delay=0.1))
    assert result["rc"] != 0
    assert result["elapsed"] <= 1.2 + 0.1, result
    with capsys.disabled():
        print("\n[timing] slow server (wait 5s), timeout=0.8 deadline=1.2: module elapsed=%.3fs, attempts=%d"
              % (result["elapsed"], result["attempts"]))
    assert "deadline of 1.2s reached" in result["msg"]


def test_body_regex_mismatch_shows_a_cut_body(serve):
    server = serve(lambda n, req: Answer(200, "status: degraded " + "z" * 1000))
    result = health(dict(FAST, url=server.url(), body_regex=r"status: ok", retries=1))
    assert result["rc"] != 0
    assert "body does not match body_regex 'status: ok'" in result["msg"]
    assert "status: degraded" in result["msg"] and "(%d more characters)" % (1017 - 200) in result["msg"]
    assert len(result["msg"]) < 600


def test_json_mismatch_names_expected_and_found(serve):
    server = serve(lambda n, req: json_answer({"color": "blue", "code": "200", "ok": 1}))
    result = health(dict(FAST, url=server.url(), retries=1,
                         json_match={"color": "green", "code": 200, "ok": True, "release": "v2"}))
    assert result["rc"] != 0
    msg = result["msg"]
    assert 'color: expected "green" (string), got "blue" (string)' in msg
    assert 'code: expected 200 (integer), got "200" (string)' in msg
    assert "ok: expected true (boolean), got 1 (integer)" in msg
    assert "release: no key 'release' at the top level" in msg
    assert result["json"] == {"color": "blue", "code": "200", "ok": 1}


def test_invalid_json(serve):
    server = serve(lambda n, req: Answer(200, "<html>not json</html>", {"Content-Type": "application/json"}))
    result = health(dict(FAST, url=server.url(), retries=1, json_match={"color": "green"}))
    assert result["rc"] != 0
    assert "body is not valid JSON (Expecting value" in result["msg"] and "<html>not json</html>" in result["msg"]
    assert result["json"] is None


# ---------------------------------------------------------------------------
# TLS
# ---------------------------------------------------------------------------

def _tls(cert_key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_key[0]), str(cert_key[1]))
    return context


def test_self_signed_tls(serve, certs):
    server = serve(lambda n, req: json_answer({"color": "green"}), tls_context=_tls(certs["server"]))
    url = server.url()
    assert url.startswith("https://")

    result = health(dict(FAST, url=url, retries=1))
    assert result["rc"] != 0
    assert result["last_error"].startswith("TLS error: certificate verify failed: self-signed certificate")
    assert "set ca_path" in result["msg"]

    result = health(dict(FAST, url=url, retries=1, ca_path=str(certs["other"][0])))
    assert result["rc"] != 0 and result["last_error"].startswith("TLS error: certificate verify failed")

    result = health(dict(FAST, url=url, retries=1, validate_certs=False))
    assert result["rc"] == 0, result
    assert "InsecureRequestWarning" not in result["_stderr"]

    result = health(dict(FAST, url=url, retries=1, ca_path=str(certs["server"][0]), json_match={"color": "green"}))
    assert result["rc"] == 0, result


def test_tls_certificate_for_another_name(serve, certs):
    """A trusted certificate that does not name the host asked for is a TLS error too."""
    server = serve(lambda n, req: Answer(200, "ok"), tls_context=_tls(certs["named"]))
    result = health(dict(FAST, url=server.url(), retries=1, ca_path=str(certs["named"][0])))
    assert result["rc"] != 0
    assert result["last_error"].startswith("TLS error: certificate verify failed: IP address mismatch"), result


# ---------------------------------------------------------------------------
# Bad input: refused before any request, naming the option
# ---------------------------------------------------------------------------

BAD_INPUTS = [
    ({"url": "127.0.0.1:{port}/health/"}, "url", "no scheme"),
    ({"url": "ftp://127.0.0.1:{port}/"}, "url", "unsupported scheme 'ftp'"),
    ({"url": "http://127.0.0.1:99999/"}, "url", "malformed"),
    ({"url": "http:///health/"}, "url", "names no host"),
    ({"url": "http://user:pw@127.0.0.1:{port}/"}, "url", "credentials"),
    ({"timeout": 0}, "timeout", "greater than 0"),
    ({"timeout": -1}, "timeout", "greater than 0"),
    ({"delay": -0.5}, "delay", "0 or more"),
    ({"deadline": 0}, "deadline", "greater than 0"),
    ({"deadline": -3}, "deadline", "greater than 0"),
    ({"retries": 0}, "retries", "1 or more"),
    ({"successes": 0}, "successes", "1 or more"),
    ({"successes": 5, "retries": 3}, "successes=5 is more than retries=3", "never be reached"),
    ({"successes": 11}, "successes=11 is more than retries=10", "never be reached"),
    ({"body_regex": "(["}, "body_regex", "not a valid regular expression"),
    ({"json_match": {"a..b": 1}}, "json_match", "not a valid dotted path"),
    ({"method": "HEAD", "body_regex": "ok"}, "body_regex", "method=HEAD"),
    ({"status_codes": [200, 99]}, "status_codes", "99 is not an HTTP status code"),
    ({"ca_path": "/nonexistent/ca.pem"}, "ca_path", "does not exist"),
    ({"headers": {"X-Token": "a\nb"}}, "headers", "line break"),
    ({"headers": {"Bad Name": "x"}}, "headers", "not a valid HTTP header name"),
]


@pytest.mark.parametrize("args,option,words", BAD_INPUTS, ids=[b[1].split("=")[0] + "-" + str(i)
                                                               for i, b in enumerate(BAD_INPUTS)])
def test_bad_input_fails_before_any_request(serve, args, option, words):
    server = serve(lambda n, req: Answer(200, "ok"))
    given = dict(url=server.url(), delay=0)
    given.update({k: (v.format(port=server.port) if isinstance(v, str) else v) for k, v in args.items()})
    result = health(given)
    assert result["rc"] != 0 and result["failed"]
    assert result["msg"].startswith(option) or (option + " ") in result["msg"] or (option + ":") in result["msg"], \
        result["msg"]
    assert words in result["msg"]
    assert result["attempts"] == 0
    assert server.count == 0


# ---------------------------------------------------------------------------
# Through ansible itself: check mode, and secret header values at -vvv
# ---------------------------------------------------------------------------

def test_check_mode_runs_and_secret_header_never_shown(serve):
    def behave(n, req):
        if req.headers.get("X-Token") != SECRET:
            return Answer(401, "no token")
        return json_answer({"color": "green"})

    server = serve(behave)
    args = dict(url=server.url(), headers={"X-Token": SECRET}, json_match={"color": "green"},
                retries=2, delay=0.05, timeout=1)
    result, output = run_adhoc("http_health", args, check_mode=True, verbosity=3)
    assert "localhost | SUCCESS" in output, output
    assert result["changed"] is False
    assert result["attempts"] == 1 and result["json"] == {"color": "green"}
    assert server.count == 1 and server.seen[0]["headers"]["X-Token"] == SECRET  # it really ran, header sent
    assert SECRET not in output


def test_secret_header_never_shown_in_failure_output(serve):
    def behave(n, req):
        # a server that echoes the token back in its error page
        return Answer(503, "upstream rejected token %s" % req.headers.get("X-Token"))

    server = serve(behave)
    args = dict(url=server.url(), headers={"X-Token": SECRET}, retries=2, delay=0.05, timeout=1)
    result, output = run_adhoc("http_health", args, verbosity=3)
    assert "localhost | FAILED!" in output, output
    assert server.count == 2
    assert "HTTP 503, expected 200" in result["msg"]
    # the echoed value is masked by Ansible's no_log handling of `headers`
    assert "upstream rejected token ********" in result["msg"]
    assert result["invocation"]["module_args"]["headers"] == {"X-Token": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}
    assert SECRET not in output
