"""Metering: tokens and money.

Usage comes from the provider; when it is absent it is estimated (~4 characters a token)
and marked `usage.estimated`. Cost uses the model's catalog prices (USD per million tokens),
overridden by `llm.pricing` keyed `provider/model` or `model`. `max_cost_usd` prices the same
tokens on the most expensive viable candidate: the difference is what routing saved.
"""

from __future__ import annotations

import math
from typing import Any

from legion_core.errors import RequestRefused
from legion_core.types import ChatRequest, ChatResponse, RoutingDecision, ToolUseBlock, Usage

CHARS_PER_TOKEN = 4.0


def estimate_tokens(text: str) -> int:
    return int(math.ceil(len(text) / CHARS_PER_TOKEN)) if text else 0


def estimate_input_tokens(request: ChatRequest) -> int:
    parts = [request.system or ""]
    parts += [m.text for m in request.messages]
    parts += [t.name + t.description + str(t.parameters) for t in request.tools]
    # a few tokens of framing per message, as chat templates add
    return sum(estimate_tokens(p) for p in parts) + 4 * len(request.messages)


def estimate_output_tokens(response: ChatResponse) -> int:
    n = estimate_tokens(response.text) + estimate_tokens(response.thinking)
    for b in response.content:
        if isinstance(b, ToolUseBlock):
            n += estimate_tokens(b.name + str(b.input))
    return n


def ensure_usage(request: ChatRequest, response: ChatResponse) -> Usage:
    """The provider's usage, or an estimate marked `estimated` when it reported none."""
    u = response.usage
    if u.input_tokens or u.output_tokens:
        return u
    return Usage(input_tokens=estimate_input_tokens(request),
                 output_tokens=estimate_output_tokens(response), estimated=True)


class Meter:
    def __init__(self, legion: Any) -> None:
        self.legion = legion
        #: provider -> (the registry's catalog list it was built from, {model: (in, out)}).
        self._catalog: dict[str, tuple[list[Any], dict[str, tuple[float, float]]]] = {}
        #: (provider, model) -> prices, valid while `_prices_key` holds (the pricing overrides
        #: and the catalog lists it was read from): `max_cost` prices every viable candidate.
        self._prices: dict[tuple[str, str], tuple[float, float]] = {}
        self._prices_key: tuple[Any, ...] = ()

    def _catalog_prices(self, provider: str) -> dict[str, tuple[float, float]]:
        """Prices by model id, rebuilt only when the registry's catalog list changes (discovery)."""
        models = self.legion.registry.models(provider)
        hit = self._catalog.get(provider)
        if hit is None or hit[0] is not models:
            hit = (models, {m.id: (m.input_price, m.output_price) for m in models})
            self._catalog[provider] = hit
        return hit[1]

    @property
    def _llm(self) -> Any:
        return self.legion.settings.llm

    def prices(self, provider: str, model: str) -> tuple[float, float]:
        """(input, output) USD per million tokens for this provider's model."""
        pricing = self._llm.pricing
        key = (id(pricing), len(pricing), self.legion.registry.version)
        if key != self._prices_key:
            self._prices.clear()
            self._prices_key = key
        hit = self._prices.get((provider, model))
        if hit is None:
            hit = self._lookup_prices(provider, model)
            if len(self._prices) < 10_000:
                self._prices[(provider, model)] = hit
        return hit

    def _lookup_prices(self, provider: str, model: str) -> tuple[float, float]:
        pricing = self._llm.pricing
        for key in (f"{provider}/{model}", model):
            p = pricing.get(key)
            if p is not None:
                return p.input, p.output
        if provider in self.legion.registry:
            return self._catalog_prices(provider).get(model, (0.0, 0.0))
        return 0.0, 0.0

    def cost(self, provider: str, model: str, usage: Usage) -> float:
        pin, pout = self.prices(provider, model)
        return (usage.input_tokens * pin + usage.output_tokens * pout) / 1_000_000

    def max_cost(self, decision: RoutingDecision | None, usage: Usage, floor: float = 0.0) -> float:
        best = floor
        if decision is not None:
            for c in decision.viable():
                best = max(best, self.cost(c.provider, c.model, usage))
        return best

    # -------------------------------------------------- session budget
    def session_key(self, session_id: str) -> str:
        return f"session_tokens:{session_id}"

    def check_session_budget(self, request: ChatRequest) -> None:
        budget = self._llm.session.token_budget
        state = self.legion.state
        if not budget or not request.session_id or state is None:
            return
        used = float(state.get(self.session_key(request.session_id), 0.0) or 0.0)
        if used >= budget:
            raise RequestRefused(
                f"session {request.session_id!r} has used its token budget "
                f"({int(used)} of {budget} tokens; raise llm.session.token_budget or start a new session)",
                status=429, session_id=request.session_id)

    def charge_session(self, request: ChatRequest, usage: Usage) -> None:
        if request.session_id and self.legion.state is not None and self._llm.session.token_budget:
            self.legion.state.incr(self.session_key(request.session_id), float(usage.total_tokens))
