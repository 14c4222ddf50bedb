"""The built-in model catalog: what the router may pick without calling Anthropic.

Prices are USD per million tokens (input, output) from Anthropic's public price list; context
windows are the standard (non-beta) ones. Override or extend any entry with
`llm.providers.<name>.models.<id>` in settings (see docs/providers/anthropic.md).
"""

from __future__ import annotations

from legion_core.types import ModelInfo

_ALL = {"tools", "vision", "json", "thinking", "streaming"}
_NO_THINK = _ALL - {"thinking"}

#: id: (context window, max output tokens, capabilities, input $/Mtok, output $/Mtok)
CATALOG: dict[str, tuple[int, int, set[str], float, float]] = {
    "claude-opus-4-5": (200_000, 64_000, _ALL, 5.0, 25.0),
    "claude-sonnet-4-6": (200_000, 64_000, _ALL, 3.0, 15.0),
    "claude-sonnet-4-5": (200_000, 64_000, _ALL, 3.0, 15.0),
    "claude-haiku-4-5": (200_000, 64_000, _ALL, 1.0, 5.0),
    "claude-opus-4-1": (200_000, 32_000, _ALL, 15.0, 75.0),
    "claude-sonnet-4-0": (200_000, 64_000, _ALL, 3.0, 15.0),
    "claude-3-7-sonnet-latest": (200_000, 64_000, _ALL, 3.0, 15.0),
    "claude-3-5-haiku-latest": (200_000, 8_192, _NO_THINK, 0.8, 4.0),
}

DEFAULT_MODEL = "claude-sonnet-4-5"


def static_models(provider: str, tier: str) -> list[ModelInfo]:
    return [
        ModelInfo(id=mid, provider=provider, tier=tier, context_window=ctx, max_output_tokens=out,
                  capabilities=set(caps), input_price=pin, output_price=pout)
        for mid, (ctx, out, caps, pin, pout) in CATALOG.items()
    ]
