"""Bedrock through the whole kernel: entry point, settings with secret references resolved at
boot, routing to tier `cloud`, chat and stream answered by the (signature-checking) fake."""

from __future__ import annotations

import pytest

from legion_core.testing.fakes.bedrock import TEST_ACCESS_KEY, TEST_SECRET_KEY, FakeBedrock
from legion_core.types import DoneChunk, RouteChunk, text_request

pytest.importorskip("legion_core.pipeline.pipeline")


async def test_legion_routes_to_bedrock_with_resolved_secret_references(tmp_path, monkeypatch,
                                                                       legion_fake_factory):
    from legion_core.lifecycle import Legion

    fake = legion_fake_factory(FakeBedrock)
    monkeypatch.setenv("LEGION_PLUGINS", "llm-bedrock")
    monkeypatch.setenv("BEDROCK_TEST_AKID", TEST_ACCESS_KEY)
    monkeypatch.setenv("BEDROCK_TEST_SECRET", TEST_SECRET_KEY)
    monkeypatch.delenv("BEDROCK_TEST_UNSET", raising=False)
    settings = {"llm": {"providers": {"aws": {
        "type": "bedrock", "base_url": fake.url, "default_model": "us.anthropic.claude-sonnet-4-6-v1",
        "api_key": ["env://BEDROCK_TEST_UNSET", "env://BEDROCK_TEST_AKID"],
        "secret_key": "env://BEDROCK_TEST_SECRET"}}}}
    async with Legion(home=tmp_path, settings=settings) as legion:
        assert legion.registry.names() == ["aws"] and not legion.registry.skipped
        r = await legion.pipeline.chat(text_request("What day comes after Tuesday?", cache=False))
        assert (r.text, r.provider, r.tier) == (fake.reply_text, "aws", "cloud")
        # cost_optimized routing picks the cheapest catalog model that fits a simple question
        assert r.model in {m.id for m in legion.registry.models("aws")}
        assert fake.requests[-1]["path"] == f"/model/{r.model}/converse"
        chunks = [c async for c in legion.pipeline.stream(text_request("And after Wednesday?", cache=False))]
        assert isinstance(chunks[0], RouteChunk) and chunks[0].provider == "aws"
        assert isinstance(chunks[-1], DoneChunk) and chunks[-1].response.text == fake.reply_text
    assert fake.auth_failures == [] and fake.calls["converse"] == 1 and fake.calls["converse-stream"] == 1


async def test_unresolved_credentials_keep_bedrock_disabled(tmp_path, monkeypatch):
    from legion_core.lifecycle import Legion

    monkeypatch.setenv("LEGION_PLUGINS", "llm-bedrock")
    monkeypatch.delenv("BEDROCK_TEST_UNSET", raising=False)
    settings = {"llm": {"providers": {"aws": {"type": "bedrock", "bearer_token": "env://BEDROCK_TEST_UNSET"}}}}
    async with Legion(home=tmp_path, settings=settings) as legion:
        assert legion.registry.names() == []
        assert "env://BEDROCK_TEST_UNSET" in legion.registry.skipped["aws"]
