"""The inference pipeline: one request in, one answer out, through an inspectable chain of steps.

    normalize → cache_lookup → before_guards → session_budget → route → compress
    → call (failover, tools, structured repair) → quality (escalation)
    → meter → after_guards → audit → cache_store

`Pipeline.steps` lists them; `describe()` explains them. `stream()` runs the same `pre` and
`post` steps around a streaming call. See docs/pipeline.md.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from legion_core.errors import (
    BadRequest,
    LegionError,
    NoProviderAvailable,
    ProviderError,
    RequestRefused,
    StreamInterrupted,
)
from legion_core.hooktypes import QualityCheck, RequestContext
from legion_core.log import get_logger, scrub
from legion_core.pipeline import structured
from legion_core.pipeline.audit import AuditLog
from legion_core.pipeline.cache import ResponseCache
from legion_core.pipeline.metering import Meter, estimate_tokens
from legion_core.pipeline.steps import (
    DEFAULT_STEPS,
    Step,
    Turn,
    audit_row,
    candidates_of,
    normalize,
    tool_turn,
)
from legion_core.pipeline.writer import BatchWriter
from legion_core.plugins.manager import call_order
from legion_core.types import (
    Attempt,
    CandidateScore,
    ChatRequest,
    ChatResponse,
    DoneChunk,
    EmbedRequest,
    EmbedResponse,
    ErrorChunk,
    Message,
    ModelInfo,
    RouteChunk,
    RoutingDecision,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    ToolResult,
    ToolSpec,
    ToolUseBlock,
    Usage,
    UsageChunk,
    build,
    set_fields,
)

log = get_logger("legion.pipeline")


async def _maybe_await(v: Any) -> Any:
    return await v if inspect.isawaitable(v) else v


def _err_text(e: BaseException) -> str:
    return scrub(f"{type(e).__name__}: {e}")


# ====================================================================== guards
class Guards:
    """Runs `legion_before_chat` / `legion_after_chat` implementations one by one, in pluggy's
    order (tryfirst first), feeding each the previous one's result."""

    def __init__(self, plugins: Any) -> None:
        self.plugins = plugins

    def _impls(self, hook_name: str) -> list[Any] | None:
        order = call_order(self.plugins, hook_name)
        if order and getattr(self.plugins, "_trace_undo", None) is not None:  # LEGION_TRACE_PLUGINS
            names = ",".join(i.plugin_name for i in order)
            print(f"[legion trace] {hook_name} -> {names} (chained)", file=sys.stderr)
        return order

    async def before(self, request: ChatRequest, context: RequestContext) -> ChatRequest:
        impls = self._impls("legion_before_chat")
        if impls is None:
            for r in self.plugins.hook.legion_before_chat(request=request, context=context):
                request = await _maybe_await(r) or request
            return request
        for impl in impls:
            args = {"request": request, "context": context}
            r = await _maybe_await(impl.function(*[args[a] for a in impl.argnames]))
            if r is not None:
                if not isinstance(r, ChatRequest):
                    raise TypeError(f"guard {impl.plugin_name!r} returned {type(r).__name__}, "
                                    "expected a ChatRequest or None")
                request = r
        return request

    async def after(self, request: ChatRequest, response: ChatResponse,
                    context: RequestContext) -> ChatResponse:
        impls = self._impls("legion_after_chat")
        if impls is None:
            for r in self.plugins.hook.legion_after_chat(request=request, response=response,
                                                         context=context):
                response = await _maybe_await(r) or response
            return response
        for impl in impls:
            args = {"request": request, "response": response, "context": context}
            r = await _maybe_await(impl.function(*[args[a] for a in impl.argnames]))
            if r is not None:
                response = r
        return response


# ====================================================================== quality
class QualityChecks:
    """The named checks registered through `legion_quality_checks`, selected by settings."""

    def __init__(self, legion: Any) -> None:
        self.legion = legion
        self.registered: dict[str, Callable[..., Any]] = {}
        legion.plugins.hook.legion_quality_checks(register=self._register)
        self._warned: set[str] = set()

    def _register(self, name: str, fn: Callable[..., Any]) -> None:
        self.registered[name] = fn

    def run(self, request: ChatRequest, response: ChatResponse,
            extra: QualityCheck | None = None) -> list[str]:
        esc = self.legion.settings.llm.routing.escalation
        failures: list[str] = []
        for name in esc.checks:
            fn = self.registered.get(name)
            if fn is None:
                if name not in self._warned:
                    self._warned.add(name)
                    log.warning("unknown quality check in llm.routing.escalation.checks", check=name,
                                known=", ".join(sorted(self.registered)))
                continue
            if name == "too_short":
                failures += fn(request, response, min_length=esc.min_length)
            else:
                failures += fn(request, response) or []
        if extra is not None:
            r = extra(request, response)
            if r is False:
                failures.append("quality_check")
            elif isinstance(r, list | tuple):
                failures += [str(x) for x in r]
            elif isinstance(r, str) and r:
                failures.append(r)
        return failures


# ====================================================================== pipeline
class Pipeline:
    def __init__(self, legion: Any, steps: list[Step] | None = None) -> None:
        self.legion = legion
        self.writer = BatchWriter(legion.store)
        self.cache = ResponseCache(legion.store, legion.settings.llm.cache, self.writer)
        self.audit = AuditLog(legion.store, self.writer)
        self.meter = Meter(legion)
        self.guards = Guards(legion.plugins)
        self.quality = QualityChecks(legion)
        self.steps: list[Step] = steps if steps is not None else [cls() for cls in DEFAULT_STEPS]
        #: Tools plugins offer (`legion_register_tools`), by name; executed via `legion_dispatch_tool`.
        self.tools: dict[str, ToolSpec] = {}
        legion.plugins.hook.legion_register_tools(register=self._register_tool)

    def _register_tool(self, spec: ToolSpec) -> None:
        if not isinstance(spec, ToolSpec):
            raise TypeError(f"legion_register_tools: register() takes a ToolSpec, got {type(spec).__name__}")
        self.tools[spec.name] = spec

    def complete_tools(self, request: ChatRequest) -> ChatRequest:
        """A request tool given by name only (no description, no parameters) that a plugin
        registered gets the plugin's full definition, so callers can say `ToolSpec(name="get_time")`."""
        if not request.tools or not self.tools:
            return request
        out, changed = [], False
        for t in request.tools:
            reg = self.tools.get(t.name)
            if reg is not None and not t.description and not t.parameters.get("properties"):
                out.append(reg)
                changed = True
            else:
                out.append(t)
        return request.model_copy(update={"tools": out}) if changed else request

    # ------------------------------------------------------------ lifecycle
    @property
    def settings(self) -> Any:
        return self.legion.settings

    async def start(self) -> None:
        self.writer.start()

    async def close(self) -> None:
        self.writer.close()
        self.cache.close()

    def describe(self) -> list[dict[str, Any]]:
        """The steps in order, with what each does (for `legion pipeline` and docs)."""
        return [s.describe() for s in self.steps]

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def context_for(self, request: ChatRequest, context: RequestContext | None) -> RequestContext:
        router = self.legion.router
        if context is None:
            return RequestContext(request_id=request.request_id, caller=request.caller,
                                  route_preview=getattr(router, "explain", None),
                                  state=self.legion.state)
        if context.state is None:
            context.state = self.legion.state
        if context.route_preview is None:
            context.route_preview = getattr(router, "explain", None)
        return context

    # ------------------------------------------------------------ chat
    async def chat(self, request: ChatRequest, context: RequestContext | None = None, *,
                   quality_check: QualityCheck | None = None) -> ChatResponse:
        """Answer one request. Raises typed `LegionError`s; every request is audited."""
        turn = Turn(request=request, context=self.context_for(request, context),
                    quality_check=quality_check)
        try:
            for step in self.steps:
                if step.applies(turn):
                    waiting = step.run(self, turn)  # a step that never waits is a plain function
                    if waiting is not None:
                        await waiting
        except BaseException as e:
            self._audit_failure(turn, e)
            raise
        assert turn.response is not None
        return turn.response

    async def run_phase(self, turn: Turn, phase: str) -> None:
        for step in self.steps:
            if step.phase == phase and step.applies(turn):
                waiting = step.run(self, turn)
                if waiting is not None:
                    await waiting

    def audit_turn(self, turn: Turn) -> None:
        if turn.audited:
            return
        turn.audited = True
        try:
            self.audit.record(audit_row(turn))
        except Exception as e:  # noqa: BLE001 - auditing must never fail a request
            log.warning("audit row could not be queued", error=_err_text(e))

    def _audit_failure(self, turn: Turn, e: BaseException) -> None:
        if turn.audited:
            return
        if isinstance(e, LegionError):
            turn.status = "refused" if isinstance(e, RequestRefused) else "error"
            turn.error = scrub(f"{e.kind}: {e}")
            if not turn.attempts:
                turn.attempts = list(getattr(e, "attempts", None) or [])
        else:
            turn.status = "error"
            turn.error = _err_text(e)
        self.audit_turn(turn)

    # ------------------------------------------------------------ routing
    async def route(self, request: ChatRequest) -> RoutingDecision:
        router = self.legion.router
        if router is None:
            raise NoProviderAvailable("no router is configured (is Legion started?)")
        decision = await _maybe_await(router.decide(request))
        if not (decision.provider and decision.model) and not decision.viable():
            dropped = "; ".join(f"{c.provider}/{c.model}: {c.dropped}" for c in decision.candidates)
            raise NoProviderAvailable(
                "no provider can serve this request" + (f" ({dropped})" if dropped else
                                                        " (no provider is configured)"),
                decision=decision)
        return decision

    async def escalation_candidates(self, request: ChatRequest,
                                    decision: RoutingDecision) -> list[CandidateScore]:
        fn = getattr(self.legion.router, "escalation_candidates", None)
        if fn is None:
            return []
        return list(await _maybe_await(fn(request, decision)))

    def model_info(self, provider: str, model: str) -> ModelInfo | None:
        reg = self.legion.registry
        if provider not in reg:
            return None
        for m in reg.models(provider):
            if m.id == model:
                return m
        return None

    # ------------------------------------------------------------ provider call
    def request_for(self, req: ChatRequest, cand: CandidateScore) -> ChatRequest:
        """Per-candidate adjustments: JSON via prompt when the model has no native JSON mode."""
        if structured.wants_json(req):
            info = self.model_info(cand.provider, cand.model)
            if info is None or "json" not in info.capabilities:
                return structured.prompt_fallback(req)
        return req

    async def call(self, turn: Turn, candidates: list[CandidateScore],
                   req: ChatRequest) -> ChatResponse:
        """The first candidate that answers, failing over on `ProviderError.failover`."""
        health = self.legion.health
        reg = self.legion.registry
        for cand in candidates:
            provider = reg.providers.get(cand.provider)
            if provider is None:
                turn.attempts.append(Attempt(provider=cand.provider, model=cand.model, tier=cand.tier,
                                             outcome="skipped", error="provider not configured"))
                continue
            if health is not None and not health.allow(cand.provider):
                why = health.blocked_reason(cand.provider) if hasattr(health, "blocked_reason") else None
                turn.attempts.append(Attempt(provider=cand.provider, model=cand.model, tier=cand.tier,
                                             outcome="skipped", error=why or "circuit open"))
                continue
            t0 = time.perf_counter()
            try:
                resp = await provider.chat(self.request_for(req, cand), cand.model)
            except ProviderError as e:
                ms = (time.perf_counter() - t0) * 1000
                self._failed(turn, cand, e.kind, _err_text(e), ms, getattr(e, "retry_after", None))
                if not e.failover:
                    raise
                continue
            except LegionError:
                raise
            except Exception as e:  # noqa: BLE001 - a provider plugin bug: try the next one
                ms = (time.perf_counter() - t0) * 1000
                self._failed(turn, cand, "internal", _err_text(e), ms, None)
                log.warning("provider raised an untyped error", provider=cand.provider,
                            error=_err_text(e))
                continue
            ms = (time.perf_counter() - t0) * 1000
            if health is not None:
                health.record_success(cand.provider, ms)
            turn.attempts.append(build(Attempt, {"provider": cand.provider, "model": cand.model,
                                                 "tier": cand.tier, "outcome": "ok",
                                                 "duration_ms": round(ms, 3)}))
            set_fields(resp, {"provider": cand.provider, "model": resp.model or cand.model,
                              "tier": cand.tier or getattr(provider, "tier", "")})
            return resp
        raise NoProviderAvailable(self._all_failed(turn), decision=turn.decision,
                                  attempts=list(turn.attempts))

    def _failed(self, turn: Turn, cand: CandidateScore, kind: str, text: str, ms: float,
                retry_after: float | None) -> None:
        turn.attempts.append(Attempt(provider=cand.provider, model=cand.model, tier=cand.tier,
                                     outcome="failed", error=text, error_kind=kind,
                                     duration_ms=round(ms, 3)))
        if self.legion.health is not None:
            self.legion.health.record_failure(cand.provider, kind, retry_after)

    @staticmethod
    def _all_failed(turn: Turn) -> str:
        tried = [f"{a.provider}/{a.model}: {a.error_kind or a.outcome}" for a in turn.attempts]
        return "every candidate failed" + (f" ({'; '.join(tried)})" if tried else " (none was usable)")

    async def answer(self, turn: Turn, candidates: list[CandidateScore]) -> ChatResponse:
        """`call` plus the tool loop and the structured-output repair."""
        req = turn.routed_request or turn.request
        resp = await self.call(turn, candidates, req)
        usage = resp.usage
        loops = 0
        limit = self.settings.llm.tool_loop_limit
        while req.tools and loops < limit and resp.tool_calls:
            results = await self.dispatch_round(resp.tool_calls, turn.context)
            if results is None:
                break  # calls for the caller's own tools: it executes them
            if not loops:  # the totals over the loop's calls, in a Usage of their own
                usage = Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                              estimated=usage.estimated)
            loops += 1
            req = tool_turn(req, resp, results)
            candidates = self._answered_first(candidates, resp)
            resp = await self.call(turn, candidates, req)
            usage.input_tokens += resp.usage.input_tokens
            usage.output_tokens += resp.usage.output_tokens
        if loops:
            resp.usage = usage
        turn.routed_request = req
        if structured.wants_json(req) and not resp.tool_calls:
            _, errors = structured.check(req, resp)
            if errors:
                fix = structured.repair_request(req, resp, errors)
                resp2 = await self.call(turn, self._answered_first(candidates, resp), fix)
                _, errors2 = structured.check(req, resp2)
                resp2.usage = Usage(input_tokens=resp.usage.input_tokens + resp2.usage.input_tokens,
                                    output_tokens=resp.usage.output_tokens + resp2.usage.output_tokens,
                                    estimated=resp.usage.estimated or resp2.usage.estimated)
                resp = resp2
                escalating = (turn.request.escalate or self.settings.llm.routing.escalation.enabled
                              or turn.quality_check is not None)
                if errors2 and not escalating:
                    raise structured.StructuredOutputInvalid(
                        "the model's answer does not match the JSON schema after one repair attempt: "
                        + "; ".join(errors2[:5]), errors=errors2, text=resp.text)
        return resp

    async def dispatch_round(self, calls: list[ToolCall], context: RequestContext) -> list[ToolResult] | None:
        """Every call's result, or None to hand the whole round to the caller, decided before
        anything runs where it can be: a round whose tools are all registered by plugins
        (`legion_register_tools`) runs every call (one no plugin executes gets an error result),
        and a round mixing registered tools with others runs none. Otherwise a half-run round
        would hand the caller calls of which some already ran, and the model, never seeing
        their results, would call them again. A round with no registered tool is offered to
        the dispatchers call by call (plugins that execute tools they do not register) and goes
        back to the caller at the first call none of them takes."""
        n_registered = sum(c.name in self.tools for c in calls)
        if 0 < n_registered < len(calls):
            return None
        declared = n_registered > 0
        hook = self.legion.plugins.hook.legion_dispatch_tool
        results: list[ToolResult] = []
        for c in calls:
            r = await _maybe_await(hook(call=c, context=context))
            if r is None:
                if not declared:
                    return None
                r = ToolResult(tool_use_id=c.id, is_error=True,
                               content=f"tool {c.name!r} is registered, but no plugin executed this call")
            results.append(r)
        return results

    @staticmethod
    def _answered_first(candidates: list[CandidateScore], resp: ChatResponse) -> list[CandidateScore]:
        first = [c for c in candidates if c.provider == resp.provider and c.model == resp.model]
        return first + [c for c in candidates if c not in first]

    # ------------------------------------------------------------ stream
    async def stream(self, request: ChatRequest, context: RequestContext | None = None,
                     ) -> AsyncIterator[Any]:
        """Same pipeline, streamed: `RouteChunk`, provider deltas as they arrive, `DoneChunk`
        (whose `.response` is the assembled answer). A break after the first token ends the
        stream with an `ErrorChunk`."""
        turn = Turn(request=request, context=self.context_for(request, context), stream=True)
        try:
            await self.run_phase(turn, "pre")
        except BaseException as e:
            self._audit_failure(turn, e)
            raise
        if turn.cache_hit:
            assert turn.response is not None
            await self.run_phase(turn, "post")
            r = turn.response
            yield RouteChunk(provider=r.provider, model=r.model, tier="tier-0", cache_hit=True,
                             request_id=turn.request.request_id)
            if r.thinking:
                yield ThinkingDelta(thinking=r.thinking)
            if r.text:
                yield TextDelta(text=r.text)
            yield DoneChunk(stop_reason=r.stop_reason, response=r)
            return
        assert turn.decision is not None
        req = turn.routed_request or turn.request
        req = req.model_copy(update={"stream": True}) if not req.stream else req
        health = self.legion.health
        reg = self.legion.registry
        for cand in candidates_of(turn.decision):
            provider = reg.providers.get(cand.provider)
            if provider is None:
                continue
            if health is not None and not health.allow(cand.provider):
                why = health.blocked_reason(cand.provider) if hasattr(health, "blocked_reason") else None
                turn.attempts.append(Attempt(provider=cand.provider, model=cand.model, tier=cand.tier,
                                             outcome="skipped", error=why or "circuit open"))
                continue
            t0 = time.perf_counter()
            agen = provider.stream(self.request_for(req, cand), cand.model).__aiter__()
            try:
                first = await agen.__anext__()
            except StopAsyncIteration:
                first = None
            except (GeneratorExit, asyncio.CancelledError):
                await _close_quietly(agen)
                turn.status, turn.error = "error", "cancelled: the client went away before the first token"
                self.audit_turn(turn)
                raise
            except ProviderError as e:
                self._failed(turn, cand, e.kind, _err_text(e), (time.perf_counter() - t0) * 1000,
                             getattr(e, "retry_after", None))
                if not e.failover:
                    self._audit_failure(turn, e)
                    raise
                continue
            except LegionError as e:
                self._audit_failure(turn, e)
                raise
            except Exception as e:  # noqa: BLE001 - plugin bug before the first token: fail over
                self._failed(turn, cand, "internal", _err_text(e), (time.perf_counter() - t0) * 1000,
                             None)
                continue
            asm = _Assembler(cand, getattr(provider, "tier", ""))
            error: BaseException | None = None
            try:
                yield RouteChunk(provider=cand.provider, model=cand.model, tier=cand.tier,
                                 request_id=turn.request.request_id)
                if first is not None:
                    out = asm.add(first)
                    if out is not None:
                        yield out
                async for chunk in agen:
                    out = asm.add(chunk)
                    if out is not None:
                        yield out
            except Exception as e:  # noqa: BLE001 - after the first token: end with an ErrorChunk
                error = e
            except (GeneratorExit, asyncio.CancelledError):
                # the consumer went away (client disconnected): not the provider's fault
                turn.status, turn.error = "error", "cancelled: the client stopped reading the stream"
                turn.response = asm.response()
                turn.response.stop_reason = "error"
                turn.attempts.append(Attempt(provider=cand.provider, model=cand.model, tier=cand.tier,
                                             outcome="failed", error_kind="cancelled",
                                             error="the client stopped reading",
                                             duration_ms=round((time.perf_counter() - t0) * 1000, 3)))
                self.audit_turn(turn)
                raise
            finally:
                if error is not None or asm.done is None:
                    await _close_quietly(agen)
            ms = (time.perf_counter() - t0) * 1000
            if error is not None:
                self._failed(turn, cand, StreamInterrupted.kind, _err_text(error), ms, None)
                turn.status, turn.error = "error", scrub(f"stream_interrupted: {error}")
                turn.response = asm.response()
                turn.response.stop_reason = "error"
                self.audit_turn(turn)
                yield ErrorChunk(message=scrub(f"the upstream stream from {cand.provider} broke after "
                                               f"it started: {StreamInterrupted.__name__}: {error}"),
                                 kind="stream_interrupted")
                return
            if health is not None:
                health.record_success(cand.provider, ms)
            turn.attempts.append(Attempt(provider=cand.provider, model=cand.model, tier=cand.tier,
                                         outcome="ok", duration_ms=round(ms, 3)))
            turn.response = asm.response()
            try:
                await self.run_phase(turn, "post")
            except Exception as e:  # noqa: BLE001 - the tokens are out: report it in-band
                self._audit_failure(turn, e)
                yield ErrorChunk(message=scrub(str(e)), kind=getattr(e, "kind", "internal"))
                return
            yield DoneChunk(stop_reason=turn.response.stop_reason, response=turn.response)
            return
        e2 = NoProviderAvailable(self._all_failed(turn), decision=turn.decision,
                                 attempts=list(turn.attempts))
        self._audit_failure(turn, e2)
        raise e2

    # ------------------------------------------------------------ embed
    async def embed(self, request: EmbedRequest) -> EmbedResponse:
        """Routed to embedding-capable candidates (`router.decide_embed`), failing over in order."""
        if not request.input:
            raise BadRequest("embed input must contain at least one text")
        t_start = time.perf_counter()
        router = self.legion.router
        if router is None or not hasattr(router, "decide_embed"):
            raise NoProviderAvailable("no router is configured for embeddings (is Legion started?)")
        decision = await _maybe_await(router.decide_embed(request))
        cands = candidates_of(decision) if isinstance(decision, RoutingDecision) else list(decision)
        turn = Turn(request=ChatRequest(messages=[Message(role="user", content="(embeddings)")],
                                        request_id=request.request_id, caller=request.caller,
                                        intent=request.intent),
                    context=RequestContext(request_id=request.request_id, caller=request.caller),
                    decision=decision if isinstance(decision, RoutingDecision) else None)
        health = self.legion.health
        try:
            for cand in cands:
                provider = self.legion.registry.providers.get(cand.provider)
                if provider is None:
                    continue
                if health is not None and not health.allow(cand.provider):
                    turn.attempts.append(Attempt(provider=cand.provider, model=cand.model,
                                                 tier=cand.tier, outcome="skipped", error="circuit open"))
                    continue
                t0 = time.perf_counter()
                try:
                    resp = await provider.embed(list(request.input), cand.model)
                except ProviderError as e:
                    self._failed(turn, cand, e.kind, _err_text(e), (time.perf_counter() - t0) * 1000,
                                 getattr(e, "retry_after", None))
                    if not e.failover:
                        raise
                    continue
                ms = (time.perf_counter() - t0) * 1000
                if health is not None:
                    health.record_success(cand.provider, ms)
                turn.attempts.append(Attempt(provider=cand.provider, model=cand.model, tier=cand.tier,
                                             outcome="ok", duration_ms=round(ms, 3)))
                resp.provider = cand.provider
                resp.model = resp.model or cand.model
                resp.tier = cand.tier
                if not resp.usage.input_tokens:
                    resp.usage = Usage(input_tokens=sum(estimate_tokens(t) for t in request.input),
                                       estimated=True)
                turn.response = ChatResponse(provider=resp.provider, model=resp.model, tier=resp.tier,
                                             usage=resp.usage)
                turn.response.cost_usd = self.meter.cost(resp.provider, resp.model, resp.usage)
                turn.started = t_start
                self.audit_turn(turn)
                return resp
            raise NoProviderAvailable("no embedding provider answered" + (
                f" ({'; '.join(f'{a.provider}/{a.model}: {a.error_kind or a.outcome}' for a in turn.attempts)})"
                if turn.attempts else " (no embedding-capable candidate)"),
                decision=turn.decision, attempts=list(turn.attempts))
        except BaseException as e:
            self._audit_failure(turn, e)
            raise


async def _close_quietly(agen: Any) -> None:
    aclose = getattr(agen, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # noqa: BLE001 - closing a broken upstream may fail again
            pass


# ====================================================================== stream assembly
class _Assembler:
    """Builds the final ChatResponse from stream chunks; returns what to forward."""

    def __init__(self, cand: CandidateScore, tier: str) -> None:
        self.cand = cand
        self.tier = cand.tier or tier
        self.text: list[str] = []
        self.thinking: list[str] = []
        self.signature: str | None = None  # Anthropic signs thinking; replays need it intact
        self.tools: dict[int, dict[str, Any]] = {}
        self.usage: Usage | None = None
        self.done: DoneChunk | None = None

    def add(self, chunk: Any) -> Any:
        if isinstance(chunk, TextDelta):
            self.text.append(chunk.text)
        elif isinstance(chunk, ThinkingDelta):
            self.thinking.append(chunk.thinking)
            self.signature = getattr(chunk, "signature", None) or self.signature
        elif isinstance(chunk, ToolCallDelta):
            t = self.tools.setdefault(chunk.index, {"id": None, "name": None, "args": []})
            t["id"] = chunk.id or t["id"]
            t["name"] = chunk.name or t["name"]
            t["args"].append(chunk.arguments_delta)
        elif isinstance(chunk, UsageChunk):
            self.usage = chunk.usage
        elif isinstance(chunk, DoneChunk):
            self.done = chunk
            if chunk.response is not None and self.usage is None and (
                    chunk.response.usage.input_tokens or chunk.response.usage.output_tokens):
                self.usage = chunk.response.usage
            return None  # the pipeline sends its own, with the assembled response
        elif isinstance(chunk, RouteChunk):
            return None
        return chunk

    def response(self) -> ChatResponse:
        content: list[Any] = []
        if self.thinking:
            content.append(ThinkingBlock(thinking="".join(self.thinking), signature=self.signature))
        if self.text:
            content.append(TextBlock(text="".join(self.text)))
        for i in sorted(self.tools):
            t = self.tools[i]
            raw = "".join(t["args"])
            try:
                args = json.loads(raw) if raw.strip() else {}
            except ValueError:
                args = {"_raw": raw}
            content.append(ToolUseBlock(id=t["id"] or f"call_{i}", name=t["name"] or "", input=args))
        stop = self.done.stop_reason if self.done else "end_turn"
        if self.tools and stop == "end_turn":
            stop = "tool_use"
        return ChatResponse(provider=self.cand.provider, model=self.cand.model, tier=self.tier,
                            content=content, stop_reason=stop, usage=self.usage or Usage())


__all__ = ["Pipeline", "Guards", "QualityChecks", "normalize"]
