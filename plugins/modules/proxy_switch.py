#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: proxy_switch
short_description: Switch a proxy's traffic to one color, validated before the reload, and check the answer through it
version_added: 0.2.0
description:
  - Points the proxy in front of a blue-green app at one color, and checks through the proxy that this color and
    its release answer. The deploy, its rescue and the rollback all switch with this one module.
  - With O(proxy=nginx), the upstream file O(upstream_path) gets O(content) (written atomically, mode V(0644)).
    O(test_command) (C(nginx -t)) validates the configuration; if it fails, the previous file is put back (or the
    new one removed, when there was none) and nginx is not reloaded. Then O(reload_command) reloads nginx; if
    that fails, the previous file is put back too. Either failure names the command and quotes its stderr.
  - With O(proxy=command), O(command) switches the proxy, run with C(BLUEGREEN_APP), C(BLUEGREEN_COLOR),
    C(BLUEGREEN_PORT) and C(BLUEGREEN_RELEASE) in its environment.
  - With O(proxy=none), nothing is switched; only O(check) runs.
  - "Then O(check): consecutive GET answers through the proxy whose JSON names O(color) and O(release). A reload
    that silently did not take effect fails here. When the upstream file already had O(content) and the check
    fails, nginx is validated and reloaded once (an earlier run may have written the file and stopped before
    its reload), and checked again."
  - Every command is an argument list, never a shell.
extends_documentation_fragment:
  - lowspec.bluegreen._common
  - lowspec.bluegreen._attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports whether the upstream file would change (with its diff) and runs nothing (no validation, no reload,
        no check).
  diff_mode:
    support: full
    details:
      - Returns the upstream file's content before and after.
  idempotent:
    support: partial
    details:
      - With O(proxy=nginx), an upstream file that already has O(content) is not rewritten and nginx is not
        reloaded. O(proxy=command) runs its command on every call.
options:
  proxy:
    description: How traffic is switched.
    type: str
    choices: [nginx, command, none]
    default: nginx
  app:
    description: The app's name, passed to O(command) as C(BLUEGREEN_APP).
    type: str
    default: ""
  color:
    description: The color traffic goes to.
    type: str
    choices: [blue, green]
    required: true
  release:
    description: The release that color runs; O(check) expects it in the answer.
    type: str
    default: ""
  web_ports:
    description: "The host port of each color's web, for example V({blue: 8001, green: 8002}); passed to O(command)
      as C(BLUEGREEN_PORT)."
    type: dict
    default: {}
  upstream_path:
    description: With O(proxy=nginx), the file that holds the upstream, included by nginx's configuration.
    type: path
  content:
    description:
      - With O(proxy=nginx), the upstream file's content for O(color), for example
        C(upstream shop { server 127.0.0.1:8002; }). The role renders it from its template.
    type: str
  test_command:
    description: With O(proxy=nginx), the argv that validates nginx's configuration.
    type: list
    elements: str
    default: [nginx, -t]
  reload_command:
    description: With O(proxy=nginx), the argv that reloads nginx.
    type: list
    elements: str
    default: [nginx, -s, reload]
  command:
    description: With O(proxy=command), the argv that switches the proxy.
    type: list
    elements: str
    default: []
  check:
    description:
      - The check through the proxy after the switch. Not run when not set.
    type: dict
    suboptions:
      url:
        description: The public URL, for example V(http://127.0.0.1/health/).
        type: str
        required: true
      headers:
        description: Request headers (not logged), for example C(Host).
        type: dict
        default: {}
      successes:
        description: Consecutive answers from O(color) needed.
        type: int
        default: 3
      timeout:
        description: Seconds one attempt may take.
        type: float
        default: 2
      delay:
        description: Seconds between attempts.
        type: float
        default: 0.25
      deadline:
        description: Seconds the check may take in all.
        type: int
        default: 10
      status_codes:
        description: The HTTP statuses that count.
        type: list
        elements: int
        default: [200]
      color_field:
        description: The JSON field that must name O(color); empty to not check it.
        type: str
        default: color
      release_field:
        description: The JSON field that must name O(release); empty to not check it.
        type: str
        default: release
      validate_certs:
        description: Verify the certificate of an V(https) URL.
        type: bool
        default: true
author:
  - lowspec.bluegreen developers (@lowspec)
seealso:
  - module: lowspec.bluegreen.compose_project_color
  - name: nginx, controlling nginx
    description: What C(nginx -t) and C(nginx -s reload) do.
    link: https://nginx.org/en/docs/control.html
"""

EXAMPLES = r"""
---
- name: Send the shop's traffic to green, and check that green v2.4.0 answers through nginx
  lowspec.bluegreen.proxy_switch:
    color: green
    release: v2.4.0
    upstream_path: /etc/nginx/conf.d/shop-upstream.conf
    content: |
      upstream shop_bluegreen {
          server 127.0.0.1:8002;
      }
    check:
      url: http://127.0.0.1/health/
  register: switch

- name: Switch with a command of your own (a load balancer's API, say)
  lowspec.bluegreen.proxy_switch:
    proxy: command
    app: shop
    color: green
    release: v2.4.0
    web_ports: {blue: 8001, green: 8002}
    command: [/usr/local/bin/point-lb-at, shop]
"""

RETURN = r"""
changed:
  description: Whether the proxy was switched (the upstream file written and nginx reloaded, or the command run).
  returned: always
  type: bool
  sample: true
switched:
  description:
    - Whether traffic now goes to O(color) as far as this call knows - the proxy was switched, or already pointed
      there. V(false) when a failed validation or reload left the previous upstream in place. A rescue points the
      proxy back when this is V(true) and the deploy failed.
  returned: always
  type: bool
  sample: true
color:
  description: The color traffic goes to.
  returned: always
  type: str
  sample: green
check:
  description: The check through the proxy (URL, status, attempts, elapsed seconds, latency, JSON of the last answer).
  returned: when O(check) ran
  type: dict
  sample: {url: "http://127.0.0.1/health/", status: 200, attempts: 3, successes: 3, elapsed: 0.6}
timings:
  description: Seconds spent validating (C(test)), reloading (C(reload)) and checking (C(check)).
  returned: always
  type: dict
  sample: {test: 0.05, reload: 0.03, check: 0.6}
diff:
  description: The upstream file before and after.
  returned: when diff mode is on and the file changes
  type: dict
cmd:
  description: The failed command, as a list.
  returned: when a command failed
  type: list
  elements: str
rc:
  description: The failed command's exit code.
  returned: when a command failed
  type: int
stdout:
  description: The failed command's standard output.
  returned: when a command failed
  type: str
stderr:
  description: The failed command's standard error.
  returned: when a command failed
  type: str
"""

import os
import tempfile
import time

from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import (
    BlueGreenError,
    CommandError,
    first_error_line,
    seconds,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._compose import (
    describe_command,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._http import (
    HealthChecker,
    health_settings,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._module import (
    Manager,
    run_module,
)

FILE_MODE = 0o644


class ProxySwitchManager(Manager):
    """Write, validate, reload (or run the command), then check through the proxy."""

    def __init__(self, module):
        super().__init__(module)
        params = self.params
        self.color = params["color"]
        self.result.update(color=self.color, switched=False, timings={})
        if params["proxy"] == "nginx":
            if not params["upstream_path"]:
                raise BlueGreenError("upstream_path is required with proxy=nginx")
            if not (params["content"] or "").strip():
                raise BlueGreenError("content is required with proxy=nginx: the upstream for %s" % self.color)
            for option in ("test_command", "reload_command"):
                if not params[option] or not all(params[option]):
                    raise BlueGreenError("%s must be a non-empty argv list" % option)
        if params["proxy"] == "command" and (not params["command"] or not all(params["command"])):
            raise BlueGreenError("command must be a non-empty argv list with proxy=command")
        self.settings = self._check_settings()

    def _check_settings(self):
        check = self.params["check"]
        if not check:
            return None
        match = {}
        if check["color_field"]:
            match[check["color_field"]] = self.color
        if check["release_field"] and self.params["release"]:
            match[check["release_field"]] = self.params["release"]
        return health_settings(check["url"], json_match=match or None, successes=check["successes"],
                               timeout=check["timeout"], delay=check["delay"], deadline=check["deadline"],
                               headers=check["headers"], validate_certs=check["validate_certs"],
                               status_codes=check["status_codes"])

    # -- running commands ------------------------------------------------------------

    def command(self, argv, environ=None):
        rc, out, err = self.module.run_command(list(argv), environ_update=environ or {})
        if rc != 0:
            reason = first_error_line(err) or first_error_line(out) or "exit code %d" % rc
            raise CommandError("%s failed: %s" % (" ".join(argv) if len(argv) < 4 else describe_command(argv),
                                                  reason), cmd=list(argv), rc=rc, stdout=out, stderr=err)
        return out

    def timed(self, name, func, *args):
        started = time.monotonic()
        try:
            return func(*args)
        finally:
            self.result["timings"][name] = seconds(time.monotonic() - started)

    # -- nginx ----------------------------------------------------------------------------

    def read_upstream(self):
        try:
            with open(self.params["upstream_path"], "r", encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def write_upstream(self, content):
        """Write atomically (a reload never reads half a file); None removes it."""
        path = self.params["upstream_path"]
        if content is None:
            os.unlink(path)
            return
        directory = os.path.dirname(path) or "."
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(content)
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def switch_nginx(self):
        content = self.params["content"]
        before = self.read_upstream()
        if self.diff_mode and before != content:
            self.result["diff"] = {"before": before or "", "after": content,
                                   "before_header": self.params["upstream_path"],
                                   "after_header": self.params["upstream_path"]}
        if before == content:
            self.result["switched"] = True
            return False
        self.result["changed"] = True
        if self.check_mode:
            return True
        self.write_upstream(content)
        self.validate_and_reload(before)
        return True

    def validate_and_reload(self, before):
        """nginx -t, then reload; on either failure the previous file is put back and traffic did not move."""
        for step, option in (("test", "test_command"), ("reload", "reload_command")):
            try:
                self.timed(step, self.command, self.params[option])
            except CommandError as exc:
                self.write_upstream(before)
                self.result["switched"] = False
                what = "rejected the upstream for" if step == "test" else "could not be reloaded to send traffic to"
                raise CommandError("nginx %s %s (%s: %s); the previous upstream file is %s and nginx was %s" % (
                    what, self.color, " ".join(self.params[option]), (exc.stderr or exc.stdout).strip() or exc,
                    "restored" if before is not None else "removed (there was none)",
                    "not reloaded" if step == "test" else "left as it was"), **exc.details()) from exc
        self.result["switched"] = True

    # -- the switch -----------------------------------------------------------------------

    def run(self):
        proxy = self.params["proxy"]
        if proxy == "nginx":
            self.switch_nginx()
        elif proxy == "command":
            self.result["changed"] = True
            if not self.check_mode:
                port = (self.params["web_ports"] or {}).get(self.color, "")
                self.timed("command", self.command, self.params["command"], {
                    "BLUEGREEN_APP": self.params["app"], "BLUEGREEN_COLOR": self.color,
                    "BLUEGREEN_PORT": str(port), "BLUEGREEN_RELEASE": self.params["release"]})
                self.result["switched"] = True
        else:
            self.result["switched"] = True
        if self.settings is None or self.check_mode:
            return
        healthy, facts, message = self.timed("check", HealthChecker(self.settings).check)
        if not healthy and proxy == "nginx" and not self.result["changed"]:
            # The file already pointed here: maybe an earlier run stopped before its reload.
            self.result["changed"] = True
            self.validate_and_reload(self.params["content"])
            healthy, facts, message = self.timed("check", HealthChecker(self.settings).check)
        self.result["check"] = facts
        if not healthy:
            raise BlueGreenError("through the proxy, %s does not answer as %s %s: %s" % (
                self.settings["url"], self.color, self.params["release"], message))


ARGUMENT_SPEC = dict(
    proxy=dict(type="str", default="nginx", choices=["nginx", "command", "none"]),
    app=dict(type="str", default=""),
    color=dict(type="str", required=True, choices=["blue", "green"]),
    release=dict(type="str", default=""),
    web_ports=dict(type="dict", default={}),
    upstream_path=dict(type="path"),
    content=dict(type="str"),
    test_command=dict(type="list", elements="str", default=["nginx", "-t"]),
    reload_command=dict(type="list", elements="str", default=["nginx", "-s", "reload"]),
    command=dict(type="list", elements="str", default=[]),
    check=dict(type="dict", options=dict(
        url=dict(type="str", required=True),
        headers=dict(type="dict", default={}, no_log=True),
        successes=dict(type="int", default=3),
        timeout=dict(type="float", default=2),
        delay=dict(type="float", default=0.25),
        deadline=dict(type="int", default=10),
        status_codes=dict(type="list", elements="int", default=[200]),
        color_field=dict(type="str", default="color"),
        release_field=dict(type="str", default="release"),
        validate_certs=dict(type="bool", default=True),
    )),
)


def main():
    run_module(ProxySwitchManager, ARGUMENT_SPEC)


if __name__ == "__main__":
    main()
