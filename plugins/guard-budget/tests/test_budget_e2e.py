"""guard-budget inside a real Legion: real router (route_preview), pipeline (metering, guards),
SQLite store under a temporary LEGION_HOME, and the gateway with the real OpenAI SDK.

Prices: the cloud model costs $10/M input and $30/M output; every answer reports 1000 + 1000
tokens, so each cloud answer costs $0.04. A daily budget of $0.10 takes two of them.
"""

from __future__ import annotations

import httpx
import pytest
from legion_guard_budget.plugin import BudgetPlugin

from legion_core.errors import RequestRefused
from legion_core.hookspecs import hookimpl
from legion_core.lifecycle import Legion
from legion_core.plugins.manager import PluginManager
from legion_core.providers.base import Provider
from legion_core.types import ChatResponse, DoneChunk, TextBlock, Usage, UsageChunk, text_request


class PricedProvider(Provider):
    kind = "priced-test"
    default_tier = "local"

    async def chat(self, request, model):
        return ChatResponse(model=model, content=[TextBlock(text=f"{self.name} answers")],
                            usage=Usage(input_tokens=1000, output_tokens=1000))

    async def stream(self, request, model):
        yield UsageChunk(usage=Usage(input_tokens=1000, output_tokens=1000))
        yield DoneChunk()


class PricedPlugin:
    @hookimpl
    def legion_register_providers(self, register):
        register(PricedProvider)


PROVIDERS = {
    "loc": {"type": "priced-test", "tier": "local", "default_model": "small",
            "models": {"small": {"capabilities": ["streaming", "tools"], "context_window": 32000}}},
    "cld": {"type": "priced-test", "tier": "cloud", "default_model": "big",
            "models": {"big": {"capabilities": ["streaming", "tools"], "context_window": 200000,
                               "input_price": 10.0, "output_price": 30.0}}},
}


def make_legion(home, **budget):
    pm = PluginManager()
    pm.load(entry_points=False)
    pm.register(PricedPlugin(), name="priced")
    pm.register(BudgetPlugin(), name="guard-budget")
    return Legion(home=home, plugins=pm, load_entry_points=False,
                  settings={"llm": {"providers": PROVIDERS, "discovery": {"enabled": False},
                                    "cache": {"enabled": False}},
                            "budget": budget})


def cloud_request(i=0):
    # `tier="cloud"` is what the caller asks for; the budget may still move it to a free tier.
    return text_request(f"Compare these two designs in depth ({i})", max_tokens=1000,
                        intent={"capability": "reasoning"})


async def spend_two(lg):
    for i in range(2):
        r = await lg.pipeline.chat(cloud_request(i))
        assert r.provider == "cld" and r.cost_usd == pytest.approx(0.04)


async def test_block_then_restart_keeps_the_spend(tmp_path):
    lg = await make_legion(tmp_path, daily_usd=0.10, on_exceed="block").start()
    try:
        await spend_two(lg)
        with pytest.raises(RequestRefused) as ei:
            await lg.pipeline.chat(cloud_request(3))
        assert ei.value.status == 429 and "daily limit of $0.10" in ei.value.message
        assert ei.value.retry_after and ei.value.retry_after <= 86400
    finally:
        await lg.shutdown()
    assert (tmp_path / "data" / "legion.db").exists()
    lg2 = await make_legion(tmp_path, daily_usd=0.10, on_exceed="block").start()
    try:
        with pytest.raises(RequestRefused):
            await lg2.pipeline.chat(cloud_request(4))
    finally:
        await lg2.shutdown()


async def test_downgrade_routes_to_the_free_tier(tmp_path):
    lg = await make_legion(tmp_path, daily_usd=0.10, on_exceed="downgrade").start()
    try:
        await spend_two(lg)
        r = await lg.pipeline.chat(cloud_request(3))
        assert r.provider == "loc" and r.cost_usd == 0.0
        assert r.routing is not None and any(
            c.provider == "cld" and "free_only" in (c.dropped or "") for c in r.routing.candidates)
    finally:
        await lg.shutdown()


def test_gateway_answers_429_and_exposes_the_gauges(tmp_path):
    openai = pytest.importorskip("openai")
    from legion_core.server import ServerThread, create_app

    lg = make_legion(tmp_path, daily_usd=0.10, on_exceed="block", warning_threshold=0.5)
    with ServerThread(create_app(lg)) as st:
        client = openai.OpenAI(base_url=st.url + "/v1", api_key="unused", max_retries=0)
        client_model = "cld/big"  # the OpenAI dialect names the model; the budget still applies
        for i in range(2):
            client.chat.completions.create(model=client_model, max_tokens=1000,
                                           messages=[{"role": "user", "content": f"design {i}"}])
        with pytest.raises(openai.RateLimitError) as ei:
            client.chat.completions.create(model=client_model, max_tokens=1000,
                                           messages=[{"role": "user", "content": "design 3"}])
        assert "daily limit of $0.10" in str(ei.value)
        assert int(ei.value.response.headers["retry-after"]) > 0
        metrics = httpx.get(st.url + "/metrics").text
    assert 'legion_budget_warning{limit="daily"} 1' in metrics
    assert 'legion_budget_blocks_total 1' in metrics


async def test_streams_are_reserved_and_reconciled_too(tmp_path):
    lg = await make_legion(tmp_path, daily_usd=0.10, on_exceed="block").start()
    try:
        guard = lg.plugins.pm.get_plugin("guard-budget").guard
        for i in range(2):
            req = cloud_request(i).model_copy(update={"stream": True})
            chunks = [c async for c in lg.pipeline.stream(req)]
            assert chunks[0].provider == "cld"
        day = guard.periods.day()
        assert lg.state.get(f"budget:day:{day}:total") == pytest.approx(0.08)
        assert guard._outstanding == {}
        with pytest.raises(RequestRefused):
            [c async for c in lg.pipeline.stream(cloud_request(3).model_copy(update={"stream": True}))]
    finally:
        await lg.shutdown()
