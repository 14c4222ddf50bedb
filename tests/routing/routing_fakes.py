"""In-test provider plugins (one class per tier flavour) and a builder for a real router:
`LLMSettings` → `ProviderRegistry.build` → `Router`, with plugins registered through the real
`PluginManager`."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from legion_core.builtin import complexity as builtin_complexity
from legion_core.hookspecs import hookimpl
from legion_core.plugins.manager import PluginManager
from legion_core.providers.base import Provider
from legion_core.providers.registry import ProviderRegistry
from legion_core.routing.health import HealthTracker
from legion_core.routing.router import Router
from legion_core.settings.models import LLMSettings
from legion_core.types import ChatRequest, ChatResponse, Health, ModelInfo, TextBlock


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class _Base(Provider):
    needs_credentials = False

    async def chat(self, request: ChatRequest, model: str) -> ChatResponse:
        return ChatResponse(model=model, content=[TextBlock(text=f"{self.name}:{model}")])

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[Any]:  # pragma: no cover
        raise NotImplementedError
        yield


class LocalProvider(_Base):
    """Like an embedded/ollama provider: free models, small context, memory needs."""

    kind = "ollama"
    default_tier = "local"

    def static_models(self) -> list[ModelInfo]:
        return [ModelInfo(id="tiny", context_window=4096, capabilities={"streaming", "json"}),
                ModelInfo(id="nomic-embed", embedding=True, capabilities={"embeddings"}, context_window=2048)]


class FleetProvider(_Base):
    kind = "vllm"
    default_tier = "fleet"

    def static_models(self) -> list[ModelInfo]:
        return [ModelInfo(id="llama-70b", context_window=32768, capabilities={"streaming", "tools", "json"},
                          input_price=0.1, output_price=0.1)]


class CloudCheap(_Base):
    kind = "openai"
    default_tier = "cloud"

    def static_models(self) -> list[ModelInfo]:
        return [
            ModelInfo(id="mini", context_window=128000, input_price=0.15, output_price=0.6,
                      capabilities={"streaming", "tools", "json", "vision"}),
            ModelInfo(id="big", context_window=128000, input_price=2.5, output_price=10.0,
                      capabilities={"streaming", "tools", "json", "vision"}),
            ModelInfo(id="embed-small", embedding=True, capabilities={"embeddings"}, input_price=0.02,
                      context_window=8192),
        ]


class CloudPricey(_Base):
    kind = "anthropic"
    default_tier = "cloud"

    def static_models(self) -> list[ModelInfo]:
        return [ModelInfo(id="sonnet", context_window=200000, input_price=3.0, output_price=15.0,
                          capabilities={"streaming", "tools", "vision", "thinking"})]


class FrontierProvider(_Base):
    kind = "bedrock"
    default_tier = "frontier"

    def static_models(self) -> list[ModelInfo]:
        return [ModelInfo(id="opus", context_window=200000, input_price=15.0, output_price=75.0,
                          capabilities={"streaming", "tools", "vision", "thinking", "json"})]


class DownProvider(LocalProvider):
    """Health check fails (for discovery tests)."""

    kind = "down"

    async def health(self) -> Health:
        return Health(ok=False, detail="connection refused")


class FakeProvidersPlugin:
    """The in-test provider plugin."""

    @hookimpl
    def legion_register_providers(self, register: Any) -> None:
        for cls in (LocalProvider, FleetProvider, CloudCheap, CloudPricey, FrontierProvider, DownProvider):
            register(cls)


#: A typical deployment: one provider per tier.
ALL_TIERS: dict[str, Any] = {
    "local": {"type": "ollama"},
    "fleet": {"type": "vllm"},
    "openai": {"type": "openai"},
    "anthropic": {"type": "anthropic"},
    "frontier": {"type": "bedrock"},
}


@dataclass
class Built:
    router: Router
    registry: ProviderRegistry
    health: HealthTracker
    plugins: PluginManager
    llm: LLMSettings


def build(providers: dict[str, Any], *, clock: Clock, routing: dict[str, Any] | None = None,
          plugins: tuple[Any, ...] = (), builtin_signals: bool = True, now: dt.datetime | None = None,
          memory: int | None = None, llm: dict[str, Any] | None = None) -> Built:
    settings = LLMSettings.model_validate({"providers": providers, "routing": routing or {}, **(llm or {})})
    pm = PluginManager()
    pm.register(FakeProvidersPlugin(), name="test-providers")
    if builtin_signals:
        pm.register(builtin_complexity, name="legion_core.builtin.complexity")
    for i, p in enumerate(plugins):
        pm.register(p, name=f"test-plugin-{i}")
    reg = ProviderRegistry()
    pm.hook.legion_register_providers(register=reg.register_class)
    reg.build(settings, dict(settings.providers), {})
    health = HealthTracker(settings.routing.health, clock=clock)
    router = Router(settings, reg, health, pm, now=(lambda: now) if now else None,
                    memory_available=(lambda: memory))
    return Built(router, reg, health, pm, settings)
