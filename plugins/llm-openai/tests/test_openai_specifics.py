"""What the OpenAI provider adds over the shared wire code: its catalog, auth, reasoning models."""

from __future__ import annotations

from typing import Any

import pytest
from importlib_metadata import entry_points
from legion_llm_openai import OpenAIProvider
from legion_llm_openai.catalog import CATALOG, DEFAULT_MODEL, is_reasoning

from legion_core.errors import ProviderAuthError
from legion_core.settings.models import ProviderSettings
from legion_core.testing.fakes.openai import FakeOpenAI
from legion_core.types import ChatRequest, Message

KEY = "sk-test-fake"


@pytest.fixture
async def provider(legion_fake_openai: FakeOpenAI) -> Any:
    p = OpenAIProvider("openai", ProviderSettings(base_url=legion_fake_openai.url + "/v1", api_key=KEY,
                                                  organization="org-1", project="proj-1"))
    yield p
    await p.aclose()


def req(**kw: Any) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content="hi")], **kw)


def test_registered_through_the_legion_entry_point() -> None:
    eps = {ep.name: ep.value for ep in entry_points(group="legion")}
    assert eps.get("llm-openai") == "legion_llm_openai.plugin"
    registered: list[type] = []
    from legion_llm_openai import plugin

    plugin.legion_register_providers(registered.append)
    assert registered == [OpenAIProvider]


def test_defaults_and_auto_settings() -> None:
    assert OpenAIProvider.needs_credentials and OpenAIProvider.credential_keys == ("api_key",)
    auto = OpenAIProvider.auto_settings()
    assert auto is not None and auto.api_key == "env://OPENAI_API_KEY"
    p = OpenAIProvider("openai", ProviderSettings(api_key="sk-live-secret-value"))
    assert p.tier == "frontier" and p.base_url == "https://api.openai.com/v1"
    assert p.default_model == DEFAULT_MODEL
    assert "sk-live-secret-value" not in repr(p.describe())
    assert OpenAIProvider("o", ProviderSettings(tier="cloud")).tier == "cloud"


def test_catalog_has_windows_capabilities_and_prices() -> None:
    models = {m.id: m for m in OpenAIProvider("openai", ProviderSettings()).static_models()}
    assert set(CATALOG) <= set(models)
    mini = models["gpt-4o-mini"]
    assert mini.context_window == 128_000 and {"tools", "vision", "json", "streaming"} <= mini.capabilities
    assert (mini.input_price, mini.output_price) == (0.15, 0.60)
    assert "thinking" in models["o3"].capabilities and "thinking" not in mini.capabilities
    emb = models["text-embedding-3-small"]
    assert emb.embedding and emb.capabilities == {"embeddings"}
    assert all(m.tier == "frontier" and m.provider == "openai" for m in models.values())


async def test_max_completion_tokens_org_and_project_headers(provider: OpenAIProvider,
                                                             legion_fake_openai: FakeOpenAI) -> None:
    await provider.chat(req(max_tokens=7, temperature=0.5), "gpt-4o-mini")
    body = legion_fake_openai.last_chat()
    assert body["max_completion_tokens"] == 7 and "max_tokens" not in body and body["temperature"] == 0.5
    headers = {k.lower(): v for k, v in legion_fake_openai.requests[-1]["headers"].items()}
    assert headers["openai-organization"] == "org-1" and headers["openai-project"] == "proj-1"
    assert headers["authorization"] == f"Bearer {KEY}"


async def test_reasoning_models_drop_sampling_and_take_effort(provider: OpenAIProvider,
                                                              legion_fake_openai: FakeOpenAI) -> None:
    legion_fake_openai.models.append("o4-mini")
    assert is_reasoning("o4-mini") and is_reasoning("gpt-5-mini") and not is_reasoning("gpt-4.1")
    await provider.chat(req(temperature=0.1, top_p=0.5, thinking=True), "o4-mini")
    body = legion_fake_openai.last_chat()
    assert "temperature" not in body and "top_p" not in body and body["reasoning_effort"] == "medium"
    await provider.chat(req(temperature=0.1, thinking=True), "gpt-4o-mini")
    assert "reasoning_effort" not in legion_fake_openai.last_chat()


async def test_list_models_marks_availability(provider: OpenAIProvider) -> None:
    models = {m.id: m for m in await provider.list_models()}
    assert models["gpt-4o-mini"].available is True and models["gpt-5"].available is False


async def test_wrong_key_is_auth_error_without_the_key(legion_fake_openai: FakeOpenAI) -> None:
    p = OpenAIProvider("openai", ProviderSettings(base_url=legion_fake_openai.url + "/v1",
                                                  api_key="sk-wrong-secret-0123456789"))
    try:
        with pytest.raises(ProviderAuthError) as info:
            await p.chat(req(), "gpt-4o-mini")
        assert "sk-wrong-secret-0123456789" not in str(info.value)
        health = await p.health()
        assert not health.ok and "sk-wrong-secret-0123456789" not in health.detail
        models = await p.list_models()  # never raises: the catalog, unchecked
        assert models and all(m.available is None for m in models)
    finally:
        await p.aclose()


async def test_works_with_the_real_openai_sdk_shapes(provider: OpenAIProvider) -> None:
    """The fake is checked against the SDK elsewhere; here: many concurrent calls share one pool."""
    import asyncio

    answers = await asyncio.gather(*(provider.chat(req(), "gpt-4o-mini") for _ in range(20)))
    assert {a.text for a in answers} == {"Wednesday comes after Tuesday."}
    pool = provider.pool()
    assert pool is provider.pool() and pool.lean is pool.lean
    assert 1 <= pool.lean.open_connections <= provider.settings.max_connections


async def test_pass_through_token_replaces_the_configured_key(legion_fake_factory: Any) -> None:
    fake = legion_fake_factory(FakeOpenAI, api_key="sk-callers-own-key")
    p = OpenAIProvider("openai", ProviderSettings(base_url=fake.url + "/v1", api_key="sk-legions-key"))
    try:
        with pytest.raises(ProviderAuthError):
            await p.chat(req(), "gpt-4o-mini")
        forwarded = req()
        forwarded.pass_through_token = "sk-callers-own-key"
        assert (await p.chat(forwarded, "gpt-4o-mini")).text == fake.reply_text
        from legion_core.testing.conformance import collect_stream

        res = await collect_stream(p.stream(forwarded, "gpt-4o-mini"))
        assert res.error is None and res.text == fake.reply_text
    finally:
        await p.aclose()


async def test_timeout_total_caps_a_whole_chat(legion_fake_openai: FakeOpenAI) -> None:
    from legion_core.errors import ProviderTimeout

    p = OpenAIProvider("openai", ProviderSettings(base_url=legion_fake_openai.url + "/v1", api_key=KEY,
                                                  timeout_total=0.2))
    legion_fake_openai.fail_with("timeout")  # stalls 2 s; the read timeout (120 s) would not fire
    try:
        with pytest.raises(ProviderTimeout, match="timeout_total"):
            await p.chat(req(), "gpt-4o-mini")
    finally:
        await p.aclose()
