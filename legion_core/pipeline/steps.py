"""The pipeline's steps: small, named, each doing one thing to a `Turn`.

A `Turn` is one request's journey. Steps run in order; each may be skipped (`applies`) for a
cache hit or a `system` caller. Streaming runs the same `pre` and `post` steps around its own
streaming call; `call` and `quality` are the non-streaming middle.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from legion_core.errors import BadRequest, EscalationExhausted, NoProviderAvailable
from legion_core.hooktypes import QualityCheck, RequestContext
from legion_core.pipeline import cache as tier0
from legion_core.pipeline import structured
from legion_core.pipeline.audit import build_row
from legion_core.pipeline.compression import compress_request
from legion_core.pipeline.metering import ensure_usage
from legion_core.types import (
    Attempt,
    CandidateScore,
    ChatRequest,
    ChatResponse,
    Message,
    RoutingDecision,
    ToolUseBlock,
    is_auto_model,
    set_fields,
)

if TYPE_CHECKING:
    from legion_core.pipeline.pipeline import Pipeline

Phase = Literal["pre", "call", "post"]


@dataclass
class Turn:
    """Everything the steps know about one request."""

    request: ChatRequest
    context: RequestContext
    quality_check: QualityCheck | None = None
    stream: bool = False
    started: float = field(default_factory=time.perf_counter)
    #: What is sent to providers (after compression; grows during a tool loop).
    routed_request: ChatRequest | None = None
    decision: RoutingDecision | None = None
    response: ChatResponse | None = None
    attempts: list[Attempt] = field(default_factory=list)
    cache_key: str | None = None
    cacheable: bool = False
    cache_hit: bool = False
    max_cost_usd: float = 0.0
    status: str = "ok"
    error: str | None = None
    audited: bool = False

    @property
    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0


class Step:
    """One stage. Subclasses set `name` and `phase` and implement `run`."""

    name: ClassVar[str] = "step"
    phase: ClassVar[Phase] = "pre"
    #: Steps that make no sense once the answer came from the cache.
    skip_on_cache_hit: ClassVar[bool] = True

    def applies(self, turn: Turn) -> bool:
        return not (self.skip_on_cache_hit and turn.cache_hit)

    def run(self, p: Pipeline, turn: Turn) -> Awaitable[None] | None:  # pragma: no cover - abstract
        """Do the step's work. A coroutine function (`async def`) for a step that waits (guards,
        the provider call); a plain function for one that never does, which the pipeline then
        calls without creating and driving a coroutine (most steps: it runs on every request)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        doc = (type(self).__doc__ or "").strip().splitlines()
        return {"name": self.name, "phase": self.phase, "doc": doc[0] if doc else "",
                "skip_on_cache_hit": self.skip_on_cache_hit}

    def __repr__(self) -> str:
        return f"<Step {self.name}>"


# ====================================================================== pre
class Normalize(Step):
    """Validate the request and give it one canonical shape (system messages into `system`,
    tools named by plugins completed from `legion_register_tools`)."""

    name = "normalize"

    def run(self, p: Pipeline, turn: Turn) -> None:
        turn.request = p.complete_tools(normalize(turn.request, turn.context))


def normalize(req: ChatRequest, context: RequestContext | None = None) -> ChatRequest:
    if not req.messages:
        raise BadRequest("messages must contain at least one message")
    if req.max_escalations < 0:
        raise BadRequest("max_escalations must be 0 or more")
    if req.compress_level is not None and not 0 <= req.compress_level <= 3:
        raise BadRequest(f"compress_level must be 0-3, got {req.compress_level}")
    upd: dict[str, Any] = {}
    if req.model is not None and is_auto_model(req.model):
        upd["model"] = None
    sys_parts = [m.text for m in req.messages if m.role == "system"]
    if sys_parts:
        upd["messages"] = [m for m in req.messages if m.role != "system"]
        if not upd["messages"]:
            raise BadRequest("messages must contain a user message, not only system messages")
        upd["system"] = "\n\n".join(([req.system] if req.system else []) + sys_parts)
    if context is not None and not req.caller and context.caller:
        upd["caller"] = context.caller
    return req.model_copy(update=upd) if upd else req


class CacheLookup(Step):
    """Tier 0: answer an identical earlier request from the exact-match cache."""

    name = "cache_lookup"

    def run(self, p: Pipeline, turn: Turn) -> None:
        ok, _why = tier0.cacheable(turn.request, p.settings.llm.cache)
        turn.cacheable = ok
        if not ok:
            return
        turn.cache_key = tier0.cache_key(turn.request)
        hit = p.cache.get(turn.cache_key)
        if hit is None:
            return
        turn.cache_hit = True
        turn.decision = RoutingDecision(provider=hit.provider, model=hit.model, tier="tier-0",
                                        rule="tier-0", reason="exact-match cache hit")
        turn.response = hit.model_copy(update={
            "request_id": turn.request.request_id, "tier": "tier-0", "cache_hit": True,
            "cost_usd": 0.0, "attempts": [], "escalated": False, "escalation_history": [],
            "final_resolution": "tier-0 cache hit"})


class BeforeGuards(Step):
    """`legion_before_chat` guards, in order; each sees the previous one's request. Skipped for
    `profile="system"` callers."""

    name = "before_guards"

    def applies(self, turn: Turn) -> bool:
        return super().applies(turn) and turn.request.profile != "system"

    async def run(self, p: Pipeline, turn: Turn) -> None:
        turn.request = await p.guards.before(turn.request, turn.context)


class SessionBudget(Step):
    """Refuse a request whose session has spent `llm.session.token_budget`."""

    name = "session_budget"

    def run(self, p: Pipeline, turn: Turn) -> None:
        p.meter.check_session_budget(turn.request)


class Route(Step):
    """Ask the router where the request goes (candidates in order, each dropped one says why)."""

    name = "route"

    async def run(self, p: Pipeline, turn: Turn) -> None:
        turn.decision = await p.route(turn.request)


class Compress(Step):
    """Prompt compression at the rule's or the request's `compress_level` (0-3)."""

    name = "compress"

    def run(self, p: Pipeline, turn: Turn) -> None:
        level = turn.request.compress_level
        if level is None:
            level = turn.decision.compress_level if turn.decision else 0
        turn.routed_request = compress_request(turn.request, level or 0)


# ====================================================================== call
class Call(Step):
    """Call the chosen provider, failing over down the candidates; run the tool loop and the
    structured-output repair."""

    name = "call"
    phase = "call"

    async def run(self, p: Pipeline, turn: Turn) -> None:
        assert turn.decision is not None
        turn.response = await p.answer(turn, candidates_of(turn.decision))


class Quality(Step):
    """Quality checks; on failure escalate to `router.escalation_candidates` (when escalation is
    on), recording every attempt."""

    name = "quality"
    phase = "call"

    def applies(self, turn: Turn) -> bool:
        return super().applies(turn) and turn.response is not None

    async def run(self, p: Pipeline, turn: Turn) -> None:
        esc = p.settings.llm.routing.escalation
        req = turn.request
        active = req.escalate or esc.enabled or turn.quality_check is not None
        if not active:
            return
        limit = req.max_escalations if req.escalate else esc.max_escalations
        assert turn.response is not None and turn.decision is not None
        resp = turn.response
        t0 = turn.started
        failures = p.quality.run(req, resp, turn.quality_check)
        history = [_hist(resp, failures, (time.perf_counter() - t0) * 1000)]
        tried = {(a.provider, a.model) for a in turn.attempts}
        escalations = 0
        while failures:
            if escalations >= limit:
                raise EscalationExhausted(
                    f"every attempt failed its quality checks ({escalations} escalation(s), "
                    f"max_escalations={limit})", history=history)
            cands = [c for c in await p.escalation_candidates(req, turn.decision)
                     if (c.provider, c.model) not in tried and c.dropped is None]
            if not cands:
                raise EscalationExhausted(
                    "quality checks failed and no more capable candidate is left "
                    f"(tried {', '.join(f'{a}/{b}' for a, b in sorted(tried))})", history=history)
            escalations += 1
            t0 = time.perf_counter()
            n_before = len(turn.attempts)
            try:
                resp = await p.answer(turn, cands)
            except NoProviderAvailable as e:
                for a in turn.attempts[n_before:]:
                    history.append(a)
                raise EscalationExhausted(f"escalation failed: {e}", history=history) from e
            for a in turn.attempts[n_before:]:
                tried.add((a.provider, a.model))
            failures = p.quality.run(req, resp, turn.quality_check)
            history.append(_hist(resp, failures, (time.perf_counter() - t0) * 1000))
        resp.escalated = escalations > 0
        resp.escalation_history = history
        resp.final_resolution = (
            "passed quality checks on the first attempt" if not escalations else
            f"escalated {escalations} time(s); {resp.provider}/{resp.model} ({resp.tier}) passed")
        turn.response = resp


def _hist(resp: ChatResponse, failures: list[str], ms: float) -> Attempt:
    return Attempt(provider=resp.provider, model=resp.model, tier=resp.tier,
                   outcome="quality_failed" if failures else "ok", failures=failures,
                   duration_ms=round(ms, 3))


# ====================================================================== post
class AfterGuards(Step):
    """`legion_after_chat` guards (also for cache hits); skipped for `system` callers."""

    name = "after_guards"
    phase = "post"
    skip_on_cache_hit = False

    def applies(self, turn: Turn) -> bool:
        return turn.response is not None and turn.request.profile != "system"

    async def run(self, p: Pipeline, turn: Turn) -> None:
        assert turn.response is not None
        turn.response = await p.guards.after(turn.request, turn.response, turn.context)


class Meter(Step):
    """Usage (estimated when the provider gave none), cost, max cost, the session's tokens."""

    name = "meter"
    phase = "post"
    skip_on_cache_hit = False

    def run(self, p: Pipeline, turn: Turn) -> None:
        resp = turn.response
        assert resp is not None
        usage = ensure_usage(turn.routed_request or turn.request, resp)
        meter = p.meter
        if turn.cache_hit:
            cost = 0.0
            turn.max_cost_usd = meter.cost(resp.provider, resp.model, usage)
        else:
            cost = meter.cost(resp.provider, resp.model, usage)
            turn.max_cost_usd = meter.max_cost(turn.decision, usage, floor=cost)
            meter.charge_session(turn.request, usage)
        fields = {"usage": usage, "cost_usd": cost, "request_id": turn.request.request_id,
                  "routing": turn.decision, "latency_ms": round(turn.elapsed_ms, 3)}
        if not turn.cache_hit:
            fields["attempts"] = list(turn.attempts)
        set_fields(resp, fields)


class Audit(Step):
    """Queue the audit row (committed in batches off the request path)."""

    name = "audit"
    phase = "post"
    skip_on_cache_hit = False

    def run(self, p: Pipeline, turn: Turn) -> None:
        if turn.response is not None:
            turn.response.latency_ms = round(turn.elapsed_ms, 3)
        p.audit_turn(turn)


class CacheStore(Step):
    """Remember a complete answer in tier 0 under the normalized request's key."""

    name = "cache_store"
    phase = "post"

    def applies(self, turn: Turn) -> bool:
        return (super().applies(turn) and turn.cacheable and turn.cache_key is not None
                and turn.response is not None and turn.status == "ok")

    def run(self, p: Pipeline, turn: Turn) -> None:
        assert turn.response is not None and turn.cache_key is not None
        if tier0.storable(turn.response) and not any(isinstance(b, ToolUseBlock) for b in turn.response.content):
            p.cache.put(turn.cache_key, turn.response)


DEFAULT_STEPS: tuple[type[Step], ...] = (
    Normalize, CacheLookup, BeforeGuards, SessionBudget, Route, Compress, Call, Quality,
    # metering runs before the after-chat guards: the hook contract promises them usage and cost
    Meter, AfterGuards, Audit, CacheStore,
)


# ====================================================================== helpers
def candidates_of(decision: RoutingDecision) -> list[CandidateScore]:
    """Viable candidates, the chosen one first (one pass: comparing candidates by value was a
    pydantic `__eq__` per candidate, ten of them for `legion/auto` over one catalog)."""
    provider, model = decision.provider, decision.model
    first: list[CandidateScore] = []
    rest: list[CandidateScore] = []
    for c in decision.viable():
        (first if c.provider == provider and c.model == model else rest).append(c)
    if not first and decision.provider and decision.model:
        first = [CandidateScore(provider=decision.provider, model=decision.model,
                                tier=decision.tier or "", rule=decision.rule)]
    return first[:1] + rest + first[1:]


def audit_row(turn: Turn, dialect: str = "native") -> tuple[Any, ...]:
    return build_row(request=turn.request, response=turn.response, decision=turn.decision,
                     attempts=turn.attempts, latency_ms=turn.elapsed_ms, status=turn.status,
                     error=turn.error, max_cost_usd=turn.max_cost_usd,
                     dialect=turn.context.dialect or dialect, stream=turn.stream,
                     caller=turn.request.caller or turn.context.caller)


def tool_turn(req: ChatRequest, resp: ChatResponse, results: list[Any]) -> ChatRequest:
    """The request extended with the assistant's tool calls and their results."""
    from legion_core.types import ToolResultBlock

    blocks: list[Any] = [ToolResultBlock(tool_use_id=r.tool_use_id, content=r.content, is_error=r.is_error)
                         for r in results]
    msgs = [*req.messages, Message(role="assistant", content=list(resp.content)),
            Message(role="user", content=blocks)]
    return req.model_copy(update={"messages": msgs})


def wants_structured(req: ChatRequest) -> bool:
    return structured.wants_json(req)
