"""docs/providers/anthropic.md: its settings example validates and configures the provider, and
its settings table names every option the provider reads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from legion_llm_anthropic import AnthropicProvider, catalog

from legion_core.settings.models import Settings

DOC = Path(__file__).resolve().parents[3] / "docs" / "providers" / "anthropic.md"
SRC = Path(__file__).resolve().parents[1] / "legion_llm_anthropic"

pytestmark = pytest.mark.skipif(not DOC.exists(), reason="run from the Legion repository")


def test_settings_example_configures_the_provider() -> None:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(), re.S)
    assert blocks, "the doc shows a settings example"
    for raw in blocks:
        settings = Settings.model_validate(json.loads(raw))
        for name, ps in settings.llm.providers.items():
            p = AnthropicProvider(name, ps)
            assert p.tier == "frontier" and p.base_url == "https://api.anthropic.com"
            assert p.default_model in catalog.CATALOG
            assert p.option("thinking_budget_tokens") == 2048


def test_every_option_is_documented() -> None:
    text = DOC.read_text()
    read = set(re.findall(r'option\((?:self, )?"([a-z_]+)"', "".join(p.read_text() for p in SRC.glob("*.py"))))
    assert len(read) >= 5, f"the provider reads its options: {sorted(read)}"
    missing = sorted(k for k in read if f"`{k}`" not in text)
    assert not missing, f"undocumented settings: {missing}"


def test_catalog_table_matches_the_catalog() -> None:
    text = DOC.read_text()
    for mid, e in catalog.CATALOG.items():
        row = next((ln for ln in text.splitlines() if ln.startswith(f"| `{mid}` |")), None)
        assert row is not None, f"{mid} missing from the doc's catalog table"
        assert f"| {e.thinking} |" in row


def test_readme_settings_example_configures_the_provider() -> None:
    readme = SRC.parent / "README.md"
    blocks = re.findall(r"```json\n(.*?)```", readme.read_text(), re.S)
    assert blocks, "the README shows a settings example"
    for raw in blocks:
        settings = Settings.model_validate(json.loads(raw))
        assert settings.llm.providers, "the example configures a provider"
        for pname, ps in settings.llm.providers.items():
            p = AnthropicProvider(pname, ps)
            assert p.kind == ps.type and p.default_model
