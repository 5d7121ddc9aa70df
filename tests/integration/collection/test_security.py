# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Security promises: secrets never printed (not even at -vvv, not in failure
messages), state file and lock not world-writable, no argv through a shell, TLS
verification on by default."""

from __future__ import annotations

import os
import re
import ssl
import stat
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

from tests.support.docker_cli import DEMO_DIR, free_port
from tests.support.runner import ROOT, deploy, run_adhoc, run_module
from tests.support.stack import role_vars

SECRETS = {
    "env": "envSecret-7f3a9c",
    "shared": "sharedSecret-41be0d",
    "header": "hdrSecret-c0ffee",
    "image": "imgsecret-9d2e71",
}


def _assert_no_secret(output, where):
    for kind, secret in SECRETS.items():
        assert secret not in output, "the %s secret appears in %s" % (kind, where)
        assert secret.lower() not in output.lower(), "the %s secret appears (case changed) in %s" % (kind, where)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_secrets_never_appear_in_deploy_output_and_state_files_are_private(demo_stack, nginx, tmp_path):
    state_dir = tmp_path / "state"
    variables = role_vars(
        demo_stack, nginx, state_dir, "v1",
        bluegreen_pressure_cpu_max=100, bluegreen_pressure_memory_max=100,
        bluegreen_public_headers={"Authorization": "Bearer %s" % SECRETS["header"]},
        bluegreen_shared_env=dict(demo_stack.shared_env, DEMO_SHARED_TOKEN=SECRETS["shared"]),
    )
    variables["bluegreen_env"] = dict(variables.get("bluegreen_env", {}), DEMO_API_TOKEN=SECRETS["env"])
    old_umask = os.umask(0)  # the files' modes must not depend on the operator's umask
    try:
        good = deploy(variables, args=["-vvv"])
        assert good.returncode == 0, good.stdout[-4000:]
        _assert_no_secret(good.stdout, "the -vvv output of a deploy")

        # A failure whose cause is a secret value (the image name) is reported without it.
        failing = dict(variables, bluegreen_release="v2", bluegreen_pull="never",
                       bluegreen_env=dict(variables["bluegreen_env"], DEMO_IMAGE="lowspec-%s" % SECRETS["image"]))
        bad = deploy(failing, args=["-vvv"])
        assert bad.returncode != 0
        assert "failed at step 'prepare'" in bad.stdout and "not present locally" in bad.stdout, bad.stdout[-3000:]
        _assert_no_secret(bad.stdout, "the -vvv output of a failed deploy")
    finally:
        os.umask(old_umask)

    state_file = state_dir / ("%s.json" % demo_stack.app)
    assert _mode(state_file) & 0o022 == 0, "state file mode %o" % _mode(state_file)
    assert _mode(state_dir) & 0o022 == 0, "state dir mode %o" % _mode(state_dir)
    _assert_no_secret(state_file.read_text(), "the state file")
    assert not (state_dir / ("%s.lock" % demo_stack.app)).exists()


def test_lock_file_is_not_world_writable_whatever_the_umask(tmp_path):
    old_umask = os.umask(0)
    try:
        taken = run_module("deploy_lock", {"app": "tsecure", "state": "present", "state_dir": str(tmp_path / "s"),
                                           "token": "t1"})
    finally:
        os.umask(old_umask)
    assert taken["rc"] == 0, taken
    lock = tmp_path / "s" / "tsecure.lock"
    assert _mode(lock) & 0o022 == 0, "lock mode %o" % _mode(lock)
    assert _mode(tmp_path / "s") & 0o022 == 0
    run_module("deploy_lock", {"app": "tsecure", "state": "absent", "state_dir": str(tmp_path / "s"), "token": "t1"})


def test_module_failures_at_vvv_do_not_print_secrets(tmp_path):
    port = free_port()  # nothing listens there
    result, output = run_adhoc("http_health", {
        "url": "http://127.0.0.1:%d/health/" % port, "retries": 2, "delay": 0.1, "timeout": 0.5,
        "headers": {"Authorization": "Bearer %s" % SECRETS["header"], "X-Api-Key": SECRETS["env"]}}, verbosity=3)
    assert "localhost | FAILED" in output and "not healthy" in result["msg"], output[-2000:]
    _assert_no_secret(output, "http_health's -vvv failure output")

    result, output = run_adhoc("compose_project_color", {
        "app": "tsecret", "color": "blue", "state": "started", "project_src": str(DEMO_DIR), "pull": "never",
        "state_dir": str(tmp_path / "state"),
        "env": {"BLUEGREEN_WEB_PORT": str(port), "DEMO_IMAGE": "lowspec-%s" % SECRETS["image"],
                "DEMO_API_TOKEN": SECRETS["env"]}}, verbosity=3)
    assert "localhost | FAILED" in output and "not present locally" in result["msg"], output[-2000:]
    _assert_no_secret(output, "compose_project_color's -vvv failure output")


# The two processes AnsibleModule.run_command cannot give: the Celery agent (a long-lived pipe both
# ways) and the background `docker stop` (a process that outlives the module). Both pass argv lists.
SUBPROCESS_ALLOWED = {"plugins/module_utils/_celery.py", "plugins/module_utils/_docker.py"}


def test_no_argv_passes_through_a_shell():
    code = {p: p.read_text() for p in (ROOT / "plugins").rglob("*.py")}
    for path, text in code.items():
        patterns = [r"use_unsafe_shell\s*=\s*True", r"shell\s*=\s*True", r"\bos\.system\(", r"\bos\.popen\("]
        if str(path.relative_to(ROOT)) not in SUBPROCESS_ALLOWED:
            patterns += [r"^\s*import subprocess", r"^\s*from subprocess"]
        for pattern in patterns:
            assert not re.search(pattern, text, re.MULTILINE), "%s: %s" % (path.relative_to(ROOT), pattern)
        for call in re.findall(r"subprocess\.Popen\(([^)]*)", text):
            assert "shell" not in call and not call.strip().startswith(('"', "'")), "%s: %s" % (path, call)
    tasks = list((ROOT / "roles").rglob("*.yml")) + list((ROOT / "playbooks").glob("*.yml"))
    commands = 0
    for path in tasks:
        for task in _tasks(yaml.safe_load(path.read_text()) or []):
            for shell in ("ansible.builtin.shell", "shell", "ansible.builtin.raw", "raw", "ansible.builtin.script"):
                assert shell not in task, "%s: task %r uses %s" % (path.relative_to(ROOT), task.get("name"), shell)
            command = task.get("ansible.builtin.command")
            if command is not None:
                commands += 1
                assert isinstance(command, dict) and "argv" in command, (
                    "%s: task %r passes a command string, not argv" % (path.relative_to(ROOT), task.get("name")))
    assert commands > 0


def test_shell_metacharacters_in_input_are_never_interpreted(tmp_path):
    marker = tmp_path / "pwned"
    # As a compose variable: compose interpolates it, nothing runs it.
    result = run_module("compose_project_color", {
        "app": "tshell", "color": "blue", "state": "inspect", "project_src": str(DEMO_DIR),
        "state_dir": str(tmp_path / "state"),
        "env": {"BLUEGREEN_WEB_PORT": "18080", "DEMO_NETWORK": "$(touch %s)`touch %s`; touch %s" % ((marker,) * 3)}})
    assert result["rc"] == 0, result
    # As a container reference: docker gets it as one argument.
    result = run_module("celery_quiesce", {
        "project": "tshell-blue; touch %s" % marker, "celery_app": "tasks"})
    assert result["rc"] != 0
    # As a URL: refused before any request.
    result = run_module("http_health", {"url": "http://127.0.0.1:1/$(touch %s)" % marker, "retries": 1})
    assert result["rc"] != 0
    assert not marker.exists(), "a shell ran part of the input"


def _tasks(items):
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        yield item
        for key in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers"):
            yield from _tasks(item.get(key))


@pytest.fixture
def https_server(tmp_path):
    """A loopback HTTPS server with a self-signed certificate for 127.0.0.1."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server API)
            body = b'{"status": "ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # pylint: disable=arguments-differ
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "https://127.0.0.1:%d/health/" % server.server_address[1], cert
    finally:
        server.shutdown()
        server.server_close()


def test_tls_verification_is_on_by_default(https_server):
    url, cert = https_server
    refused = run_module("http_health", {"url": url, "retries": 1, "timeout": 5})
    assert refused["rc"] != 0
    assert re.search(r"certificate|ssl", refused["msg"], re.IGNORECASE), refused["msg"]
    trusted = run_module("http_health", {"url": url, "retries": 1, "timeout": 5, "ca_path": str(cert)})
    assert trusted["rc"] == 0, trusted
    insecure = run_module("http_health", {"url": url, "retries": 1, "timeout": 5, "validate_certs": False})
    assert insecure["rc"] == 0, insecure
    defaults = yaml.safe_load(Path(ROOT / "roles" / "bluegreen" / "defaults" / "main.yml").read_text())
    assert defaults["bluegreen_health_validate_certs"] is True
    # The role passes it to the check on the new color's own port and to the check through the proxy.
    shared = yaml.safe_load((ROOT / "roles" / "bluegreen" / "vars" / "main.yml").read_text())
    assert shared["__bluegreen_color_defaults"]["health"]["validate_certs"] == "{{ bluegreen_health_validate_certs }}"
    assert shared["__bluegreen_public_check"]["validate_certs"] == "{{ bluegreen_health_validate_certs }}"
