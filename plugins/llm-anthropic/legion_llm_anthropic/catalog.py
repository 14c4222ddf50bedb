"""The built-in model catalog: what the router may pick without calling Anthropic.

Ids are the API aliases the `anthropic` SDK knows; context windows, output limits and prices
(USD per million tokens, input/output) follow Anthropic's public models overview and price list
at the time of writing. They drift: override or extend any entry with
`llm.providers.<name>.models.<id>` in settings (see docs/providers/anthropic.md).

`thinking` says how a model takes extended thinking: "enabled" (a manual `budget_tokens`) or
"adaptive" (the model decides; newer models deprecate the manual budget).
"""

from __future__ import annotations

from dataclasses import dataclass

from legion_core.types import ModelInfo

_ALL = frozenset({"tools", "vision", "json", "thinking", "streaming"})


@dataclass(frozen=True)
class Entry:
    context_window: int
    max_output: int
    input_price: float
    output_price: float
    thinking: str = "enabled"
    capabilities: frozenset[str] = _ALL


CATALOG: dict[str, Entry] = {
    "claude-opus-5-5": Entry(1_000_000, 128_000, 4.0, 20.0, "adaptive"),
    "claude-sonnet-5-5": Entry(1_000_000, 128_000, 2.0, 10.0, "adaptive"),
    "claude-haiku-5-5": Entry(1_000_000, 128_000, 0.10, 0.50, "adaptive"),
    "claude-fable-5-1": Entry(1_000_000, 128_000, 10.0, 50.0, "adaptive"),
    "claude-opus-4-7": Entry(1_000_000, 128_000, 5.0, 25.0, "adaptive"),
    "claude-opus-4-6": Entry(1_000_000, 128_000, 5.0, 25.0, "adaptive"),
    "claude-sonnet-4-6": Entry(1_000_000, 64_000, 3.0, 15.0),
    "claude-haiku-4-5": Entry(200_000, 64_000, 1.0, 5.0),
    "claude-opus-4-5": Entry(200_000, 64_000, 5.0, 25.0),
    "claude-sonnet-4-5": Entry(200_000, 64_000, 3.0, 15.0),
}

DEFAULT_MODEL = "claude-sonnet-4-6"


def thinking_mode(model: str) -> str:
    """How `model` takes thinking; unknown ids (dated snapshots, new models) use the manual budget
    unless they share a catalog alias's prefix."""
    if model in CATALOG:
        return CATALOG[model].thinking
    for mid, e in CATALOG.items():
        if model.startswith(mid + "-"):  # a dated snapshot such as claude-opus-4-6-20260205
            return e.thinking
    return "enabled"


def static_models(provider: str, tier: str) -> list[ModelInfo]:
    return [
        ModelInfo(id=mid, provider=provider, tier=tier, context_window=e.context_window,
                  max_output_tokens=e.max_output, capabilities=set(e.capabilities),
                  input_price=e.input_price, output_price=e.output_price)
        for mid, e in CATALOG.items()
    ]


def lookup(model_id: str) -> tuple[str, Entry] | None:
    """The catalog alias (and entry) for an id: the alias itself, or a dated snapshot of it."""
    if model_id in CATALOG:
        return model_id, CATALOG[model_id]
    for mid, e in CATALOG.items():
        if model_id.startswith(mid + "-"):
            return mid, e
    return None


def conservative_price(model_id: str, line: str | None = None) -> tuple[float, float]:
    """A price for a model the catalog does not know yet: the dearest known model of its line
    (opus, sonnet, haiku, ...), else the dearest of all. Over-estimating keeps a cost-optimizing
    router from mistaking an unknown model for a free one."""
    line = line or next((w for w in model_id.split("-") if w.isalpha() and w != "claude"), None)
    same = [e for mid, e in CATALOG.items() if line and f"-{line}-" in f"{mid}-"]
    pool = same or list(CATALOG.values())
    best = max(pool, key=lambda e: (e.output_price, e.input_price))
    return best.input_price, best.output_price
