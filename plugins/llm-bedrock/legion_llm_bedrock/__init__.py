"""Legion plugin `llm-bedrock`: Amazon Bedrock (Converse / ConverseStream, SigV4 or API key)."""

from __future__ import annotations

from typing import Any

from legion_core.hookspecs import hookimpl

__all__ = ["BedrockProvider"]


def __getattr__(name: str) -> Any:
    if name == "BedrockProvider":
        from legion_llm_bedrock.provider import BedrockProvider

        return BedrockProvider
    raise AttributeError(name)


@hookimpl
def legion_register_providers(register: Any) -> None:
    from legion_llm_bedrock.provider import BedrockProvider

    register(BedrockProvider)
