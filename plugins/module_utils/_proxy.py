# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to the collection: this file may change without notice.
#
# The traffic switch: point the proxy at one color (nginx's upstream file
# written atomically, validated before the reload and put back on failure, or
# the operator's command), then check through the proxy that this color and
# its release answer. proxy_switch is this alone; compose_project_color runs
# it right after the new web is healthy, in the same module execution, so that
# traffic moves without another module start on the small host.

from __future__ import annotations

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
    color_check_options,
    color_check_settings,
)

FILE_MODE = 0o644

# The options of a switch, as proxy_switch takes them and as compose_project_color's `switch` suboptions.
CHECK_OPTIONS = dict(url=dict(type="str", required=True), **color_check_options(deadline=10))
SWITCH_OPTIONS = dict(
    proxy=dict(type="str", default="nginx", choices=["nginx", "command", "none"]),
    upstream_path=dict(type="path"),
    content=dict(type="str"),
    test_command=dict(type="list", elements="str", default=["nginx", "-t"]),
    reload_command=dict(type="list", elements="str", default=["nginx", "-s", "reload"]),
    command=dict(type="list", elements="str", default=[]),
    check=dict(type="dict", options=CHECK_OPTIONS),
)


class ProxySwitch:
    """One switch to `color`: validated at construction (before anything changes), done by run().

    `options` holds SWITCH_OPTIONS; `run_command(argv, environ_update=...)` is AnsibleModule's.
    `result` is updated in place (changed, switched, timings, check, diff), also when run() fails.
    """

    def __init__(self, options, color, release, app, web_ports, run_command, result, check_mode=False, diff_mode=False):
        self.options = options
        self.color = color
        self.release = release or ""
        self.app = app or ""
        self.web_ports = web_ports or {}
        self.run_command = run_command
        self.check_mode = check_mode
        self.diff_mode = diff_mode
        self.result = result
        result.setdefault("changed", False)
        result.update(switched=False, timings={})
        if options["proxy"] == "nginx":
            if not options["upstream_path"]:
                raise BlueGreenError("upstream_path is required with proxy=nginx")
            if not (options["content"] or "").strip():
                raise BlueGreenError("content is required with proxy=nginx: the upstream for %s" % color)
            for option in ("test_command", "reload_command"):
                if not options[option] or not all(options[option]):
                    raise BlueGreenError("%s must be a non-empty argv list" % option)
        if options["proxy"] == "command" and (not options["command"] or not all(options["command"])):
            raise BlueGreenError("command must be a non-empty argv list with proxy=command")
        self.settings = self._check_settings()

    def _check_settings(self):
        check = self.options["check"]
        if not check:
            return None
        # No release given: the answer's release is not checked.
        return color_check_settings(check["url"], check, self.color, self.release or None)

    # -- running commands ------------------------------------------------------------

    def command(self, argv, environ=None):
        rc, out, err = self.run_command(list(argv), environ_update=environ or {})
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
            with open(self.options["upstream_path"], "r", encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def write_upstream(self, content):
        """Write atomically (a reload never reads half a file); None removes it."""
        path = self.options["upstream_path"]
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
        content = self.options["content"]
        before = self.read_upstream()
        if self.diff_mode and before != content:
            self.result["diff"] = {"before": before or "", "after": content,
                                   "before_header": self.options["upstream_path"],
                                   "after_header": self.options["upstream_path"]}
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
                self.timed(step, self.command, self.options[option])
            except CommandError as exc:
                self.write_upstream(before)
                self.result["switched"] = False
                what = "rejected the upstream for" if step == "test" else "could not be reloaded to send traffic to"
                raise CommandError("nginx %s %s (%s: %s); the previous upstream file is %s and nginx was %s" % (
                    what, self.color, " ".join(self.options[option]), (exc.stderr or exc.stdout).strip() or exc,
                    "restored" if before is not None else "removed (there was none)",
                    "not reloaded" if step == "test" else "left as it was"), **exc.details()) from exc
        self.result["switched"] = True

    # -- the switch -----------------------------------------------------------------------

    def run(self):
        proxy = self.options["proxy"]
        if proxy == "nginx":
            self.switch_nginx()
        elif proxy == "command":
            self.result["changed"] = True
            if not self.check_mode:
                port = self.web_ports.get(self.color, "")
                self.timed("command", self.command, self.options["command"], {
                    "BLUEGREEN_APP": self.app, "BLUEGREEN_COLOR": self.color,
                    "BLUEGREEN_PORT": str(port), "BLUEGREEN_RELEASE": self.release})
                self.result["switched"] = True
        else:
            self.result["switched"] = True
        if self.settings is None or self.check_mode:
            return
        healthy, facts, message = self.timed("check", HealthChecker(self.settings).check)
        if not healthy and proxy == "nginx" and not self.result["changed"]:
            # The file already pointed here: maybe an earlier run stopped before its reload.
            self.result["changed"] = True
            self.validate_and_reload(self.options["content"])
            healthy, facts, message = self.timed("check", HealthChecker(self.settings).check)
        self.result["check"] = facts
        if not healthy:
            raise BlueGreenError("through the proxy, %s does not answer as %s %s: %s" % (
                self.settings["url"], self.color, self.release, message))
