# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to the collection: this file may change without notice.
#
# The base every module of the collection stands on: the options they all
# share (so that `module_defaults: group/lowspec.bluegreen.bluegreen` can set
# them once), one way to build the AnsibleModule, and one error ladder for
# main(). A module is a Manager subclass plus its argument spec:
#
#     def main():
#         run_module(MyManager, ARGUMENT_SPEC, required_if=[...])
#
# A manager keeps what it has done so far in self.result; when it fails, the
# failure carries that partial result (a rescue reads what was stopped from it)
# and, for a failed command, its cmd, rc, stdout and stderr.

from __future__ import annotations

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lowspec.bluegreen.plugins.module_utils._common import (
    BlueGreenError,
    CommandError,
)

# Documented once, in doc_fragments/_common.py.
COMMON_OPTIONS = dict(
    docker_host=dict(type="str", default=""),
)


class Manager:
    """One call of a module: read the params in __init__, act in run(), keep the outcome in self.result."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.diff_mode = module._diff
        self.result = {"changed": False}

    def warn(self, message):
        self.module.warn(message)

    def run(self):
        raise NotImplementedError

    def partial(self):
        """What the result holds so far: returned with a failure."""
        return dict(self.result)

    def close(self):
        """Release what the call holds (helper processes, temporary files); called on every path."""


def run_module(manager_class, argument_spec, **rules):
    """Build the module with the shared options merged in, run the manager, exit or fail once.

    The result is the manager's partial() after its close(), on success and on
    failure alike, so that what close() reports (a helper process's CPU) is in it.
    """
    spec = dict(COMMON_OPTIONS)
    spec.update(argument_spec)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True, **rules)
    # Built in two steps, so that a manager whose __init__ refuses its input still gives its partial result.
    manager = manager_class.__new__(manager_class)
    extra = None
    try:
        manager.__init__(module)
        try:
            manager.run()
        finally:
            manager.close()
    except CommandError as exc:
        extra = dict(exc.details(), msg=str(exc))
    except BlueGreenError as exc:
        extra = dict(msg=str(exc))
    except Exception as exc:  # pylint: disable=broad-except
        extra = dict(msg="unexpected error: %s" % exc, exception=traceback.format_exc())
    result = manager.partial() if hasattr(manager, "result") else {"changed": False}
    if extra is not None:
        result.update(extra)
        module.fail_json(**result)
    module.exit_json(**result)
