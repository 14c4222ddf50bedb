"""The built-in model catalog: what the router may pick without calling OpenAI.

Prices are USD per million tokens (input, output) from OpenAI's public price list at the time
of writing; override or add any entry with `llm.providers.<name>.models.<id>` in settings.
"""

from __future__ import annotations

from legion_core.types import ModelInfo

_CHAT = {"tools", "vision", "json", "streaming"}
_REASON = _CHAT | {"thinking"}

#: id: (context window, max output tokens, capabilities, input $/Mtok, output $/Mtok)
CATALOG: dict[str, tuple[int, int, set[str], float, float]] = {
    "gpt-5": (400_000, 128_000, _REASON, 1.25, 10.0),
    "gpt-5-mini": (400_000, 128_000, _REASON, 0.25, 2.0),
    "gpt-5-nano": (400_000, 128_000, _REASON, 0.05, 0.40),
    "gpt-4.1": (1_047_576, 32_768, _CHAT, 2.0, 8.0),
    "gpt-4.1-mini": (1_047_576, 32_768, _CHAT, 0.40, 1.60),
    "gpt-4.1-nano": (1_047_576, 32_768, _CHAT, 0.10, 0.40),
    "gpt-4o": (128_000, 16_384, _CHAT, 2.50, 10.0),
    "gpt-4o-mini": (128_000, 16_384, _CHAT, 0.15, 0.60),
    "o3": (200_000, 100_000, _REASON, 2.0, 8.0),
    "o4-mini": (200_000, 100_000, _REASON, 1.10, 4.40),
}
#: id: (max input tokens, dimensions, input $/Mtok)
EMBEDDINGS: dict[str, tuple[int, int, float]] = {
    "text-embedding-3-small": (8_191, 1536, 0.02),
    "text-embedding-3-large": (8_191, 3072, 0.13),
}

DEFAULT_MODEL = "gpt-4o-mini"
#: Models that reason before answering: no temperature/top_p, `reasoning_effort` instead.
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def is_reasoning(model: str) -> bool:
    return model.startswith(REASONING_PREFIXES) and not model.startswith("gpt-5-chat")


def static_models(provider: str, tier: str) -> list[ModelInfo]:
    out = [ModelInfo(id=mid, provider=provider, tier=tier, context_window=ctx, max_output_tokens=mo,
                     capabilities=set(caps), input_price=pin, output_price=pout)
           for mid, (ctx, mo, caps, pin, pout) in CATALOG.items()]
    out += [ModelInfo(id=mid, provider=provider, tier=tier, context_window=ctx, capabilities={"embeddings"},
                      input_price=pin, embedding=True)
            for mid, (ctx, _dim, pin) in EMBEDDINGS.items()]
    return out
