"""docs/writing-extensions.md cannot drift from the tested example: every Python block on the page
is an excerpt of docs/examples/smart_alerts.py, and the other blocks say what the example does."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "writing-extensions.md").read_text()
EXAMPLE = (ROOT / "docs" / "examples" / "smart_alerts.py").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", PAGE, flags=re.S)


def test_every_python_block_is_an_excerpt_of_the_tested_example():
    py = blocks("python")
    assert len(py) >= 6
    for b in py:
        assert b.rstrip("\n") in EXAMPLE, f"not in docs/examples/smart_alerts.py:\n{b}"


def test_entry_point_block_matches_the_example_module():
    [toml] = blocks("toml")
    eps = tomllib.loads(toml)["project"]["entry-points"]["legion"]
    assert eps == {"smart-alerts": "smart_alerts:plugin"}
    assert "\nplugin = SmartAlertsPlugin()\n" in EXAMPLE


def test_gateway_block_names_the_registered_tool():
    [text] = blocks("text")
    assert '"name": "list_alerts"' in text and 'name="list_alerts"' in EXAMPLE


def test_skip_line_is_the_one_the_kernel_logs():
    line = "extension skipped: llm_required and no LLM provider is ready"
    assert line in PAGE
    assert line in (ROOT / "legion_core" / "lifecycle.py").read_text()
