"""docs/providers/vllm.md stays true: its settings example configures the providers as described
and every option the provider reads is documented."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from legion_llm_vllm import VLLMProvider

from legion_core.settings.models import Settings

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "providers" / "vllm.md"
SOURCES = [Path(__file__).resolve().parents[1] / "legion_llm_vllm" / "provider.py",
           ROOT / "legion_core" / "providers" / "openai_wire.py"]

pytestmark = pytest.mark.skipif(not DOC.exists(), reason="run from the Legion repository")


def test_settings_example_configures_the_providers() -> None:
    raw = re.findall(r"```json\n(.*?)```", DOC.read_text(), re.S)
    assert len(raw) == 1
    providers = {n: VLLMProvider(n, ps) for n, ps in
                 Settings.model_validate(json.loads(raw[0])).llm.providers.items()}
    assert providers["gpu-box"].tier == "fleet" and providers["gpu-box"].option("reasoning") is True
    assert "thinking" in providers["gpu-box"].static_models()[0].capabilities
    assert providers["lmstudio"].tier == "openai_compat"
    assert providers["lmstudio"].server_root == "http://localhost:1234"
    assert providers["llamacpp-server"].option("embed_batch_size") == 1


def test_every_option_is_documented() -> None:
    text = DOC.read_text()
    read = set(re.findall(r'self\.option\("([a-z_]+)"', "".join(p.read_text() for p in SOURCES)))
    assert {"enable_thinking", "reasoning", "capabilities", "context_window", "health_path"} <= read
    assert not sorted(k for k in read if f"`{k}`" not in text)
