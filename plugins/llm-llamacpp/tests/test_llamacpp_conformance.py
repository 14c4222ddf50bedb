"""The kernel's provider conformance suite against the real bundled model (no fake upstream).

An in-process model has no wire to break and no upstream to script, so the fault-injection,
connection-refused and timeout cases are skipped by the suite's own flags (`scripted`,
`network`); tools and images are skipped because the default model does not offer them.
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from legion_llm_llamacpp.model_files import DEFAULT_MODEL_ID
from legion_llm_llamacpp.provider import LlamaCppProvider

from legion_core.testing.conformance import ProviderConformance

pytestmark = pytest.mark.slow  # generates with the real bundled model


@pytest.fixture(scope="module")
def shared_provider():
    """One loaded model for the whole module: the suite's cases then cost a generation each."""
    p = LlamaCppProvider("llamacpp", LlamaCppProvider.auto_settings())
    yield p
    asyncio.run(p.aclose())


class TestLlamaCppConformance(ProviderConformance):
    scripted = False
    network = False
    supports_tools = False
    supports_vision = False
    supports_thinking = False
    error_kinds = ()
    max_tokens = 16

    @pytest.fixture
    def fake(self):
        return None  # no upstream: the model runs in this process

    @pytest.fixture
    def upstream_url(self):
        return ""

    @pytest.fixture
    def provider_factory(self):
        def make(url, **settings):
            return LlamaCppProvider("llamacpp", LlamaCppProvider.auto_settings().model_copy(update=settings))
        return make

    @pytest_asyncio.fixture
    async def provider(self, shared_provider):
        yield shared_provider

    @pytest.fixture
    def model(self):
        return DEFAULT_MODEL_ID
