"""The kernel's provider conformance suite against the Bedrock fake (SigV4-signed requests)."""

from __future__ import annotations

import pytest
from legion_llm_bedrock.provider import BedrockProvider

from legion_core.settings.models import ProviderSettings
from legion_core.testing.conformance import ProviderConformance
from legion_core.testing.fakes.bedrock import TEST_ACCESS_KEY, TEST_SECRET_KEY, FakeBedrock

MODEL = "us.anthropic.claude-sonnet-4-6-v1"


class TestBedrockConformance(ProviderConformance):
    supports_thinking = True

    @pytest.fixture
    def fake(self, legion_fake_factory):
        return legion_fake_factory(FakeBedrock)

    @pytest.fixture
    def provider_factory(self):
        def make(url, **settings):
            return BedrockProvider("bedrock", ProviderSettings(
                base_url=url, api_key=TEST_ACCESS_KEY, secret_key=TEST_SECRET_KEY, **settings))
        return make

    @pytest.fixture
    def model(self):
        return MODEL

    @pytest.fixture
    def embedding_model(self):
        return "amazon.titan-embed-text-v2:0"

    def test_every_request_was_signed_and_verified(self, fake):
        assert fake.check_auth and fake.auth_failures == []


class TestBedrockConformanceBearer(TestBedrockConformance):
    """The same suite with a Bedrock API key (`Authorization: Bearer`)."""

    @pytest.fixture
    def provider_factory(self, fake):
        def make(url, **settings):
            return BedrockProvider("bedrock", ProviderSettings(
                base_url=url, bearer_token=fake.bearer_token, **settings))
        return make
