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

from ansible_collections.lowspec.bluegreen.plugins.module_utils._module import (
    Manager,
    run_module,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._proxy import (
    SWITCH_OPTIONS,
    ProxySwitch,
)


class ProxySwitchManager(Manager):
    """Write, validate, reload (or run the command), then check through the proxy."""

    def __init__(self, module):
        super().__init__(module)
        params = self.params
        self.result["color"] = params["color"]
        self.switch = ProxySwitch(
            dict((name, params[name]) for name in SWITCH_OPTIONS), params["color"], params["release"], params["app"],
            params["web_ports"], module.run_command, self.result, check_mode=self.check_mode, diff_mode=self.diff_mode)

    def run(self):
        self.switch.run()


ARGUMENT_SPEC = dict(
    app=dict(type="str", default=""),
    color=dict(type="str", required=True, choices=["blue", "green"]),
    release=dict(type="str", default=""),
    web_ports=dict(type="dict", default={}),
    **SWITCH_OPTIONS
)


def main():
    run_module(ProxySwitchManager, ARGUMENT_SPEC)


if __name__ == "__main__":
    main()
