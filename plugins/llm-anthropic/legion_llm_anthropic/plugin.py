"""Entry point `legion = llm-anthropic`: registers the provider class, nothing else at import."""

from __future__ import annotations

from legion_core.hookspecs import hookimpl


@hookimpl
def legion_register_providers(register):  # type: ignore[no-untyped-def]
    from legion_llm_anthropic.provider import AnthropicProvider

    register(AnthropicProvider)
