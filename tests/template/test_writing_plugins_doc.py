"""docs/writing-plugins.md: its code runs, its tables name things that exist."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

from legion_core.testing import plugin_helpers
from legion_core.testing.plugin_helpers import manager_with

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "writing-plugins.md").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", PAGE, flags=re.S)


def test_settings_example_runs_through_a_real_plugin_manager():
    [code] = blocks("python")
    ns: dict = {}
    exec(compile(code, "writing-plugins.md", "exec"), ns)
    plugin = ns["AcmePlugin"]()
    pm = manager_with(plugin)
    schemas = {}
    pm.hook.legion_settings_schema(register=schemas.__setitem__)
    assert schemas == {"acme": ns["AcmeSettings"]}
    assert pm.hook.legion_settings_defaults() == [{"acme": {"threshold": 0.5}}]
    legion = SimpleNamespace(settings=SimpleNamespace(section=lambda name: {"threshold": 0.7}))
    pm.hook.legion_startup(legion=legion)
    assert plugin.settings.threshold == 0.7
    with pytest.raises(Exception, match="thresold"):
        ns["AcmeSettings"].model_validate({"thresold": 1})


def test_pyproject_example_is_valid_toml_with_a_legion_entry_point():
    [toml] = blocks("toml")
    data = tomllib.loads(toml)
    assert data["project"]["entry-points"]["legion"] == {"acme": "legion_acme.plugin:plugin"}


def test_every_helper_in_the_table_exists():
    named = set(re.findall(r"^\| `(\w+)\(", PAGE, flags=re.M))
    named |= set(re.findall(r"`(\w+)\(plugin", PAGE))
    assert {"manager_with", "guard_context", "run_guards", "stub_provider"} <= named
    for name in named:
        assert callable(getattr(plugin_helpers, name, None)), f"legion_core.testing.plugin_helpers.{name}"


def test_every_hook_in_the_families_table_is_a_real_hook():
    from legion_core import hookspecs

    named = set(re.findall(r"`(legion_\w+)\(", PAGE))
    assert len(named) >= 15
    for name in named:
        assert hasattr(hookspecs, name), name
