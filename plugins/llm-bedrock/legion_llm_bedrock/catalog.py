"""What Legion knows about Bedrock models without calling AWS: context windows, capabilities,
prices (USD per million tokens, on-demand, US regions) and whether the id needs a cross-region
inference profile prefix (`us.`, `eu.`, `apac.`).

Users override or extend any entry with `llm.providers.<name>.models` in settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from legion_core.types import ModelInfo

CHAT = frozenset({"streaming", "tools"})
CLAUDE = frozenset({"streaming", "tools", "vision", "thinking"})


@dataclass(frozen=True)
class Entry:
    id: str
    context_window: int
    max_output: int
    input_price: float
    output_price: float
    capabilities: frozenset[str]
    #: Served through a geography prefix (inference profile) rather than the bare model id.
    profile: bool = True
    embedding: bool = False


CATALOG: tuple[Entry, ...] = (
    Entry("anthropic.claude-sonnet-4-6-v1", 200_000, 64_000, 3.0, 15.0, CLAUDE),
    Entry("anthropic.claude-opus-4-5-20251101-v1:0", 200_000, 64_000, 5.0, 25.0, CLAUDE),
    Entry("anthropic.claude-sonnet-4-5-20250929-v1:0", 200_000, 64_000, 3.0, 15.0, CLAUDE),
    Entry("anthropic.claude-haiku-4-5-20251001-v1:0", 200_000, 64_000, 1.0, 5.0, CLAUDE),
    Entry("anthropic.claude-3-5-haiku-20241022-v1:0", 200_000, 8_192, 0.8, 4.0, CHAT),
    Entry("amazon.nova-premier-v1:0", 1_000_000, 32_000, 2.5, 12.5, CHAT | {"vision"}),
    Entry("amazon.nova-pro-v1:0", 300_000, 10_000, 0.8, 3.2, CHAT | {"vision"}),
    Entry("amazon.nova-lite-v1:0", 300_000, 10_000, 0.06, 0.24, CHAT | {"vision"}),
    Entry("amazon.nova-micro-v1:0", 128_000, 10_000, 0.035, 0.14, CHAT),
    Entry("meta.llama3-3-70b-instruct-v1:0", 128_000, 8_192, 0.72, 0.72, CHAT),
    Entry("mistral.mistral-large-2407-v1:0", 128_000, 8_192, 2.0, 6.0, CHAT, profile=False),
    Entry("amazon.titan-embed-text-v2:0", 8_192, 0, 0.02, 0.0, frozenset({"embeddings"}), profile=False,
          embedding=True),
)

GEO_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "global.", "jp.", "au.", "ca.")


def geo_prefix(region: str) -> str:
    """The inference-profile geography for a region: us-east-2 → "us", eu-west-1 → "eu"."""
    if region.startswith("us-gov-"):
        return "us-gov"
    head = region.split("-", 1)[0]
    return {"ap": "apac"}.get(head, head)


def base_id(model_id: str) -> str:
    """`us.anthropic.claude-...` → `anthropic.claude-...` (ARNs are returned unchanged)."""
    for p in GEO_PREFIXES:
        if model_id.startswith(p):
            return model_id[len(p):]
    return model_id


def lookup(model_id: str) -> Entry | None:
    b = base_id(model_id)
    return next((e for e in CATALOG if e.id == b), None)


def published_models(region: str, prefix: str | None = None, tier: str = "cloud") -> list[ModelInfo]:
    geo = prefix if prefix is not None else geo_prefix(region)
    out = []
    for e in CATALOG:
        mid = f"{geo}.{e.id}" if e.profile and geo else e.id
        out.append(ModelInfo(id=mid, tier=tier, context_window=e.context_window,
                             max_output_tokens=e.max_output or None, capabilities=set(e.capabilities),
                             input_price=e.input_price, output_price=e.output_price, embedding=e.embedding))
    return out
