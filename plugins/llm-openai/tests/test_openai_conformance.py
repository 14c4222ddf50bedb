"""The kernel's provider conformance suite, run against the OpenAI-compatible fake."""

from __future__ import annotations

from typing import Any

import pytest
from legion_llm_openai import OpenAIProvider

from legion_core.settings.models import ProviderSettings
from legion_core.testing.conformance import ProviderConformance

KEY = "sk-test-fake"


class TestOpenAIConformance(ProviderConformance):
    supports_thinking = False  # chat completions do not return OpenAI's reasoning text

    @pytest.fixture
    def fake(self, legion_fake_openai: Any) -> Any:
        return legion_fake_openai

    @pytest.fixture
    def provider_factory(self) -> Any:
        def make(url: str, **settings: Any) -> OpenAIProvider:
            return OpenAIProvider("openai", ProviderSettings(base_url=url + "/v1", api_key=KEY, **settings))
        return make

    @pytest.fixture
    def model(self) -> str:
        return "gpt-4o-mini"

    @pytest.fixture
    def embedding_model(self) -> str:
        return "text-embedding-3-small"
