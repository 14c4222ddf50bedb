"""Discovery: health and model lists into the registry, in the background, never blocking."""

from __future__ import annotations

import asyncio

import pytest

from legion_core.hookspecs import hookimpl
from legion_core.routing.discovery import DiscoveryService
from legion_core.settings.models import DiscoverySettings, ProviderSettings
from legion_core.types import Health, ModelInfo, text_request
from tests.routing.routing_fakes import LocalProvider


class Discover:
    """A discovery plugin: async for `local`, sync for `fleet`, silent for the rest."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[str] = []
        self.delay = delay

    @hookimpl
    def legion_discover_models(self, provider):
        self.calls.append(provider.name)
        if provider.name == "local":
            async def pulled():
                await asyncio.sleep(self.delay)
                return [ModelInfo(id="qwen", available=True, loaded=True, context_window=32768)]
            return pulled()
        if provider.name == "fleet":
            return [ModelInfo(id="llama-70b", available=True)]
        return None


def service(b, **settings):
    return DiscoveryService(b.registry, b.plugins, DiscoverySettings(**settings), clock=b.health.clock)


async def test_refresh_records_reachability_and_models(make_router):
    plugin = Discover()
    b = make_router({"local": {"type": "ollama"}, "fleet": {"type": "vllm"}, "down": {"type": "down"}},
                    plugins=(plugin,))
    result = await service(b).refresh()
    assert result == {"local": True, "fleet": True, "down": False}
    assert b.registry.reachable == {"local": True, "fleet": True, "down": False}
    assert b.registry.unreachable_detail["down"] == "connection refused"
    assert [m.id for m in b.registry.discovered["local"]] == ["qwen"]
    assert "down" not in b.registry.discovered  # an unreachable provider's list is not asked for
    d = b.router.decide(text_request("What day comes after Tuesday?"))
    assert (d.provider, d.model) == ("local", "qwen")
    reasons = {f"{c.provider}/{c.model}": c.dropped for c in d.candidates}
    assert reasons["local/tiny"] == "not present on the provider (discovery)"
    assert reasons["down/tiny"] == "unreachable: connection refused"


async def test_refresh_one_provider_and_unknown_name(make_router):
    b = make_router({"local": {"type": "ollama"}, "fleet": {"type": "vllm"}}, plugins=(Discover(),))
    assert await service(b).refresh("fleet") == {"fleet": True}
    assert "local" not in b.registry.reachable
    with pytest.raises(KeyError, match="unknown provider 'nope'"):
        await service(b).refresh("nope")


async def test_slow_provider_times_out_as_unreachable(make_router):
    b = make_router({"local": {"type": "ollama"}}, plugins=(Discover(delay=5.0),))
    assert await service(b).refresh(timeout=0.05) == {"local": False}
    assert "no answer within 0.05s" in b.registry.unreachable_detail["local"]


class Boom(LocalProvider):
    kind = "boom"

    async def health(self) -> Health:
        raise ConnectionRefusedError("127.0.0.1:1 refused")


async def test_health_exception_is_unreachable_with_the_reason(make_router):
    b = make_router({})
    b.registry.add(Boom("boom", ProviderSettings()))
    assert await service(b).refresh() == {"boom": False}
    assert b.registry.unreachable_detail["boom"] == "ConnectionRefusedError: 127.0.0.1:1 refused"


class Listing(LocalProvider):
    kind = "listing"

    async def list_models(self):
        return [ModelInfo(id="live-model", available=True)]


async def test_provider_list_models_is_used_when_no_plugin_reports(make_router):
    b = make_router({"local": {"type": "ollama"}})
    b.registry.add(Listing("listing", ProviderSettings()))
    await service(b).refresh()
    assert "local" not in b.registry.discovered  # static catalog only: nothing to discover
    assert [m.id for m in b.registry.discovered["listing"]] == ["live-model"]


async def test_ttl_decides_what_is_due(make_router, clock):
    b = make_router({"local": {"type": "ollama"}, "fleet": {"type": "vllm"}}, plugins=(Discover(),))
    svc = service(b, ttl_seconds=30)
    assert svc.due() == ["local", "fleet"]
    await svc.refresh_due()
    assert svc.due() == []
    clock.advance(10)
    await svc.refresh("fleet")
    clock.advance(20)
    assert svc.due() == ["local"]
    snap = svc.snapshot()
    assert snap["local"]["reachable"] is True and snap["local"]["age_s"] == 30.0
    assert snap["fleet"]["models_discovered"] == 1


def test_start_without_a_loop_is_a_no_op(make_router):
    b = make_router({"local": {"type": "ollama"}}, plugins=(Discover(),))
    svc = service(b)
    svc.start()
    assert not svc.running and b.registry.reachable == {}


async def test_start_runs_in_the_background_and_stop_cancels(make_router):
    plugin = Discover(delay=0.01)
    b = make_router({"local": {"type": "ollama"}}, plugins=(plugin,))
    svc = service(b, refresh_interval_seconds=0.05, ttl_seconds=0)
    svc.start()  # returns at once: nothing refreshed yet
    assert svc.running and b.registry.reachable == {}
    for _ in range(200):
        await asyncio.sleep(0.01)
        if len(plugin.calls) >= 2:
            break
    assert len(plugin.calls) >= 2 and b.registry.reachable["local"] is True
    await svc.stop()
    assert not svc.running
    n = len(plugin.calls)
    await asyncio.sleep(0.12)
    assert len(plugin.calls) == n


async def test_disabled_discovery_does_not_start(make_router):
    b = make_router({"local": {"type": "ollama"}})
    svc = service(b, enabled=False)
    svc.start()
    assert not svc.running
    await svc.stop()


async def test_the_first_discovery_answer_wins_and_no_coroutine_is_left_unawaited(recwarn):
    import gc

    from legion_core.hookspecs import hookimpl
    from legion_core.plugins.manager import PluginManager
    from legion_core.providers.registry import ProviderRegistry
    from legion_core.routing.discovery import DiscoveryService
    from legion_core.settings.models import DiscoverySettings, ProviderSettings
    from legion_core.types import ModelInfo
    from tests.routing.routing_fakes import LocalProvider

    class A:
        @hookimpl
        async def legion_discover_models(self, provider):
            return [ModelInfo(id="from-a")]

    class B:
        @hookimpl
        async def legion_discover_models(self, provider):
            return [ModelInfo(id="from-b")]

    pm = PluginManager()
    pm.register(A(), name="a")
    pm.register(B(), name="b")
    reg = ProviderRegistry()
    reg.add(LocalProvider("loc", ProviderSettings(type=LocalProvider.kind)))
    svc = DiscoveryService(reg, pm, DiscoverySettings())
    await svc.refresh("loc")
    gc.collect()
    ids = [m.id for m in reg.discovered["loc"]]
    assert ids in (["from-a"], ["from-b"])
    assert not [w for w in recwarn if "never awaited" in str(w.message)]
