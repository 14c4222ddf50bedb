"""docs/providers/openai.md stays true: its settings example configures the provider, every option
the provider reads is documented, and the catalog table matches the catalog."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from legion_llm_openai import OpenAIProvider, catalog

from legion_core.settings.models import Settings

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "providers" / "openai.md"
SOURCES = [Path(catalog.__file__).parent / "provider.py", ROOT / "legion_core" / "providers" / "openai_wire.py"]

pytestmark = pytest.mark.skipif(not DOC.exists(), reason="run from the Legion repository")


def test_settings_example_configures_the_provider() -> None:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(), re.S)
    assert blocks
    for raw in blocks:
        for name, ps in Settings.model_validate(json.loads(raw)).llm.providers.items():
            p = OpenAIProvider(name, ps)
            assert p.tier == "frontier" and p.base_url == "https://api.openai.com/v1"
            assert p.default_model in catalog.CATALOG and p.option("organization") == "org-example"
            assert "OpenAI-Organization" in p.headers()


def test_every_option_is_documented() -> None:
    text = DOC.read_text()
    read = set(re.findall(r'self\.option\("([a-z_]+)"', "".join(p.read_text() for p in SOURCES)))
    assert {"organization", "reasoning_effort", "embed_batch_size"} <= read
    assert not sorted(k for k in read if f"`{k}`" not in text)


def test_catalog_table_matches_the_catalog() -> None:
    lines = DOC.read_text().splitlines()
    for mid, (ctx, _out, caps, pin, pout) in catalog.CATALOG.items():
        row = next((ln for ln in lines if ln.startswith(f"| `{mid}` |")), None)
        assert row is not None, f"{mid} missing from the doc's table"
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == f"{ctx:,}" and float(cells[4]) == pin and float(cells[5]) == pout
        assert cells[3] == ("yes" if "thinking" in caps else "no")
    for mid in catalog.EMBEDDINGS:
        assert any(ln.startswith(f"| `{mid}` |") for ln in lines)
