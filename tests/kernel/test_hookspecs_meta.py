"""Meta-tests (after datasette): every hook is typed, documented in docs/hooks.md under a heading
with its exact signature, and implemented by at least one test or plugin test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from legion_core import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("legion_"))


def test_there_are_hooks_for_every_family():
    for family_hook in ("legion_register_providers", "legion_request_signals", "legion_provider_signals",
                        "legion_before_chat", "legion_after_chat", "legion_dispatch_tool",
                        "legion_discover_models"):
        assert family_hook in HOOKS


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_typed_and_has_docstring_with_example(name):
    fn = getattr(hookspecs, name)
    sig = inspect.signature(fn)
    assert sig.return_annotation is not inspect.Signature.empty, f"{name} has no return annotation"
    for p in sig.parameters.values():
        assert p.annotation is not inspect.Parameter.empty, f"{name}({p.name}) is untyped"
    doc = inspect.getdoc(fn) or ""
    assert "Example::" in doc, f"{name} docstring has no example"
    for p in sig.parameters:
        assert f":param {p}:" in doc, f"{name} docstring does not describe {p}"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented_with_its_exact_signature(name):
    docs = (ROOT / "docs" / "hooks.md").read_text()
    params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
    assert f"### {name}({params})" in docs, f"docs/hooks.md lacks '### {name}({params})'"


def _test_sources() -> str:
    files = list((ROOT / "tests").rglob("test_*.py"))
    files += list((ROOT / "plugins").glob("*/tests/**/test_*.py"))
    files += list((ROOT / "plugins").glob("*/legion_*/**/*.py"))
    files += list((ROOT / "docs" / "examples").glob("*.py"))  # tested by tests/extensions
    return "\n".join(f.read_text(errors="replace") for f in files)


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_exercised_by_a_test_or_a_tested_plugin(name):
    src = _test_sources()
    assert re.search(rf"def {name}\(", src), f"no test or plugin implements {name}"


def test_only_hookimpl_is_needed_to_write_a_plugin():
    import legion_core

    assert legion_core.hookimpl is hookspecs.hookimpl
    assert "hookspec" not in legion_core.__all__
