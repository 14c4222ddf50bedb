"""Entry point `legion = llm-openai`: registers the provider class, nothing else at import."""

from __future__ import annotations

from legion_core.hookspecs import hookimpl


@hookimpl
def legion_register_providers(register):  # type: ignore[no-untyped-def]
    from legion_llm_openai.provider import OpenAIProvider

    register(OpenAIProvider)
