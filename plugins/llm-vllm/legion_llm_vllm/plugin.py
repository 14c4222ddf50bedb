"""Entry point `legion = llm-vllm`: the provider class and its discovery; nothing runs at import."""

from __future__ import annotations

from typing import Any

from legion_core.hookspecs import hookimpl


@hookimpl
def legion_register_providers(register):  # type: ignore[no-untyped-def]
    from legion_llm_vllm.provider import VLLMProvider

    register(VLLMProvider)


@hookimpl
def legion_discover_models(provider: Any) -> Any:
    """`GET /v1/models` on every vLLM-type provider: served models, `max_model_len` as the window.

    Returns None at once for other providers (no coroutine is created for them), else an
    awaitable list. An unreachable server reports no models (its health check says why).
    """
    from legion_llm_vllm.provider import VLLMProvider

    if not isinstance(provider, VLLMProvider):
        return None
    return provider.discover_or_empty()


@hookimpl
async def legion_startup(legion: Any) -> None:
    """Apply the kernel's `llm.timeouts` to this plugin's providers wherever they set none."""
    from legion_llm_vllm.provider import VLLMProvider

    for provider in legion.registry.providers.values():
        if isinstance(provider, VLLMProvider):
            await provider.apply_timeouts(legion.settings.llm.timeouts)
