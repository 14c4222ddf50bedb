"""Entry point `legion = llm-openai`: the provider class and its startup; nothing runs at import."""

from __future__ import annotations

from typing import Any

from legion_core.hookspecs import hookimpl


@hookimpl
def legion_register_providers(register):  # type: ignore[no-untyped-def]
    from legion_llm_openai.provider import OpenAIProvider

    register(OpenAIProvider)


@hookimpl
async def legion_startup(legion: Any) -> None:
    """Apply the kernel's `llm.timeouts` to this plugin's providers wherever they set none."""
    from legion_llm_openai.provider import OpenAIProvider

    for provider in legion.registry.providers.values():
        if isinstance(provider, OpenAIProvider):
            await provider.apply_timeouts(legion.settings.llm.timeouts)
