# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""proxy_switch: the real module on temporary files, with run_command replaced (no nginx).

The commands nginx would run (`nginx -t`, `nginx -s reload`, a switch command) are answered by
a script of (rc, stdout, stderr) and recorded with their environment. The check through the
proxy is a fake HealthChecker, except in one test that asks a local http.server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible.module_utils import basic
from ansible_collections.lowspec.bluegreen.plugins.module_utils import _proxy
from ansible_collections.lowspec.bluegreen.plugins.modules import proxy_switch

from tests.support.fakes import FakeHealth

BLUE = "upstream shop_bluegreen {\n    server 127.0.0.1:8001;\n}\n"
GREEN = "upstream shop_bluegreen {\n    server 127.0.0.1:8002;\n}\n"
NGINX_T_FAILED = ("nginx: [emerg] host not found in upstream \"127.0.0.1:80x2\" in /etc/nginx/conf.d/shop.conf:2\n"
                  "nginx: configuration file /etc/nginx/nginx.conf test failed\n")


class Commands:
    """run_command: answers each argv (by its first words) from a script; records (argv, environment)."""

    def __init__(self, answers=None, upstream=None):
        self.answers = dict(answers or {})
        self.calls = []
        self.upstream = upstream
        self.seen = []  # the upstream file as each command saw it

    def __call__(self, argv, environ_update=None, **_kwargs):
        self.calls.append((list(argv), dict(environ_update or {})))
        if self.upstream is not None:
            self.seen.append(self.upstream.read_text() if self.upstream.exists() else None)
        return self.answers.get(" ".join(argv), (0, "", ""))

    def argvs(self):
        return [argv for argv, _env in self.calls]


@pytest.fixture
def upstream(tmp_path):
    return tmp_path / "conf.d" / "shop-upstream.conf"


@pytest.fixture
def switch(run_main, monkeypatch, upstream):
    """switch(commands, check_mode=False, diff=False, **params): one call of the module."""
    upstream.parent.mkdir()

    def run(commands, check_mode=False, diff=False, **params):
        monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kw: commands(argv, **kw))
        args = dict(color="green", release="v2", upstream_path=str(upstream), content=GREEN)
        args.update(params)
        args = dict((k, v) for k, v in args.items() if v is not None)
        return run_main(proxy_switch.main, args, check_mode=check_mode, diff=diff)

    return run


def ok(result):
    assert not result["failed"], result["msg"]
    return result


# -- nginx ------------------------------------------------------------------------------------------

def test_a_new_upstream_is_written_validated_then_reloaded(switch, upstream):
    upstream.write_text(BLUE)
    commands = Commands(upstream=upstream)
    result = ok(switch(commands))
    assert commands.argvs() == [["nginx", "-t"], ["nginx", "-s", "reload"]]
    assert commands.seen == [GREEN, GREEN], "nginx validates and reloads the new file"
    assert upstream.read_text() == GREEN and stat.S_IMODE(os.stat(upstream).st_mode) == 0o644
    assert result["changed"] and result["switched"] and result["color"] == "green"
    assert set(result["timings"]) == {"test", "reload"}
    assert os.listdir(upstream.parent) == ["shop-upstream.conf"], "no temporary file left"


def test_a_configuration_nginx_rejects_puts_the_previous_file_back_and_reloads_nothing(switch, upstream):
    upstream.write_text(BLUE)
    commands = Commands({"nginx -t": (1, "", NGINX_T_FAILED)})
    result = switch(commands)
    assert result["failed"] and commands.argvs() == [["nginx", "-t"]]
    assert upstream.read_text() == BLUE and result["switched"] is False
    assert result["msg"].startswith("nginx rejected the upstream for green (nginx -t: nginx: [emerg] host not found")
    assert result["msg"].endswith("the previous upstream file is restored and nginx was not reloaded")
    assert result["cmd"] == ["nginx", "-t"] and result["rc"] == 1 and result["stderr"] == NGINX_T_FAILED


def test_a_rejected_first_upstream_is_removed(switch, upstream):
    commands = Commands({"nginx -t": (1, "", NGINX_T_FAILED)})
    result = switch(commands)
    assert result["failed"] and not upstream.exists()
    assert "the previous upstream file is removed (there was none) and nginx was not reloaded" in result["msg"]


def test_a_failed_reload_puts_the_previous_file_back(switch, upstream):
    upstream.write_text(BLUE)
    commands = Commands({"nginx -s reload": (1, "", "nginx: [error] invalid PID number \"\" in \"/run/nginx.pid\"\n")})
    result = switch(commands)
    assert result["failed"] and commands.argvs() == [["nginx", "-t"], ["nginx", "-s", "reload"]]
    assert upstream.read_text() == BLUE and result["switched"] is False
    assert result["msg"].startswith("nginx could not be reloaded to send traffic to green (nginx -s reload: nginx: "
                                    "[error] invalid PID number")
    assert result["msg"].endswith("the previous upstream file is restored and nginx was left as it was")


def test_an_upstream_that_already_points_there_is_not_rewritten_nor_reloaded(switch, upstream):
    upstream.write_text(GREEN)
    before = os.stat(upstream).st_mtime_ns
    commands = Commands()
    result = ok(switch(commands, diff=True))
    assert commands.calls == [] and not result["changed"] and result["switched"] and "diff" not in result
    assert os.stat(upstream).st_mtime_ns == before


def test_check_mode_writes_nothing_and_returns_the_diff(switch, upstream, monkeypatch):
    upstream.write_text(BLUE)
    health = FakeHealth([(True, 200, None)])
    monkeypatch.setattr(_proxy, "HealthChecker", health)
    commands = Commands()
    result = ok(switch(commands, check_mode=True, diff=True, check={"url": "http://127.0.0.1/health/"}))
    assert commands.calls == [] and upstream.read_text() == BLUE and health.settings == []
    assert result["changed"] and result["diff"] == {"before": BLUE, "after": GREEN,
                                                    "before_header": str(upstream), "after_header": str(upstream)}


@pytest.mark.parametrize("params, text", [
    ({"upstream_path": None}, "upstream_path is required with proxy=nginx"),
    ({"content": "  \n"}, "content is required with proxy=nginx"),
    ({"test_command": []}, "test_command must be a non-empty argv list"),
    ({"reload_command": ["nginx", ""]}, "reload_command must be a non-empty argv list"),
    ({"proxy": "command"}, "command must be a non-empty argv list with proxy=command"),
    ({"color": "purple"}, "value of color must be one of: blue, green"),
    ({"check": {"url": "127.0.0.1/health/"}}, "has no scheme"),
])
def test_bad_input_fails_before_any_command_or_write(switch, upstream, params, text):
    upstream.write_text(BLUE)
    commands = Commands()
    result = switch(commands, **params)
    assert result["failed"] and text in result["msg"], result["msg"]
    assert commands.calls == [] and upstream.read_text() == BLUE


# -- the check through the proxy ---------------------------------------------------------------------

def test_the_check_expects_the_color_and_the_release(switch, upstream, monkeypatch):
    health = FakeHealth([(True, 200, None)])
    monkeypatch.setattr(_proxy, "HealthChecker", health)
    result = ok(switch(Commands(), check={"url": "http://127.0.0.1/health/", "headers": {"Host": "shop.example"}}))
    (settings,) = health.settings
    assert [(path, value) for path, _segments, value in settings["json_match"]] == [("color", "green"),
                                                                                    ("release", "v2")]
    assert settings["headers"] == {"Host": "shop.example"} and result["check"]["status"] == 200
    assert "check" in result["timings"]


def test_a_switch_that_does_not_answer_as_the_color_fails_saying_so(switch, upstream, monkeypatch):
    upstream.write_text(BLUE)
    monkeypatch.setattr(_proxy, "HealthChecker", FakeHealth([(False, 200, "json_match failed: color")]))
    result = switch(Commands(), check={"url": "http://127.0.0.1/health/"})
    assert result["failed"] and result["msg"].startswith("through the proxy, http://127.0.0.1/health/ does not "
                                                         "answer as green v2:")
    assert result["switched"] is True and upstream.read_text() == GREEN, "switched; the rescue points it back"


def test_a_file_written_by_a_run_that_stopped_before_its_reload_is_reloaded_once(switch, upstream, monkeypatch):
    upstream.write_text(GREEN)
    health = FakeHealth([(False, 200, "json_match failed: color"), (True, 200, None)])
    monkeypatch.setattr(_proxy, "HealthChecker", health)
    commands = Commands()
    result = ok(switch(commands, check={"url": "http://127.0.0.1/health/"}))
    assert commands.argvs() == [["nginx", "-t"], ["nginx", "-s", "reload"]] and len(health.settings) == 2
    assert result["changed"] and result["switched"]


class Proxy(BaseHTTPRequestHandler):
    answer = {"color": "green", "release": "v2"}

    def do_GET(self):  # noqa: N802 - http.server's name
        body = json.dumps(self.answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def proxy():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d/health/" % server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("answer, healthy", [({"color": "green", "release": "v2"}, True),
                                             ({"color": "blue", "release": "v1"}, False)])
def test_the_check_asks_through_a_real_http_answer(switch, proxy, monkeypatch, answer, healthy):
    monkeypatch.setattr(Proxy, "answer", answer)
    result = switch(Commands(), proxy="none",
                    check={"url": proxy, "successes": 2, "delay": 0, "deadline": 2, "timeout": 1})
    assert result["failed"] is not healthy
    if healthy:
        assert result["check"]["status"] == 200 and result["check"]["json"] == answer
        assert result["check"]["successes"] == 2
    else:
        # Polled until the deadline; the last attempt may be cut short by it, so only the first is certain.
        assert result["msg"].startswith("through the proxy, %s does not answer as green v2:" % proxy)
        assert result["check"]["attempts"] >= 1 and result["check"]["successes"] == 0


# -- proxy=command and proxy=none ---------------------------------------------------------------------

def test_a_switch_command_gets_the_color_port_and_release_in_its_environment(switch, upstream):
    commands = Commands()
    result = ok(switch(commands, proxy="command", app="shop", command=["/usr/local/bin/point-lb-at", "shop"],
                       web_ports={"blue": 8001, "green": 8002}))
    ((argv, environ),) = commands.calls
    assert argv == ["/usr/local/bin/point-lb-at", "shop"]
    assert environ == {"BLUEGREEN_APP": "shop", "BLUEGREEN_COLOR": "green", "BLUEGREEN_PORT": "8002",
                       "BLUEGREEN_RELEASE": "v2"}
    assert result["changed"] and result["switched"] and not upstream.exists()


def test_a_failed_switch_command_names_itself_and_quotes_its_error(switch):
    commands = Commands({"/usr/local/bin/point-lb-at shop": (2, "", "error: load balancer refused the change\n")})
    result = switch(commands, proxy="command", command=["/usr/local/bin/point-lb-at", "shop"])
    assert result["failed"] and result["switched"] is False
    assert result["msg"] == "/usr/local/bin/point-lb-at shop failed: error: load balancer refused the change"
    assert result["rc"] == 2


def test_proxy_none_switches_nothing(switch, upstream):
    commands = Commands()
    result = ok(switch(commands, proxy="none"))
    assert commands.calls == [] and not result["changed"] and result["switched"] and not upstream.exists()
