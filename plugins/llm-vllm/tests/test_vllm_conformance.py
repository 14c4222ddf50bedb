"""The kernel's provider conformance suite against the fake vLLM (vLLM-flavoured errors, thinking)."""

from __future__ import annotations

from typing import Any

import pytest
from legion_llm_vllm import VLLMProvider

from legion_core.settings.models import ProviderSettings
from legion_core.testing.conformance import ProviderConformance
from legion_core.testing.fakes.openai import FakeOpenAI

MODELS = ("Qwen/Qwen3-8B", "BAAI/bge-small-en-v1.5")


class TestVLLMConformance(ProviderConformance):
    supports_thinking = True

    @pytest.fixture
    def fake(self, legion_fake_factory: Any) -> Any:
        return legion_fake_factory(FakeOpenAI, api_key=None, flavor="vllm", models=MODELS, max_model_len=32768)

    @pytest.fixture
    def provider_factory(self) -> Any:
        def make(url: str, **settings: Any) -> VLLMProvider:
            return VLLMProvider("vllm", ProviderSettings(base_url=url + "/v1", **settings))
        return make

    @pytest.fixture
    def model(self) -> str:
        return MODELS[0]

    @pytest.fixture
    def embedding_model(self) -> str:
        return MODELS[1]


class TestVLLMWithApiKeyConformance(TestVLLMConformance):
    """A gateway in front of vLLM that wants a bearer key (the optional `api_key`)."""

    supports_thinking = False

    @pytest.fixture
    def fake(self, legion_fake_factory: Any) -> Any:
        return legion_fake_factory(FakeOpenAI, api_key="gw-key-123456", models=MODELS)

    @pytest.fixture
    def provider_factory(self) -> Any:
        def make(url: str, **settings: Any) -> VLLMProvider:
            return VLLMProvider("gateway", ProviderSettings(base_url=url + "/v1", api_key="gw-key-123456",
                                                            tier="openai_compat", **settings))
        return make
