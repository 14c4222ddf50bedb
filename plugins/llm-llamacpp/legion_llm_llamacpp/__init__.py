"""Legion plugin `llm-llamacpp`: the embedded default provider (a GGUF run in-process).

Importing this module is cheap: llama-cpp-python is imported only when a model loads.
"""

from __future__ import annotations

from typing import Any

from legion_core.hookspecs import hookimpl

__all__ = ["LlamaCppProvider"]


def __getattr__(name: str) -> Any:
    if name == "LlamaCppProvider":
        from legion_llm_llamacpp.provider import LlamaCppProvider

        return LlamaCppProvider
    raise AttributeError(name)


@hookimpl
def legion_register_providers(register: Any) -> None:
    from legion_llm_llamacpp.provider import LlamaCppProvider

    register(LlamaCppProvider)


@hookimpl
async def legion_discover_models(provider: Any) -> Any:
    from legion_llm_llamacpp.provider import LlamaCppProvider

    if isinstance(provider, LlamaCppProvider):
        return await provider.list_models()
    return None
