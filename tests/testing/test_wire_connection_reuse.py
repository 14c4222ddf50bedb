"""A provider keeps its upstream connections: answers read to the end, streams included, put
the connection back in the pool; a TLS upstream would otherwise pay a handshake per request."""

from __future__ import annotations

import pytest

from legion_core.providers.openai_wire import OpenAIWireProvider
from legion_core.settings.models import ProviderSettings
from legion_core.testing.fakes.openai import FakeOpenAI
from legion_core.types import ModelInfo, TextDelta, text_request


class Wire(OpenAIWireProvider):
    kind = "wire-reuse-test"

    def static_models(self):
        return [ModelInfo(id="gpt-4o-mini", capabilities={"streaming"})]


@pytest.fixture
def fake():
    with FakeOpenAI() as f:
        yield f


@pytest.mark.parametrize("streamed", [False, True])
async def test_sequential_requests_share_one_connection(fake: FakeOpenAI, streamed: bool) -> None:
    p = Wire("up", ProviderSettings(base_url=fake.url + "/v1", api_key="sk-test-fake"))
    try:
        for i in range(5):
            req = text_request(f"question {i}")
            if streamed:
                text = "".join([c.text async for c in p.stream(req, "gpt-4o-mini") if isinstance(c, TextDelta)])
            else:
                text = (await p.chat(req, "gpt-4o-mini")).text
            assert text == fake.reply_text
    finally:
        await p.aclose()
    assert fake.calls["chat"] == 5
    assert len(fake.connections) == 1, f"{len(fake.connections)} connections for 5 sequential requests"
