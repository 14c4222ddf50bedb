"""Entry point `legion = llm-anthropic`: the provider class and the kernel's timeouts; nothing runs at import."""

from __future__ import annotations

from typing import Any

from legion_core.hookspecs import hookimpl


@hookimpl
def legion_register_providers(register):  # type: ignore[no-untyped-def]
    from legion_llm_anthropic.provider import AnthropicProvider

    register(AnthropicProvider)


@hookimpl
def legion_discover_models(provider):  # type: ignore[no-untyped-def]
    """The Models API's view (available models, limits, capabilities); an awaitable, or None."""
    from legion_llm_anthropic.provider import AnthropicProvider

    if isinstance(provider, AnthropicProvider):
        return provider.discover()
    return None


@hookimpl
async def legion_startup(legion: Any) -> None:
    """Give every Anthropic provider the kernel's `llm.timeouts` under its own `timeout_*`."""
    from legion_llm_anthropic.provider import AnthropicProvider

    for p in list(legion.registry.providers.values()):
        if isinstance(p, AnthropicProvider):
            await p.apply_timeouts(legion.settings.llm.timeouts)
