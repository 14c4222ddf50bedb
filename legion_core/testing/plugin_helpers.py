"""Test helpers for guard, signal, tool and discovery plugins (what the provider conformance suite
is for providers). They drive a plugin through a real `PluginManager`, so a misspelt hook name
or a bad signature fails here exactly as it would at boot::

    from legion_core.testing.plugin_helpers import run_guards, provider_signals, stub_provider

    def test_refuses_secrets():
        with pytest.raises(RequestRefused):
            run_guards(MyGuard(), text_request("my password is hunter2"))

    def test_penalty():
        [sig] = provider_signals(MySignal(), stub_provider("gpu1", tier="fleet"))
        assert sig.penalty > 0
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass
from typing import Any

from legion_core.hooktypes import ProviderSignal, RequestContext
from legion_core.plugins.manager import PluginManager
from legion_core.store.state import MemoryState
from legion_core.types import ChatRequest, ChatResponse, ModelInfo, RoutingDecision, ToolCall, ToolResult


def manager_with(*plugins: Any) -> PluginManager:
    """A manager with only these plugins (no entry points, no built-ins), checked like at boot."""
    pm = PluginManager()
    for i, p in enumerate(plugins):
        pm.register(p, name=f"plugin-under-test-{i}")
    pm.check_pending()
    return pm


def guard_context(*, caller: str | None = None, api_key_id: str | None = None, state: Any = None,
                  route_preview: Any = None, request_id: str = "req_test") -> RequestContext:
    """A `RequestContext` with in-memory shared state and, by default, a preview that routes
    everything to a free local model."""
    return RequestContext(request_id=request_id, caller=caller, api_key_id=api_key_id,
                          state=state if state is not None else MemoryState(),
                          route_preview=route_preview or (lambda r: RoutingDecision(
                              provider="local", model="tiny", tier="local", estimated_tokens=10)))


def _sync(v: Any) -> Any:
    return asyncio.run(v) if inspect.iscoroutine(v) else v


def run_guards(plugin: Any, request: ChatRequest, context: RequestContext | None = None) -> ChatRequest:
    """Run `legion_before_chat` in order (like the pipeline); returns the final request."""
    pm = plugin if isinstance(plugin, PluginManager) else manager_with(plugin)
    ctx = context or guard_context()
    for impl in reversed(pm.hook.legion_before_chat.get_hookimpls()):
        r = _sync(impl.function(**{"request": request, "context": ctx}))
        if r is not None:
            assert isinstance(r, ChatRequest), f"{impl.plugin_name} returned {type(r).__name__}"
            request = r
    return request


def run_after_guards(plugin: Any, request: ChatRequest, response: ChatResponse,
                     context: RequestContext | None = None) -> ChatResponse:
    pm = plugin if isinstance(plugin, PluginManager) else manager_with(plugin)
    ctx = context or guard_context()
    for impl in reversed(pm.hook.legion_after_chat.get_hookimpls()):
        r = _sync(impl.function(**{"request": request, "response": response, "context": ctx}))
        if r is not None:
            response = r
    return response


@dataclass
class StubProvider:
    """What signal and discovery hooks look at: name, kind, tier, base_url."""

    name: str
    kind: str = "stub"
    tier: str = "local"
    base_url: str | None = None


def stub_provider(name: str = "stub", *, kind: str = "stub", tier: str = "local",
                  base_url: str | None = None) -> StubProvider:
    return StubProvider(name, kind, tier, base_url)


def provider_signals(plugin: Any, provider: Any) -> list[ProviderSignal]:
    """Every `ProviderSignal` the plugin reports for `provider`, flattened."""
    pm = plugin if isinstance(plugin, PluginManager) else manager_with(plugin)
    out: list[ProviderSignal] = []
    for r in pm.hook.legion_provider_signals(provider=provider):
        for s in (r if isinstance(r, list | tuple) else [r]):
            if s is not None:
                assert isinstance(s, ProviderSignal), f"expected ProviderSignal, got {type(s).__name__}"
                out.append(s)
    return out


def registered_tools(plugin: Any) -> list[Any]:
    pm = plugin if isinstance(plugin, PluginManager) else manager_with(plugin)
    found: list[Any] = []
    pm.hook.legion_register_tools(register=found.append)
    return found


def dispatch_tool(plugin: Any, call: ToolCall, context: RequestContext | None = None) -> ToolResult | None:
    pm = plugin if isinstance(plugin, PluginManager) else manager_with(plugin)
    return _sync(pm.hook.legion_dispatch_tool(call=call, context=context or guard_context()))


async def discover(plugin: Any, provider: Any) -> list[ModelInfo]:
    """Every `ModelInfo` the plugin's `legion_discover_models` reports for `provider`."""
    pm = plugin if isinstance(plugin, PluginManager) else manager_with(plugin)
    out: list[ModelInfo] = []
    for r in pm.hook.legion_discover_models(provider=provider):
        r = await r if inspect.isawaitable(r) else r
        out.extend(r or [])
    return out
