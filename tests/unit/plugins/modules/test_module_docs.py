# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every module's documentation against what its main() declares.

A module's options are its own DOCUMENTATION merged over its doc fragments
(`extends_documentation_fragment`), as ansible-doc shows them; what main() declares is
the argument spec it hands to AnsibleModule through module_utils._module.run_module
(the shared COMMON_OPTIONS included), caught here before the module runs.
"""

from __future__ import annotations

import importlib

import pytest
import yaml

from ansible_collections.lowspec.bluegreen.plugins.module_utils import _module

MODULES = ("celery_quiesce", "compose_project_color", "deploy_lock", "host_pressure", "http_health", "proxy_switch")


def module(name):
    return importlib.import_module("ansible_collections.lowspec.bluegreen.plugins.modules." + name)


def fragment_options(reference):
    """The options of `lowspec.bluegreen._name[.VARIABLE]`."""
    name, _dot, variable = reference.split(".", 2)[2].partition(".")
    fragment = importlib.import_module("ansible_collections.lowspec.bluegreen.plugins.doc_fragments." + name)
    return (yaml.safe_load(getattr(fragment.ModuleDocFragment, variable or "DOCUMENTATION")) or {}).get("options") or {}


def documented_options(name):
    doc = yaml.safe_load(module(name).DOCUMENTATION)
    options = {}
    for reference in doc.get("extends_documentation_fragment") or []:
        options.update(fragment_options(reference))
    options.update(doc.get("options") or {})
    return options


class Caught(Exception):
    pass


def declared(name, monkeypatch):
    """The keyword arguments main() builds its AnsibleModule with."""
    seen = {}

    def catch(**kwargs):
        seen.update(kwargs)
        raise Caught()

    monkeypatch.setattr(_module, "AnsibleModule", catch)
    with pytest.raises(Caught):
        module(name).main()
    return seen


def differences(spec, docs, where):
    found = []
    for option in sorted(set(spec) ^ set(docs)):
        found.append("%s.%s: %s" % (where, option, "not documented" if option in spec else "not declared"))
    for option in sorted(set(spec) & set(docs)):
        s, d = spec[option], docs[option]
        for key in ("type", "default", "choices", "elements"):
            fallback = "str" if key == "type" else None
            if s.get(key, fallback) != d.get(key, fallback):
                found.append("%s.%s: %s declared %r, documented %r" % (where, option, key, s.get(key), d.get(key)))
        if bool(s.get("required")) != bool(d.get("required")):
            found.append("%s.%s: required differs" % (where, option))
        if s.get("options") or d.get("suboptions"):
            found.extend(differences(s.get("options") or {}, d.get("suboptions") or {}, "%s.%s" % (where, option)))
    return found


@pytest.mark.parametrize("name", MODULES)
def test_documentation_is_yaml_that_ansible_doc_can_read(name):
    doc = yaml.safe_load(module(name).DOCUMENTATION)
    assert doc["module"] == name and doc["short_description"] and doc["description"]


@pytest.mark.parametrize("name", MODULES)
def test_examples_call_the_module_by_its_full_name_and_return_keys_are_described(name):
    examples = yaml.safe_load(module(name).EXAMPLES)
    text = module(name).EXAMPLES
    assert "lowspec.bluegreen.%s:" % name in text and isinstance(examples, list)
    for key, doc in yaml.safe_load(module(name).RETURN).items():
        assert {"description", "returned", "type"} <= set(doc), key


@pytest.mark.parametrize("name", MODULES)
def test_every_option_is_documented_as_declared(name, monkeypatch):
    seen = declared(name, monkeypatch)
    assert differences(seen["argument_spec"], documented_options(name), name) == []


@pytest.mark.parametrize("name", MODULES)
def test_every_module_takes_the_shared_options_and_supports_check_mode(name, monkeypatch):
    seen = declared(name, monkeypatch)
    assert seen["supports_check_mode"] is True
    assert seen["argument_spec"]["docker_host"] == {"type": "str", "default": ""}
    assert set(module(name).ARGUMENT_SPEC) < set(seen["argument_spec"])
