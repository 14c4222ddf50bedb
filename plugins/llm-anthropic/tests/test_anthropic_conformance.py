"""The kernel's provider conformance suite, run against the Anthropic Messages API fake."""

from __future__ import annotations

from typing import Any

import pytest
from legion_llm_anthropic import AnthropicProvider

from legion_core.settings.models import ProviderSettings
from legion_core.testing.conformance import ProviderConformance
from legion_core.testing.fakes.anthropic import FakeAnthropic

KEY = "sk-ant-test-conformance-key"


class TestAnthropicConformance(ProviderConformance):
    supports_embeddings = False  # Anthropic has no embeddings endpoint
    supports_thinking = True

    @pytest.fixture
    def fake(self, legion_fake_factory: Any) -> Any:
        return legion_fake_factory(FakeAnthropic, api_key=KEY)

    @pytest.fixture
    def provider_factory(self) -> Any:
        def make(url: str, **settings: Any) -> AnthropicProvider:
            return AnthropicProvider("anthropic", ProviderSettings(base_url=url, api_key=KEY, **settings))
        return make

    @pytest.fixture
    def model(self) -> str:
        return "claude-sonnet-4-6"
