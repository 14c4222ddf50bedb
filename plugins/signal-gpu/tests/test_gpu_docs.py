"""docs/plugins/signal-gpu.md matches the settings model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from legion_signal_gpu.settings import GpuProviderSettings, GpuSettings

DOC = Path(__file__).resolve().parents[3] / "docs" / "plugins" / "signal-gpu.md"


@pytest.fixture(scope="module")
def doc():
    if not DOC.exists():
        pytest.skip("docs are not shipped with the distribution")
    return DOC.read_text()


def test_doc_example_validates(doc):
    [example] = re.findall(r"```json\n(.*?)```", doc, flags=re.S)
    s = GpuSettings.model_validate(json.loads(example)["gpu"])
    assert s.providers["ollama"].gpu_indices == [0]


def test_doc_table_lists_every_setting(doc):
    keys = set(re.findall(r"^\| `([\w.<>]+)` \|", doc, flags=re.M))
    for field in GpuSettings.model_fields:
        if field != "providers":
            assert field in keys, f"gpu.{field} is not documented"
    for field in GpuProviderSettings.model_fields:
        assert f"providers.<name>.{field}" in keys, field
