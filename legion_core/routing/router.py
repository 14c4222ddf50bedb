"""The router: from a request to an ordered, explained list of (provider, model) candidates.

No provider is called here. One decision is:
1. request signals (the complexity estimator and any plugin) and facts: capabilities needed,
   estimated tokens, intent, caller;
2. matching rules (precompiled, highest priority first; schedules read an injectable clock);
3. every candidate (each model of each configured provider) filtered, with the reason kept:
   exclusion, explicit choice, tier disabled, privacy/never_cloud, request constraints,
   capabilities, context window (10% headroom), discovery, memory, reachability, circuit and
   provider signals;
4. the survivors ordered by (group, tier distance, −score, strategy tie-break), where group 0
   is the explicit choice or the winning rule's target, group 1 its fallback, group 2 the rest,
   and tier distance starts at the tier the complexity asks for (cheaper-first upward, then
   downward); score = priority + health adjustment + (1 − cost_multiplier) × 10.

The cost is per candidate and per provider, so the work is arranged to do little per candidate:
candidates are built and grouped per provider when the registry's catalog changes (not per
request); a provider's models are checked together when nothing about the request can drop one
of them, and share one score unless a rule credits them; the explained `CandidateScore`s are
frozen values remembered per candidate; the chain is sorted per class of equal rank.
`bench/routing_overhead.py` measures it (docs/routing.md, "Cost of a decision").

See docs/routing.md for the behaviour in prose.
"""

from __future__ import annotations

import bisect
import datetime as dt
import operator
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ConfigDict

from legion_core.errors import ContextOverflow, NoProviderAvailable
from legion_core.log import get_logger
from legion_core.plugins.manager import call_plain, hookimpls
from legion_core.providers.base import Provider
from legion_core.providers.registry import AUTO_PRIORITY, ProviderRegistry
from legion_core.routing.complexity import estimate_complexity
from legion_core.routing.health import HealthTracker
from legion_core.routing.memory import MemoryProbe
from legion_core.routing.rules import CompiledRule, RequestFacts, build_matcher, compile_rules
from legion_core.routing.tokens import estimate_text_tokens, estimate_tokens, user_text
from legion_core.settings.models import LLMSettings
from legion_core.types import (
    CLOUD_TIERS,
    TIERS,
    CandidateScore,
    ChatRequest,
    EmbedRequest,
    ModelInfo,
    RoutingDecision,
    instance,
    is_auto_model,
)

log = get_logger("legion.router")

#: Capabilities that rank candidates but never drop them (the pipeline has a prompt fallback).
SOFT_CAPS = frozenset({"json"})
#: Output tokens assumed for cost estimates when the request sets no `max_tokens`.
DEFAULT_OUTPUT_TOKENS = 512
CONTEXT_HEADROOM = 0.9
_TIER_INDEX = {t: i for i, t in enumerate(TIERS)}
_first = operator.itemgetter(0)
_CLOUD_INDEX = _TIER_INDEX["cloud"]


def tier_index(tier: str) -> int:
    """Position in TIERS; an unknown tier counts as `cloud` (the safe side for privacy)."""
    return _TIER_INDEX.get(tier, _CLOUD_INDEX)


def is_cloud(tier: str) -> bool:
    return tier in CLOUD_TIERS or tier not in _TIER_INDEX


@dataclass(slots=True)
class _Cand:
    """One (provider, model) pair with everything the hot path needs precomputed."""

    pname: str
    provider: Provider
    model: ModelInfo
    mid: str
    full: str  # provider/model
    tier: str
    tidx: int
    cloud: bool
    caps: frozenset[str]
    limit: float  # usable context (window minus headroom)
    in_price: float
    out_price: float
    free: bool
    cm: float  # provider cost multiplier
    prio: float  # provider priority
    pref: int  # default provider first, then AUTO_PRIORITY, then configuration order
    order: int
    discovery_drop: str | None
    memory_bytes: int | None
    #: The shared `CandidateScore` this candidate last got when viable with no rule credit, by
    #: score, and when dropped, by reason: one tuple (replaced whole, so threads never see half).
    viable_cs: tuple[float, CandidateScore] | None = None
    dropped_cs: tuple[str, CandidateScore] | None = None


@dataclass(slots=True)
class _Group:
    """The chat candidates of one provider, with what lets a decision treat them together: one
    score for every candidate no rule credits, and facts that tell when no model can be dropped
    by its own facts (so the per-model checks are skipped)."""

    pname: str
    cands: list[_Cand]
    prio: float
    cm: float
    cm_points: float  # (1 − cost_multiplier) × 10, the score's cost part
    plain: bool  # no model is dropped by discovery or needs a memory check
    min_limit: float  # the smallest usable window (inf when no model has one)
    common_caps: frozenset[str]  # capabilities every model has
    tidx: int  # the tier index all its models share, or -1
    #: The shared `CandidateScore`s of `cands` (in order) for the score they last had uncredited.
    viable_cs: tuple[float, list[CandidateScore]] | None = None


def _group(pname: str, cands: list[_Cand]) -> _Group:
    c0 = cands[0]  # priority and cost multiplier are the provider's: the same for all its models
    limits = [c.limit for c in cands if c.limit]
    return _Group(pname=pname, cands=cands, prio=c0.prio, cm=c0.cm, cm_points=(1.0 - c0.cm) * 10.0,
                  plain=all(c.discovery_drop is None and c.memory_bytes is None for c in cands),
                  min_limit=min(limits) if limits else float("inf"),
                  common_caps=frozenset.intersection(*(c.caps for c in cands)),
                  tidx=c0.tidx if all(c.tidx == c0.tidx for c in cands) else -1)


@dataclass(slots=True)
class _Target:
    """An explicit or rule-given destination: any of tier/provider/model (None = any)."""

    tier: str | None
    provider: str | None
    model: str | None
    label: str

    def accepts(self, c: _Cand) -> bool:
        if self.tier is not None and c.tier != self.tier:
            return False
        if self.provider is not None and c.pname != self.provider:
            return False
        if self.model is not None and c.mid != self.model and c.full != self.model:
            return False
        return True


class FrozenCandidateScore(CandidateScore):
    """A `CandidateScore` that cannot be changed in place, because the router shares identical
    candidates between decisions (building 50 fresh pydantic objects per decision would cost more
    than the rest of the decision). Compares equal to a plain `CandidateScore` with the same values;
    use `model_copy(update=...)` to derive a changed one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CandidateScore):
            return self.__dict__ == other.__dict__
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self.__dict__.values()))


#: The chain is ordered by (class, cost or 0, preference, order), where a class is (group, tier
#: rank, −score, soft-capability miss, p50). Viable entries are kept in one list per class (the
#: classes are few: a provider's models share one), so the sort compares classes once and the
#: entries of a class mostly by their first item. An entry is (cost or 0, preference, order, then
#: the candidate, the rule that credited it, its cost and its explained `CandidateScore`);
#: `order` is unique, so sorting never compares past it.
_E_CAND, _E_RULE, _E_COST, _E_CS = 3, 4, 5, 6
_explained = operator.itemgetter(_E_CS)


@dataclass(slots=True)
class _Routed:
    decision: RoutingDecision
    #: Viable entries in chain order (see `_E_CAND`).
    entries: list[tuple[Any, ...]]
    #: Set when nothing is viable because no window the request may use is large enough.
    overflow: str | None = None


class Router:
    def __init__(self, llm: LLMSettings, registry: ProviderRegistry, health: HealthTracker, plugins: Any,
                 *, now: Callable[[], dt.datetime] | None = None,
                 memory_available: Callable[[], int | None] | None = None) -> None:
        """`now` (aware UTC datetime) and `memory_available` (bytes) are injectable for tests."""
        self.llm = llm
        self.settings = llm.routing
        self.registry = registry
        self.health = health
        self.plugins = plugins
        self.now = now or (lambda: dt.datetime.now(dt.UTC))
        self.memory_available = memory_available or MemoryProbe()
        self.memory_floor = llm.discovery.memory_floor_mb * 1024 * 1024
        self.rules: list[CompiledRule] = compile_rules(self.settings.rules)
        self._match = build_matcher(self.rules)
        self._has_schedules = any(r.schedule is not None for r in self.rules)
        # a rule that conditions on complexity needs the estimate even for a named model
        self._rules_read_complexity = any(
            r.rule.when.complexity_gte is not None or r.rule.when.complexity_lt is not None for r in self.rules)
        self._disabled_tiers = frozenset(t for t, ts in self.settings.tiers.items() if not ts.enabled)
        thresholds = self.settings.complexity_thresholds
        # Tiers by ascending threshold; the preferred tier is the last one the complexity reaches.
        self._thresholds = sorted((float(v), tier_index(t), t) for t, v in thresholds.items())
        self._rank_maps = {t: _rank_map(t) for t in TIERS}
        # `_preferred_tier` as a step function: from each distinct threshold on, its tier (the
        # lowest tier on ties), so a decision bisects instead of walking every threshold
        steps: list[tuple[float, str]] = []
        for thr, _idx, t in self._thresholds:
            if t in self._rank_maps and (not steps or thr > steps[-1][0]):
                steps.append((thr, t))
        self._pref_from = [thr for thr, _ in steps]
        self._pref_tiers = [t for _, t in steps]
        #: Per preferred tier, the rank of each tier by its index in TIERS (unknown tiers rank as cloud).
        self._ranks_by_idx = {t: tuple(m[x] for x in TIERS) for t, m in self._rank_maps.items()}
        self._rr: dict[tuple[str, ...], int] = {}
        self._catalog_key: tuple[Any, ...] | None = None
        self._chat: list[_Cand] = []
        self._embed: list[_Cand] = []
        self._providers: dict[str, Provider] = {}
        self._cs_cache: dict[tuple[Any, ...], CandidateScore] = {}
        self._accept_sets: dict[int, tuple[frozenset[str], frozenset[str]]] = {}
        #: (model, provider, tier) -> the explicit target and the catalog candidates it accepts
        self._explicit_memo: dict[tuple[Any, ...], tuple[_Target | None, frozenset[str], bool]] = {}
        #: (explicit memo key, id of a group) -> (the group, its models the target accepts, the rest)
        self._explicit_split: dict[tuple[Any, ...], tuple[_Group, list[_Cand], list[tuple[_Cand, str]]]] = {}
        self._chat_groups: list[_Group] = []
        self._next_order = 0
        for problem in self.config_warnings():
            log.warning("routing settings point at nothing", problem=problem)

    def config_warnings(self) -> list[str]:
        """Rule and alias targets that name no configured provider or known tier (likely typos)."""
        providers = set(self.registry.providers)
        tiers = set(TIERS) | {p.tier for p in self.registry.providers.values()}
        out: list[str] = []

        def check(where: str, tier: str | None, provider: str | None) -> None:
            if tier is not None and tier not in tiers:
                out.append(f"{where}: tier {tier!r} is not one of {', '.join(TIERS)}")
            if provider is not None and provider not in providers:
                out.append(f"{where}: provider {provider!r} is not configured (configured: "
                           f"{', '.join(sorted(providers)) or 'none'})")

        for i, rule in enumerate(self.settings.rules):
            where = f"llm.routing.rules.{i} ({rule.name})"
            check(where, rule.then.tier, rule.then.provider)
            fb = rule.fallback
            if fb is not None and fb not in providers and fb not in tiers and "/" not in fb and not any(
                    m.id == fb for n in providers for m in self.registry.models(n)):
                out.append(f"{where}: fallback {fb!r} is no configured provider, tier or model")
            sch = rule.schedule
            if sch is not None and sch.hours is not None:
                start, end = sch.hours
                if not (0 <= start <= 23 and 0 <= end <= 24):
                    out.append(f"{where}: schedule.hours {list(sch.hours)} must be within 0..24")
                elif start == end:
                    out.append(f"{where}: schedule.hours {list(sch.hours)} is empty: the rule never matches")
        for name, alias in self.settings.aliases.items():
            if is_auto_model(name):
                out.append(f"llm.routing.aliases.{name}: {name!r} already means \"route for me\" (like "
                           "legion/auto), so this alias is never used; rename it")
                continue
            check(f"llm.routing.aliases.{name}", alias.tier, alias.provider)
        return out

    # ================================================================ public API
    def decide(self, request: ChatRequest, *, exclude: frozenset[str] = frozenset()) -> RoutingDecision:
        """The decision the pipeline acts on. Raises `ContextOverflow` when the request fits no
        window it may use, else `NoProviderAvailable` when nothing is viable (both with the decision)."""
        routed = self._route(request, exclude, commit=True)
        d = routed.decision
        if d.provider is None:
            if routed.overflow is not None:
                raise ContextOverflow(routed.overflow, decision=d)
            raise NoProviderAvailable(_none_message(d), decision=d)
        return d

    def explain(self, request: ChatRequest) -> RoutingDecision:
        """Like `decide`, but never raises and changes no state (round-robin position)."""
        try:
            return self._route(request, frozenset(), commit=False).decision
        except Exception as e:  # noqa: BLE001 - explain must always answer
            return RoutingDecision.model_construct(
                provider=None, model=None, tier=None, rule=None, strategy=self.settings.strategy,
                reason=f"routing failed: {type(e).__name__}: {e}", complexity=None, signals={},
                estimated_tokens=0, candidates=[], compress_level=0, decision_us=0.0)

    def escalation_candidates(self, request: ChatRequest, decision: RoutingDecision) -> list[CandidateScore]:
        """Viable candidates in tiers strictly above the decision's tier, cheapest first."""
        if decision.tier is None:
            return []
        floor = tier_index(decision.tier)
        free = request.model_copy(update={"tier": None, "model": None, "provider": None})
        routed = self._route(free, frozenset(), commit=False)
        ups = [(e[_E_CAND], e[_E_COST] / 1e6) for e in routed.entries if e[_E_CAND].tidx > floor]
        ups.sort(key=lambda u: (u[0].tidx, u[1], u[0].pref, u[0].order))
        by_key = {(cs.provider, cs.model): cs for cs in routed.decision.candidates}
        return [by_key[(c.pname, c.mid)] for c, _ in ups]

    def decide_embed(self, request: EmbedRequest, *, exclude: frozenset[str] = frozenset()) -> RoutingDecision:
        """Embedding-capable models, local first then cheapest; the viable ones are the chain."""
        t0 = time.perf_counter()
        self._refresh_catalog()
        target = self._explicit(request.model, request.provider, request.tier)
        tokens = estimate_text_tokens(request.input)
        longest = max((estimate_text_tokens([t]) for t in request.input), default=0)
        strict = request.intent.privacy == "strict"
        unhealthy = self._provider_signals({c.pname: c.provider for c in self._embed})[1]
        viable: list[tuple[tuple[Any, ...], _Cand]] = []
        dropped: list[tuple[_Cand, str]] = []
        for c in self._embed:
            reason = self._provider_drop(c.pname, exclude, unhealthy) or self._model_drop(
                c, exclude, target, strict, None)
            if reason is None and c.limit and longest > c.limit:
                reason = f"an input of ~{longest} tokens exceeds its context window {c.model.context_window}"
            if reason is None:
                cost = tokens * c.in_price / 1e6 * c.cm
                viable.append(((c.tidx, cost, c.pref, c.order), c))
            else:
                dropped.append((c, reason))
        viable.sort(key=_first)
        cs = self._candidate_score
        cands = [cs(c, 0.0, None, None) for _, c in viable] + [cs(c, 0.0, None, r) for c, r in dropped]
        first = viable[0][1] if viable else None
        d = _decision(
            provider=first.pname if first else None, model=first.mid if first else None,
            tier=first.tier if first else None, rule=None, strategy="cost_optimized",
            reason=(f"embedding: {target.label}" if target else "embedding: local first, then cheapest")
            if first else "no embedding-capable candidate is viable",
            complexity=None, signals={}, estimated_tokens=tokens, candidates=cands, compress_level=0,
            decision_us=(time.perf_counter() - t0) * 1e6)
        if first is None:
            disabled = self._disabled_tiers
            largest = _largest_too_small(self._embed, longest, lambda c: not (
                (target is not None and not target.accepts(c)) or c.tier in disabled or (c.cloud and strict)
                or c.discovery_drop is not None))
            if largest is not None:
                raise ContextOverflow(
                    f"an input of ~{longest} tokens fits no embedding model: the largest context window "
                    f"is {largest} (Legion keeps 10% headroom); split the input into smaller pieces",
                    decision=d)
            raise NoProviderAvailable(_none_message(d, what="embedding model"), decision=d)
        return d

    # ================================================================ catalog
    def _refresh_catalog(self) -> None:
        """Rebuild the candidates when the registry's catalog changed (its `version` moves on every
        provider added or removed and every discovery result)."""
        reg = self.registry
        key = (reg.version, reg.default_provider)
        if key == self._catalog_key:
            return
        self._catalog_key = key
        lists = tuple(reg.models(n) for n in reg.providers)
        chat: list[_Cand] = []
        embed: list[_Cand] = []
        kinds = {k: i for i, k in enumerate(AUTO_PRIORITY)}
        order = 0
        for pos, (name, models) in enumerate(zip(reg.providers, lists, strict=True)):
            p = reg.providers[name]
            if name == reg.default_provider:
                pref = -1
            else:
                pref = kinds.get(getattr(p, "kind", ""), len(kinds)) * 1000 + pos
            discovered = reg.discovered.get(name)
            present = {m.id: m for m in discovered} if discovered is not None else None
            for m in models:
                drop = None
                if present is not None:
                    dm = present.get(m.id)
                    if dm is None:
                        drop = "not present on the provider (discovery)"
                    elif m.available is False:
                        drop = "not available on the provider (discovery)"
                tier = m.tier or p.tier
                c = _Cand(
                    pname=name, provider=p, model=m, mid=m.id, full=f"{name}/{m.id}", tier=tier,
                    tidx=tier_index(tier), cloud=is_cloud(tier), caps=frozenset(m.capabilities),
                    limit=m.context_window * CONTEXT_HEADROOM if m.context_window else 0.0,
                    in_price=m.input_price, out_price=m.output_price,
                    free=not (m.input_price or m.output_price), cm=float(p.settings.cost_multiplier),
                    prio=float(p.settings.priority), pref=pref, order=order, discovery_drop=drop,
                    memory_bytes=None if m.loaded else m.memory_bytes)
                order += 1
                if m.embedding or "embeddings" in m.capabilities:
                    embed.append(c)
                if not m.embedding:
                    chat.append(c)
        self._chat, self._embed = chat, embed
        self._next_order = order  # after every catalog candidate: a synthetic one sorts after its equals
        self._providers = dict(reg.providers)
        self._cs_cache.clear()
        self._accept_sets.clear()
        self._explicit_memo.clear()
        self._explicit_split.clear()
        groups: dict[str, list[_Cand]] = {}
        for c in chat:
            groups.setdefault(c.pname, []).append(c)
        self._chat_groups = [_group(n, cs) for n, cs in groups.items()]

    def _with_uncatalogued(self, groups: list[_Group], provider: str, model: str,
                           caps: frozenset[str]) -> list[_Group]:
        """A model the catalog does not list, named together with its provider, is taken on trust:
        a candidate with the capabilities asked for and no context-window check."""
        p = self.registry.providers.get(provider)
        if p is None:
            return groups
        out = []
        for g in groups:
            if g.pname == provider:
                if any(c.mid == model for c in g.cands):
                    return groups
                g = _group(g.pname, [*g.cands, self._synthetic(p, model, caps, g.cands[0].pref)])
            out.append(g)
        if provider not in {g.pname for g in groups}:
            out.append(_group(provider, [self._synthetic(p, model, caps, 0)]))
        return out

    def _synthetic(self, p: Provider, model: str, caps: frozenset[str], pref: int) -> _Cand:
        discovered = self.registry.discovered.get(p.name)
        drop = None
        if discovered is not None and not any(m.id == model for m in discovered):
            drop = "not present on the provider (discovery)"
        info = ModelInfo(id=model, provider=p.name, tier=p.tier, capabilities=set(caps | {"streaming"}))
        return _Cand(pname=p.name, provider=p, model=info, mid=model, full=f"{p.name}/{model}", tier=p.tier,
                     tidx=tier_index(p.tier), cloud=is_cloud(p.tier), caps=frozenset(info.capabilities),
                     limit=0.0, in_price=0.0, out_price=0.0, free=True, cm=float(p.settings.cost_multiplier),
                     prio=float(p.settings.priority), pref=pref, order=self._next_order, discovery_drop=drop,
                     memory_bytes=None)

    def _accepts_for(self, rules: list[CompiledRule]) -> dict[str, list[tuple[CompiledRule, frozenset[str]]]]:
        """Per provider, the target rules (in order) whose `then` points at some of its models, each
        with the candidates (`provider/model`) it points at (cached per catalog)."""
        out: dict[str, list[tuple[CompiledRule, frozenset[str]]]] = {}
        for r in rules:
            acc = self._accept_sets.get(r.order)
            if acc is None:
                th = r.then
                t = _Target(th.tier, th.provider, th.model, "")
                hit = [c for c in self._chat if t.accepts(c)]
                acc = self._accept_sets[r.order] = (frozenset(c.full for c in hit),
                                                    frozenset(c.pname for c in hit))
            fulls, pnames = acc
            for pn in pnames:
                out.setdefault(pn, []).append((r, fulls))
        return out

    # ================================================================ the decision
    def _request_signals(self, request: ChatRequest) -> dict[str, float]:
        signals: dict[str, float] = {}
        if hookimpls(self.plugins, "legion_request_signals"):
            try:
                results = call_plain(self.plugins, "legion_request_signals", request=request)
            except Exception as e:  # noqa: BLE001 - a broken signal plugin must not stop routing
                log.warning("request signal plugin failed", error=f"{type(e).__name__}: {e}")
                results = []
            for r in results:
                if r:
                    for k, v in r.items():
                        if k not in signals:  # the first plugin to report a usable value wins
                            v = v if k == "complexity" else _evaluated(k, v)
                            if v is not None:
                                signals[k] = v
        return signals

    def _provider_signals(self, providers: dict[str, Provider]) -> tuple[dict[str, float], dict[str, str]]:
        penalties: dict[str, float] = {}
        unhealthy: dict[str, str] = {}
        if not hookimpls(self.plugins, "legion_provider_signals"):
            return penalties, unhealthy
        for name, p in providers.items():
            try:
                results = call_plain(self.plugins, "legion_provider_signals", provider=p)
            except Exception as e:  # noqa: BLE001
                log.warning("provider signal plugin failed", provider=name, error=f"{type(e).__name__}: {e}")
                continue
            for r in results:
                for sig in (r if isinstance(r, list | tuple) else [r]):
                    if sig is None:
                        continue
                    if sig.penalty:
                        penalties[name] = penalties.get(name, 0.0) + float(sig.penalty)
                    if not sig.healthy and name not in unhealthy:
                        unhealthy[name] = f"signal {sig.name}: unhealthy" + (f" ({sig.detail})" if sig.detail else "")
        return penalties, unhealthy

    def _explicit_accepting(self, model: str | None, provider: str | None,
                            tier: str | None) -> tuple[_Target | None, frozenset[str], bool]:
        """`_explicit()`, the catalog candidates (`full` names) it accepts, and whether they all sit
        on one tier (then the complexity cannot change the order): most requests name the same few
        models, so all three are remembered per catalog (the memo is cleared with it)."""
        key = (model, provider, tier)
        hit = self._explicit_memo.get(key)
        if hit is None:
            t = self._explicit(model, provider, tier)
            fulls: frozenset[str] = frozenset()
            one_tier = False
            if t is not None:
                accepted = [c for c in self._chat if t.accepts(c)]
                fulls = frozenset(c.full for c in accepted)
                tiers: set[str | None] = {c.tier for c in accepted}
                if t.provider is not None:  # a model the catalog lacks is tried on the provider's tier
                    p = self.registry.providers.get(t.provider)
                    tiers.add(getattr(p, "tier", None) if p is not None else None)
                one_tier = len(tiers) <= 1
            if len(self._explicit_memo) >= 4096:
                self._explicit_memo.clear()
            hit = self._explicit_memo[key] = (t, fulls, one_tier)
        return hit

    def _explicit(self, model: str | None, provider: str | None, tier: str | None) -> _Target | None:
        """The caller's explicit choice (model, `provider/model`, alias, provider, tier), or None."""
        t_tier, t_prov, t_model = tier, provider, None
        labels = []
        if model is not None and not is_auto_model(model):
            alias = self.settings.aliases.get(model)
            if alias is not None:
                labels.append(f"alias {model!r}")
                t_tier = alias.tier or t_tier
                t_prov = alias.provider or t_prov
                t_model = alias.model
            else:
                t_model = model
        if t_model is not None and "/" in t_model and t_prov is None:
            prov, _, mid = t_model.partition("/")
            if prov in self.registry.providers:
                t_prov, t_model = prov, mid
        if t_model is not None and not labels:
            labels.append(f"model {t_model!r}")
        if t_prov is not None:
            labels.append(f"provider {t_prov!r}")
        if t_tier is not None:
            labels.append(f"tier {t_tier!r}")
        if t_tier is None and t_prov is None and t_model is None:
            return None
        return _Target(t_tier, t_prov, t_model, "request asks for " + ", ".join(labels))

    def _preferred_tier(self, complexity: float) -> str:
        """The tier with the highest threshold the complexity reaches (the lowest such tier on ties)."""
        i = bisect.bisect_right(self._pref_from, complexity) if complexity == complexity else 0  # NaN: none
        return self._pref_tiers[i - 1] if i else "local"

    def _provider_drop(self, pname: str, exclude: frozenset[str], unhealthy: dict[str, str],
                       allow: Any = None) -> str | None:
        """Reasons that hold for every model of a provider (computed once per decision)."""
        if pname in exclude:
            return "excluded (already tried)"
        if allow is not None and pname not in allow:
            return "provider not allowed (request constraint)"
        if self.registry.reachable.get(pname) is False:
            return "unreachable: " + (self.registry.unreachable_detail.get(pname) or "health check failed")
        blocked = self.health.blocked_reason(pname)
        if blocked is not None:
            return blocked
        return unhealthy.get(pname)

    def _memory_drop(self, c: _Cand) -> str | None:
        avail = self.memory_available()
        if avail is None or c.memory_bytes is None or c.memory_bytes <= avail - self.memory_floor:
            return None
        mb = 1024 * 1024
        return (f"does not fit in memory: needs {c.memory_bytes // mb} MB, "
                f"{max(0, avail - self.memory_floor) // mb} MB free above the {self.memory_floor // mb} MB floor")

    def _fit_drop(self, c: _Cand, hard_caps: frozenset[str], need: int) -> str | None:
        """Whether the model itself can serve the request: capabilities, window, memory."""
        if hard_caps and not hard_caps <= c.caps:
            return "lacks capability: " + ", ".join(sorted(hard_caps - c.caps))
        if c.limit and need > c.limit:
            return f"context window {c.model.context_window} too small for ~{need} tokens (10% headroom)"
        if c.memory_bytes is not None:
            return self._memory_drop(c)
        return None

    def _model_drop(self, c: _Cand, exclude: frozenset[str], target: _Target | None, strict: bool,
                    never_cloud: str | None) -> str | None:
        """Reasons specific to one model (the order here is the order explain reports them in)."""
        if exclude and c.full in exclude:
            return "excluded (already tried)"
        if target is not None and not target.accepts(c):
            return target.label
        if c.tier in self._disabled_tiers:
            return f"tier {c.tier} disabled in settings"
        if c.cloud and strict:
            return "privacy strict: never cloud"
        if c.cloud and never_cloud is not None:
            return f"never_cloud ({never_cloud})"
        if c.discovery_drop is not None:
            return c.discovery_drop
        if c.memory_bytes is not None:
            return self._memory_drop(c)
        return None

    def _route(self, request: ChatRequest, exclude: frozenset[str], *, commit: bool) -> _Routed:
        t0 = time.perf_counter()
        self._refresh_catalog()
        st = self.settings
        intent = request.intent
        strategy = "cost_optimized" if intent.cost == "minimize" else st.strategy

        # -- 1. signals and facts. The complexity only places the request among tiers: a request
        # naming a model (provider, tier) that lives on one tier, with no rule reading it, is not
        # estimated (a lazy signal stays uncalled; `complexity` is None in the decision).
        explicit, explicit_fulls, one_tier = self._explicit_accepting(request.model, request.provider,
                                                                      request.tier)
        signals = self._request_signals(request)
        lazy = signals.pop("complexity", None)
        cx: float | None = None
        if explicit is None or not one_tier or self._rules_read_complexity:
            cx = _unit(_evaluated("complexity", lazy))
            if cx is None:
                cx = estimate_complexity(user_text(request))
            signals["complexity"] = cx
        complexity = 0.0 if cx is None else cx  # a placeholder for the arithmetic that follows
        tokens = estimate_tokens(request)
        caps = frozenset(request.required_capabilities())
        hard_caps = caps - SOFT_CAPS
        soft_caps = caps & SOFT_CAPS
        facts = RequestFacts(intent.privacy, intent.capability, intent.cost, caps, complexity, tokens,
                             request.caller)

        # -- 2. rules (one generated function; see rules.build_matcher)
        now_utc = self.now() if self._has_schedules else None
        matching = self._match(facts, now_utc, {})
        target_rules = [r for r in matching if r.has_target]
        target_rule = target_rules[0] if target_rules else None
        never_cloud = next((f"rule {r.name!r}" for r in matching if r.never_cloud), None)
        constraints = request.constraints
        if never_cloud is None and constraints.get("never_cloud"):
            never_cloud = "request constraint"
        compress = request.compress_level
        if compress is None:
            compress = next((r.compress_level for r in matching if r.compress_level is not None), 0)

        # -- 3. where to start: explicit choice > winning rule > complexity
        effective = complexity
        if intent.capability == "basic":
            effective = 0.0
        elif intent.capability == "moderate":
            effective = max(complexity, st.complexity_thresholds.get("fleet", 0.35))
        elif intent.capability == "reasoning":
            effective = max(complexity, st.complexity_thresholds.get("cloud", 0.55))
        preferred = self._preferred_tier(effective)
        if not st.enabled and explicit is None and self.registry.default_provider:
            explicit = _Target(None, self.registry.default_provider, None, "routing disabled: default provider")
            explicit_fulls = frozenset(c.full for c in self._chat if explicit.accepts(c))
        rule_target = fallback = None
        if explicit is None and target_rule is not None:
            th = target_rule.then
            rule_target = _Target(th.tier, th.provider, th.model, f"rule {target_rule.name!r}")
            if target_rule.fallback:
                fallback = _fallback_target(target_rule.fallback, self.registry.providers)
            if th.tier is not None and th.tier in self._rank_maps:
                preferred = th.tier
        rank = self._ranks_by_idx.get(preferred) or self._ranks_by_idx["local"]

        # -- 4. filter, then score the survivors
        max_tier = constraints.get("max_tier") if constraints else None
        max_idx = tier_index(max_tier) if isinstance(max_tier, str) else None
        free_only = bool(constraints.get("free_only")) if constraints else False
        allow = constraints.get("providers") if constraints else None
        if isinstance(allow, str):
            allow = {allow}
        penalties, unhealthy = self._provider_signals(self._providers)
        strict = intent.privacy == "strict"
        out_tokens = request.max_tokens or DEFAULT_OUTPUT_TOKENS
        need = tokens + (request.max_tokens or 0)
        health = self.health
        assess = health.assess
        reachable = self.registry.reachable
        # the provider-wide reasons that need a look per provider only when one can apply
        gated = bool(exclude) or allow is not None or False in reachable.values()
        latency = strategy == "latency_optimized"
        cost_in_key = strategy != "round_robin"
        disabled = self._disabled_tiers
        excl_models = exclude if exclude else None
        by_class: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}  # see _E_CAND
        dropped: list[tuple[_Cand, str]] = []
        credits = self._accepts_for(target_rules) if target_rules else None
        cs = self._candidate_score
        simple = (excl_models is None and explicit is None and not disabled and not strict
                  and never_cloud is None and max_idx is None and not free_only)
        # the other common case: only the explicit target (and the per-model facts) can drop one
        explicit_only = (explicit is not None and excl_models is None and not disabled and not strict
                         and never_cloud is None and max_idx is None and not free_only)
        # the group of a candidate no rule credits (the fallback's are found per candidate)
        plain_group = 0 if explicit is not None or rule_target is None else 2
        no_fallback = fallback is None
        catalog_end = self._next_order  # candidates from here on were made up for this request
        p50 = 0.0
        groups = self._chat_groups
        if explicit is not None and explicit.provider is not None and explicit.model is not None:
            groups = self._with_uncatalogued(groups, explicit.provider, explicit.model, hard_caps)
        for g in groups:
            pname = g.pname
            # reasons that hold for every model of the provider (as `_provider_drop`)
            pwhy: str | None = None
            if gated:
                if pname in exclude:
                    pwhy = "excluded (already tried)"
                elif allow is not None and pname not in allow:
                    pwhy = "provider not allowed (request constraint)"
                elif reachable.get(pname) is False:
                    pwhy = "unreachable: " + (self.registry.unreachable_detail.get(pname) or "health check failed")
            if pwhy is None:
                pwhy, pen = assess(pname)
                if pwhy is None and unhealthy:
                    pwhy = unhealthy.get(pname)
            if pwhy is not None:
                for c in g.cands:
                    dropped.append((c, pwhy))
                continue
            if penalties:
                pen += penalties.get(pname, 0.0)
            if latency:
                p50 = health.p50(pname) or 0.0
            fits = g.plain and need <= g.min_limit and (not hard_caps or hard_caps <= g.common_caps)
            if simple and fits:
                passed = g.cands  # nothing about this request can drop one of these models
            elif explicit_only and fits and g.cands[-1].order < catalog_end:
                # the target splits a catalogued group the same way every time: remembered
                skey = (request.model, request.provider, request.tier, id(g))
                split = self._explicit_split.get(skey)
                if split is None or split[0] is not g:
                    assert explicit is not None
                    split = (g, [c for c in g.cands if c.full in explicit_fulls],
                             [(c, explicit.label) for c in g.cands if c.full not in explicit_fulls])
                    if len(self._explicit_split) >= 4096:
                        self._explicit_split.clear()
                    self._explicit_split[skey] = split
                passed = split[1]
                if split[2]:
                    dropped += split[2]
            else:
                passed = []
                for c in g.cands:
                    reason = None
                    if simple:  # the common case: only the per-model facts can drop it
                        reason = c.discovery_drop or self._fit_drop(c, hard_caps, need)
                    elif excl_models is not None and c.full in excl_models:
                        reason = "excluded (already tried)"
                    elif explicit is not None and (c.full not in explicit_fulls if c.order < catalog_end
                                                   else not explicit.accepts(c)):  # uncatalogued
                        reason = explicit.label
                    elif disabled and c.tier in disabled:
                        reason = f"tier {c.tier} disabled in settings"
                    elif c.cloud and (strict or never_cloud is not None):
                        reason = "privacy strict: never cloud" if strict else f"never_cloud ({never_cloud})"
                    elif c.discovery_drop is not None:
                        reason = c.discovery_drop
                    elif max_idx is not None and c.tidx > max_idx:
                        reason = f"above max_tier {max_tier} (request constraint)"
                    elif free_only and not c.free:
                        reason = "not free (request constraint free_only)"
                    else:
                        reason = self._fit_drop(c, hard_caps, need)
                    if reason is None:
                        passed.append(c)
                    else:
                        dropped.append((c, reason))
            # score = priority + health adjustment + (1 − cost_multiplier) × 10
            score = g.prio - pen + g.cm_points
            credit = credits.get(pname) if credits else None
            if credit is None and no_fallback and (not soft_caps or soft_caps <= g.common_caps):
                # the common case: one score, one group, no soft-capability miss for the lot
                nscore, cm = -score, g.cm
                if passed is g.cands and g.tidx >= 0:
                    memo = g.viable_cs
                    if memo is None or memo[0] != score:
                        memo = g.viable_cs = (score, [cs(c, score, None, None) for c in passed])
                    cls = (plain_group, rank[g.tidx], nscore, 0, p50)
                    entries = by_class.get(cls)
                    if entries is None:
                        entries = by_class[cls] = []
                    put = entries.append
                    for c, o in zip(passed, memo[1]):  # noqa: B905 - memo[1] was built from g.cands
                        cost = (tokens * c.in_price + out_tokens * c.out_price) * cm
                        put((cost if cost_in_key else 0.0, c.pref, c.order, c, None, cost, o))
                else:
                    for c in passed:
                        cost = (tokens * c.in_price + out_tokens * c.out_price) * cm
                        by_class.setdefault((plain_group, rank[c.tidx], nscore, 0, p50), []).append(
                            (cost if cost_in_key else 0.0, c.pref, c.order, c, None, cost, self._viable_cs(c, score)))
                continue
            for c in passed:
                credited = None
                if credit is not None:
                    for r, acc in credit:
                        if c.full in acc:
                            credited = r
                            break
                if credited is None:
                    cm = c.cm
                    c_score = score
                    group = plain_group
                else:
                    cm = c.cm * credited.cost_multiplier
                    c_score = credited.priority + c.prio - pen + (1.0 - cm) * 10.0
                    group = 0 if explicit is not None or credited is target_rule else 2
                if group == 2 and fallback is not None and fallback.accepts(c):
                    group = 1
                cost = (tokens * c.in_price + out_tokens * c.out_price) * cm
                soft = 1 if soft_caps and not soft_caps <= c.caps else 0
                o = self._viable_cs(c, c_score) if credited is None else cs(c, c_score, credited.name, None)
                by_class.setdefault((group, rank[c.tidx], -c_score, soft, p50), []).append(
                    (cost if cost_in_key else 0.0, c.pref, c.order, c, credited, cost, o))

        # -- 5. order
        classes = sorted(by_class) if len(by_class) > 1 else list(by_class)
        viable: list[tuple[Any, ...]] = []
        for k in classes:
            entries = by_class[k]
            if len(entries) > 1:
                entries.sort()
            viable += entries
        if strategy == "round_robin" and len(viable) > 1:
            head = classes[0][:3]  # round robin among the top (group, tier distance, score)
            n = 0
            for k in classes:
                if k[:3] != head:
                    break
                n += len(by_class[k])
            viable = self._rotate(viable, n, commit)
        cands: list[CandidateScore] = list(map(_explained, viable))
        add = cands.append
        for c, why in dropped:
            dmemo = c.dropped_cs
            if dmemo is not None and dmemo[0] == why:
                add(dmemo[1])
            else:
                o = cs(c, 0.0, None, why)
                c.dropped_cs = (why, o)
                add(o)
        first = viable[0] if viable else None
        chosen: _Cand | None = first[_E_CAND] if first else None
        rule_name = first[_E_RULE].name if first and first[_E_RULE] else None
        top_group = classes[0][0] if classes else None
        if chosen is not None and rule_name is None and top_group == 1 and target_rule:
            rule_name = target_rule.name
        reason = _reason(chosen, explicit, target_rule, top_group, preferred,
                         complexity, effective, strategy, intent.capability)
        overflow = None
        if chosen is None:
            reason = f"no viable candidate ({len(dropped)} considered, all dropped)"
            disabled_tiers = self._disabled_tiers

            def allowed(c: _Cand) -> bool:  # by the request's own choices and the catalog, not by health
                return not ((allow is not None and c.pname not in allow)
                            or (explicit is not None and not explicit.accepts(c)) or c.tier in disabled_tiers
                            or (c.cloud and (strict or never_cloud is not None)) or c.discovery_drop is not None
                            or (max_idx is not None and c.tidx > max_idx) or (free_only and not c.free)
                            or bool(hard_caps and not hard_caps <= c.caps))

            largest = _largest_too_small((c for g in groups for c in g.cands), need, allowed)
            if largest is not None:
                mt = request.max_tokens
                overflow = (f"the request needs ~{need} tokens (~{tokens} of input"
                            + (f" + max_tokens {mt}" if mt else "") + f") but the largest context window is "
                            f"{largest} (Legion keeps 10% headroom); shorten the input"
                            + (" or lower max_tokens" if mt else ""))
        d = _decision(
            provider=chosen.pname if chosen else None, model=chosen.mid if chosen else None,
            tier=chosen.tier if chosen else None, rule=rule_name, strategy=strategy, reason=reason,
            complexity=None if cx is None else round(cx, 4), signals=signals, estimated_tokens=tokens, candidates=cands,
            compress_level=int(compress or 0), decision_us=round((time.perf_counter() - t0) * 1e6, 1))
        return _Routed(d, viable, overflow)

    def _viable_cs(self, c: _Cand, score: float) -> CandidateScore:
        """`_candidate_score` for a viable candidate no rule credits, remembered on the candidate."""
        memo = c.viable_cs
        if memo is not None and memo[0] == score:
            return memo[1]
        o = self._candidate_score(c, score, None, None)
        c.viable_cs = (score, o)
        return o

    def _candidate_score(self, c: _Cand, score: float, rule: str | None, dropped: str | None) -> CandidateScore:
        """Candidates are values: identical ones are shared between decisions (and frozen)."""
        key = (c.full, score, rule, dropped)
        cs = self._cs_cache.get(key)
        if cs is None:
            if len(self._cs_cache) > 50_000:
                self._cs_cache.clear()
            cs = self._cs_cache[key] = _fast(FrozenCandidateScore, _CS_FIELDS, {
                "provider": c.pname, "model": c.mid, "tier": c.tier, "score": round(score, 4), "rule": rule,
                "dropped": dropped})
        return cs

    def _rotate(self, viable: list[Any], n: int, commit: bool) -> list[Any]:
        """Round robin among the first `n` (the top class: same group, tier distance and score)."""
        if n <= 1:
            return viable
        key = tuple(v[_E_CAND].full for v in viable[:n])
        i = self._rr.get(key, 0)
        if commit:
            self._rr[key] = i + 1
        i %= n
        return viable[i:n] + viable[:i] + viable[n:]


# ==================================================================== helpers
def _evaluated(name: str, v: Any) -> Any:
    """A signal's value: a lazy one (a zero-argument callable) is called now. One that raises is
    logged and counts as absent, as a failing signal plugin does."""
    if not callable(v):
        return v
    try:
        return v()
    except Exception as e:  # noqa: BLE001 - a broken signal must not stop routing
        log.warning("request signal failed", signal=name, error=f"{type(e).__name__}: {e}")
        return None


def _unit(v: Any) -> float | None:
    """A signal value clamped to [0, 1]; None (and a log line) for something that is no number."""
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        log.warning("request signal 'complexity' is not a number; using the built-in estimate", value=repr(v)[:40])
        return None
    if f != f:  # NaN
        return None
    return min(1.0, max(0.0, f))


def _rank_map(preferred: str) -> dict[str, int]:
    """Tier distance from the preferred tier: itself, then cheaper-first upward, then downward."""
    i = TIERS.index(preferred)
    order = [preferred, *TIERS[i + 1:], *reversed(TIERS[:i])]
    return {t: n for n, t in enumerate(order)}


def _fallback_target(fallback: str, providers: dict[str, Any]) -> _Target:
    if fallback in providers:
        return _Target(None, fallback, None, f"fallback provider {fallback!r}")
    if fallback in _TIER_INDEX:
        return _Target(fallback, None, None, f"fallback tier {fallback!r}")
    if "/" in fallback and fallback.partition("/")[0] in providers:
        prov, _, mid = fallback.partition("/")
        return _Target(None, prov, mid, f"fallback model {fallback!r}")
    return _Target(None, None, fallback, f"fallback model {fallback!r}")


_CS_FIELDS = frozenset(CandidateScore.model_fields)
_RD_FIELDS = frozenset(RoutingDecision.model_fields)


def _fast(cls: Any, fields: frozenset[str], values: dict[str, Any]) -> Any:
    """`model_construct` without its per-call overhead: every field is given, none validated."""
    return instance(cls, values, set(fields))


def _decision(**values: Any) -> RoutingDecision:
    return _fast(RoutingDecision, _RD_FIELDS, values)


def _reason(c: _Cand | None, explicit: _Target | None, rule: CompiledRule | None, group: int | None,
            preferred: str, complexity: float, effective: float, strategy: str,
            capability: str | None) -> str:
    if c is None:
        return ""
    if explicit is not None:
        head = explicit.label
    elif rule is not None and group == 0:
        head = f"rule {rule.name!r} (priority {rule.priority})"
    elif rule is not None and group == 1:
        head = f"rule {rule.name!r} target unavailable; its fallback {rule.fallback!r}"
    elif rule is not None:
        head = f"rule {rule.name!r} target and fallback unavailable; complexity {complexity:.2f} → {preferred}"
    else:
        head = f"complexity {complexity:.2f} → start at {preferred}"
        if capability is not None:
            head = f"intent capability {capability} (complexity {complexity:.2f}) → start at {preferred}"
    if c.tier != preferred and explicit is None and not (rule is not None and group in (0, 1)):
        head += f"; nothing viable in {preferred}, next tier {c.tier}"
    return f"{head}; {strategy}: {c.pname}/{c.mid}"


def _largest_too_small(cands: Iterable[_Cand], need: int, allowed: Callable[[_Cand], bool]) -> int | None:
    """The largest window among the allowed candidates when every one of them is too small for
    `need` tokens; None when one would fit (or none is allowed). Outages, circuits, memory and
    exclusions are not the request's fault: a model they hide that would fit makes it no overflow."""
    largest = 0
    for c in cands:
        if not allowed(c):
            continue
        if not c.limit or need <= c.limit:
            return None
        largest = max(largest, c.model.context_window)
    return largest or None


def _none_message(d: RoutingDecision, what: str = "candidate") -> str:
    if not d.candidates:
        return f"no provider is configured that could serve this request (no {what} at all)"
    reasons: dict[str, list[str]] = {}
    for c in d.candidates:
        reasons.setdefault(c.dropped or "?", []).append(f"{c.provider}/{c.model}")
    parts = [f"{r}: {', '.join(names[:3])}{' …' if len(names) > 3 else ''}" for r, names in reasons.items()]
    msg = f"no viable {what} ({len(d.candidates)} considered): " + "; ".join(parts)
    if len(reasons) == 1 and next(iter(reasons)).startswith("request asks for model"):
        known = [f"{c.provider}/{c.model}" for c in d.candidates]
        msg += f". Known models: {', '.join(known[:10])}{' …' if len(known) > 10 else ''}"
    return msg
