#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: http_health
short_description: Wait until an HTTP(S) endpoint is healthy, strictly and within bounded time
version_added: 0.1.0
description:
  - Sends requests to O(url) until it answers healthy O(successes) times in a row, and fails otherwise.
  - An answer is healthy when its status is in O(status_codes) and, if set, its body matches O(body_regex)
    and its JSON body matches every field of O(json_match). Everything else is a failed attempt
    (connection refused, timeout, DNS failure, TLS error, wrong status, body mismatch, invalid JSON),
    each reported with its own readable message.
  - A blue-green deploy switches traffic only on this module's word, so it is strict by default.
    Only status 200 is healthy, a redirect is not followed (and so is not health),
    and certificates are validated.
  - "Time is bounded: each attempt gets at most O(timeout) seconds of wall-clock time
    (DNS, connect, TLS and reading the body included), and the whole check never outlasts O(deadline),
    or, without a deadline, O(retries) x (O(timeout) + O(delay))."
  - Every attempt uses a new connection. The check connects directly to O(url);
    proxy environment variables (C(HTTP_PROXY), C(HTTPS_PROXY)), C(REQUESTS_CA_BUNDLE) and C(~/.netrc)
    are ignored, so the result depends only on the task's options.
  - At most 1 MiB of each body is read.
extends_documentation_fragment:
  - lowspec.bluegreen._common
  - lowspec.bluegreen._attributes
attributes:
  check_mode:
    support: full
    details:
      - The module only sends requests and modifies nothing, so it runs in check mode exactly as it does
        otherwise (the readiness answer is real in both).
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
  idempotent:
    support: full
options:
  url:
    description:
      - The URL to check, C(http://) or C(https://), for example V(http://127.0.0.1:8081/health/).
      - It must not carry credentials (C(user:password@)); pass an C(Authorization) header in O(headers)
        instead, whose values are never logged.
    type: str
    required: true
  method:
    description:
      - The HTTP method. Health means V(GET); V(HEAD) only checks the status (O(body_regex) and
        O(json_match) cannot be used with it).
    type: str
    choices: [GET, HEAD]
    default: GET
  status_codes:
    description:
      - The statuses that count as healthy. A status not listed here fails the attempt, with the body shown.
    type: list
    elements: int
    default: [200]
  body_regex:
    description:
      - A Python regular expression that must be found (C(re.search)) in the body, decoded with the
        charset of the answer (UTF-8 when it names none).
    type: str
  json_match:
    description:
      - Fields the JSON body must have. Each key is a dotted path into the body (V(color), V(release.tag),
        V(workers.0.state); a number indexes a list), each value the expected value.
      - Values compare with their types, as written in YAML. V(200) matches the JSON number 200 (or 200.0) but
        not the string V("200"); V(true) matches only the JSON V(true), never V(1). A type mismatch is reported
        with both types, for example C(expected 200 (integer), got "200" (string)). Quote a value in YAML to
        expect a string.
      - A body that is not valid JSON fails the attempt with its own message.
    type: dict
  headers:
    description:
      - Request headers, for example a C(Host) header to ask a reverse proxy for one virtual host
        (see the examples), or an C(Authorization) header.
      - The values are secrets. They are never logged nor shown by the module, also not in failure messages
        and not with C(-vvv); Ansible masks them wherever they would appear in the result.
    type: dict
  timeout:
    description:
      - Seconds one attempt may take, from the DNS lookup to the end of the body. Must be greater than 0.
    type: float
    default: 2
  retries:
    description:
      - How many attempts to make at most. Must be 1 or more.
      - Defaults to V(10) when O(deadline) is not set. When O(deadline) is set and O(retries) is not,
        attempts go on until the deadline.
      - When both are set, the check stops at whichever comes first (the deadline wins over retries).
      - The check also stops early when O(successes) can no longer be reached in the attempts left.
    type: int
  delay:
    description:
      - Seconds to wait between two attempts. Must be 0 or more.
    type: float
    default: 1
  deadline:
    description:
      - Overall bound on the whole check, in seconds. Must be greater than 0.
      - No attempt is given more time than is left before the deadline, and no delay is waited
        that would end past it.
    type: float
  successes:
    description:
      - How many healthy answers in a row are required. A failed attempt resets the count.
      - Must be 1 or more, and not more than O(retries).
    type: int
    default: 1
  follow_redirects:
    description:
      - Whether to follow redirects and judge the final answer.
      - By default a redirect is not health; it fails the attempt naming where it pointed.
    type: bool
    default: false
  validate_certs:
    description:
      - Whether to validate the server's TLS certificate (and its host name) for C(https://) URLs.
      - Without O(ca_path), the CA bundle of the C(requests) library on the managed host is used.
    type: bool
    default: true
  ca_path:
    description:
      - A CA certificate file (PEM) or a directory of hashed certificates on the managed host, used to
        validate the server's certificate, for example a private CA.
      - Ignored when O(validate_certs=false).
    type: path
requirements:
  - requests (Python library) on the managed host
notes:
  - The result keys are returned on failure too, so a rescue block can show them.
  - Because Ansible masks the values of O(headers) wherever they appear in the result, a header value that
    also appears in the URL or in the body (for example a C(Host) header equal to the URL's host name) is
    shown as C(********) there.
author:
  - lowspec.bluegreen developers (@lowspec)
seealso:
  - module: ansible.builtin.uri
    description: Interact with web services; one request, no readiness semantics.
  - module: ansible.builtin.wait_for
    description: Wait for a port to open, without looking at the HTTP answer.
"""

EXAMPLES = r"""
---
- name: Wait until the new color answers on its own local port
  lowspec.bluegreen.http_health:
    url: http://127.0.0.1:8081/health/
    successes: 3
    delay: 0.5
    deadline: 60

- name: Check through the reverse proxy that the answer comes from the green color
  lowspec.bluegreen.http_health:
    url: http://127.0.0.1/health/
    headers:
      Host: shop.example
    json_match:
      color: green
      release: "{{ bluegreen_release }}"
    retries: 5
    delay: 1

- name: Check a TLS endpoint whose certificate comes from a private CA
  lowspec.bluegreen.http_health:
    url: https://shop.internal:8443/health/
    ca_path: /etc/ssl/private-ca/ca.pem
    status_codes: [200, 204]
    body_regex: '"status":\s*"ok"'
  register: shop_health

- name: Show how long the answers took
  ansible.builtin.debug:
    msg: "{{ shop_health.attempts }} attempts, median {{ shop_health.latency_ms.median }} ms"
"""

RETURN = r"""
url:
  description: The URL that was checked.
  returned: always
  type: str
  sample: http://127.0.0.1:8081/health/
status:
  description:
    - The HTTP status of the last attempt.
    - V(null) when the last attempt got no answer (connection refused, timeout, DNS or TLS error).
  returned: always
  type: int
  sample: 200
attempts:
  description: How many attempts were made.
  returned: always
  type: int
  sample: 4
successes:
  description: How many healthy answers in a row ended the check (equal to O(successes) when it passed).
  returned: always
  type: int
  sample: 3
elapsed:
  description: Seconds the whole check took.
  returned: always
  type: float
  sample: 3.217
latency_ms:
  description:
    - Milliseconds from sending a request to the end of its body, over the attempts that got an answer.
    - Each value is V(null) when no attempt got an answer.
  returned: always
  type: dict
  contains:
    min:
      description: The fastest answer.
      type: float
      returned: always
      sample: 2.1
    median:
      description: The median answer.
      type: float
      returned: always
      sample: 3.4
    max:
      description: The slowest answer.
      type: float
      returned: always
      sample: 12.9
  sample: {min: 2.1, median: 3.4, max: 12.9}
json:
  description:
    - The parsed body of the last answer when it is JSON (a JSON content type, or O(json_match) is set).
    - V(null) otherwise.
  returned: always
  type: raw
  sample: {color: green, release: v42}
last_error:
  description:
    - The message of the most recent failed attempt, also when a later attempt passed.
    - V(null) when no attempt failed.
  returned: always
  type: str
  sample: "connection refused by 127.0.0.1:8081 (nothing is listening there)"
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import (
    BlueGreenError,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._http import (
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
    HealthChecker,
    validate_params,
)
from ansible_collections.lowspec.bluegreen.plugins.module_utils._module import (
    Manager,
    run_module,
)


class HttpHealthManager(Manager):
    """Checks the params, polls, and fails with the message of _http.failure_message when unhealthy."""

    def __init__(self, module):
        super().__init__(module)
        if not HAS_REQUESTS:
            module.fail_json(msg=missing_required_lib("requests"), exception=REQUESTS_IMPORT_ERROR)
        self.result.update(url=self.params["url"], attempts=0)
        self.settings = validate_params(self.params)

    def run(self):
        healthy, facts, message = HealthChecker(self.settings).check()
        self.result.update(facts)
        if not healthy:
            raise BlueGreenError(message)
        return self.result


ARGUMENT_SPEC = dict(
    url=dict(type="str", required=True),
    method=dict(type="str", choices=["GET", "HEAD"], default="GET"),
    status_codes=dict(type="list", elements="int", default=[200]),
    body_regex=dict(type="str"),
    json_match=dict(type="dict"),
    headers=dict(type="dict", no_log=True),
    timeout=dict(type="float", default=2),
    retries=dict(type="int"),
    delay=dict(type="float", default=1),
    deadline=dict(type="float"),
    successes=dict(type="int", default=1),
    follow_redirects=dict(type="bool", default=False),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
)


def main():
    run_module(HttpHealthManager, ARGUMENT_SPEC)


if __name__ == "__main__":
    main()
