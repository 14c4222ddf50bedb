"""The kernel's provider conformance suite, run against the Ollama fake."""

from __future__ import annotations

from typing import Any

import pytest
from legion_llm_ollama import OllamaProvider

from legion_core.settings.models import ProviderSettings
from legion_core.testing.conformance import ProviderConformance
from legion_core.testing.fakes.ollama import FakeOllama


class TestOllamaConformance(ProviderConformance):
    supports_thinking = True

    @pytest.fixture
    def fake(self, legion_fake_factory: Any) -> Any:
        return legion_fake_factory(FakeOllama)

    @pytest.fixture
    def provider_factory(self) -> Any:
        def make(url: str, **settings: Any) -> OllamaProvider:
            return OllamaProvider("ollama", ProviderSettings(base_url=url, **settings))
        return make

    @pytest.fixture
    def model(self) -> str:
        return "qwen3:0.6b"  # completion, tools and thinking

    @pytest.fixture
    def embedding_model(self) -> str:
        return "nomic-embed-text:latest"
