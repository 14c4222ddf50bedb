"""Entry point `legion = llm-ollama`: the provider class, discovery and the kernel's discovery TTL."""

from __future__ import annotations

from typing import Any

from legion_core.hookspecs import hookimpl


@hookimpl
def legion_register_providers(register):  # type: ignore[no-untyped-def]
    from legion_llm_ollama.provider import OllamaProvider

    register(OllamaProvider)


@hookimpl
def legion_discover_models(provider):  # type: ignore[no-untyped-def]
    """Pulled models (tags + show + ps), TTL-cached; returns an awaitable for Ollama providers."""
    from legion_llm_ollama.provider import OllamaProvider

    if isinstance(provider, OllamaProvider):
        return provider.discover()
    return None


@hookimpl
async def legion_startup(legion: Any) -> None:
    """Apply `llm.discovery.ttl_seconds` and `llm.timeouts` to every Ollama provider (its own
    `discovery_ttl_seconds` / `timeout_*` settings win)."""
    from legion_llm_ollama.provider import OllamaProvider

    ttl = legion.settings.llm.discovery.ttl_seconds
    for p in list(legion.registry.providers.values()):
        if isinstance(p, OllamaProvider):
            p.set_discovery_ttl(ttl)
            await p.apply_timeouts(legion.settings.llm.timeouts)
