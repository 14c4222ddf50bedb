"""Routing rules, compiled once at router construction so matching is a few comparisons.

A rule matches when every `when` field given matches the request (AND) and, if it has a
`schedule`, the current time in the schedule's timezone falls inside it. Schedule hours are
`[start, end)` and may wrap midnight (`[22, 6]`); `days` are weekday abbreviations in that
timezone; `valid_from`/`valid_until` are absolute instants (naive ones are read in the
schedule's timezone).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from legion_core.settings.models import Rule, RuleThen, Schedule

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(slots=True)
class RequestFacts:
    """What rules match against, computed once per request."""

    privacy: str
    capability: str | None
    cost: str
    caps: frozenset[str]
    complexity: float
    tokens: int
    caller: str | None


class CompiledSchedule:
    __slots__ = ("tz", "tzname", "valid_from", "valid_until", "hours", "days")

    def __init__(self, s: Schedule) -> None:
        self.tzname = s.timezone
        self.tz = ZoneInfo(s.timezone)
        self.valid_from = _aware(s.valid_from, self.tz)
        self.valid_until = _aware(s.valid_until, self.tz)
        self.hours = tuple(s.hours) if s.hours else None
        self.days = frozenset(DAYS.index(d) for d in s.days) if s.days else None

    def active(self, now_utc: dt.datetime, local: dict[str, dt.datetime]) -> bool:
        if self.valid_from is not None and now_utc < self.valid_from:
            return False
        if self.valid_until is not None and now_utc >= self.valid_until:
            return False
        if self.hours is None and self.days is None:
            return True
        t = local.get(self.tzname)
        if t is None:
            t = local[self.tzname] = now_utc.astimezone(self.tz)
        if self.days is not None and t.weekday() not in self.days:
            return False
        if self.hours is not None:
            start, end = self.hours
            h = t.hour
            inside = (start <= h < end) if start <= end else (h >= start or h < end)
            if not inside:
                return False
        return True


def _aware(v: dt.datetime | None, tz: ZoneInfo) -> dt.datetime | None:
    if v is None:
        return None
    return v if v.tzinfo is not None else v.replace(tzinfo=tz)


class CompiledRule:
    """A rule with its `when` turned into a tuple of predicates."""

    __slots__ = ("rule", "name", "priority", "order", "checks", "schedule", "then", "has_target",
                 "never_cloud", "fallback", "cost_multiplier", "compress_level")

    def __init__(self, rule: Rule, order: int) -> None:
        self.rule = rule
        self.name = rule.name
        self.priority = rule.priority
        self.order = order
        self.checks = _compile_when(rule)
        self.schedule = CompiledSchedule(rule.schedule) if rule.schedule else None
        self.then: RuleThen = rule.then
        self.has_target = bool(rule.then.tier or rule.then.provider or rule.then.model)
        self.never_cloud = rule.constraint == "never_cloud"
        self.fallback = rule.fallback
        self.cost_multiplier = rule.cost_multiplier
        self.compress_level = rule.then.compress_level

    def matches(self, f: RequestFacts, now_utc: dt.datetime | None, local: dict[str, dt.datetime]) -> bool:
        for check in self.checks:
            if not check(f):
                return False
        if self.schedule is not None:
            assert now_utc is not None
            return self.schedule.active(now_utc, local)
        return True


def _compile_when(rule: Rule) -> tuple[Callable[[RequestFacts], bool], ...]:
    w = rule.when
    checks: list[Callable[[RequestFacts], bool]] = []
    if w.privacy is not None:
        v = w.privacy
        checks.append(lambda f: f.privacy == v)
    if w.capability is not None:
        c = w.capability
        checks.append(lambda f: f.capability == c)
    if w.cost is not None:
        cost = w.cost
        checks.append(lambda f: f.cost == cost)
    if w.requires:
        req = frozenset(w.requires)
        checks.append(lambda f: req <= f.caps)
    if w.complexity_gte is not None:
        lo = w.complexity_gte
        checks.append(lambda f: f.complexity >= lo)
    if w.complexity_lt is not None:
        hi = w.complexity_lt
        checks.append(lambda f: f.complexity < hi)
    if w.tokens_gte is not None:
        tlo = w.tokens_gte
        checks.append(lambda f: f.tokens >= tlo)
    if w.tokens_lt is not None:
        thi = w.tokens_lt
        checks.append(lambda f: f.tokens < thi)
    if w.caller is not None:
        caller = w.caller
        checks.append(lambda f: f.caller == caller)
    return tuple(checks)


def compile_rules(rules: list[Rule]) -> list[CompiledRule]:
    """Enabled rules, highest priority first (declaration order breaks ties)."""
    compiled = [CompiledRule(r, i) for i, r in enumerate(rules) if r.enabled]
    compiled.sort(key=lambda c: (-c.priority, c.order))
    return compiled


Matcher = Callable[[RequestFacts, "dt.datetime | None", dict[str, dt.datetime]], list[CompiledRule]]


def build_matcher(compiled: list[CompiledRule]) -> Matcher:
    """One generated function that tests every rule inline, in priority order.

    Calling a predicate per rule costs about a microsecond each in CPython; one flat function of
    comparisons costs a few percent of that. Constants are passed in a tuple (`K`), never
    pasted into the source, so rule values cannot inject code.
    """
    consts: list[object] = []

    def k(v: object) -> str:
        consts.append(v)
        return f"K[{len(consts) - 1}]"

    lines = ["def match(f, now, local):",
             "    privacy, capability, cost, caps = f.privacy, f.capability, f.cost, f.caps",
             "    cx, tokens, caller = f.complexity, f.tokens, f.caller",
             "    out = []", "    add = out.append"]
    for cr in compiled:
        w = cr.rule.when
        conds: list[str] = []
        if w.privacy is not None:
            conds.append(f"privacy == {k(w.privacy)}")
        if w.capability is not None:
            conds.append(f"capability == {k(w.capability)}")
        if w.cost is not None:
            conds.append(f"cost == {k(w.cost)}")
        if w.requires:
            conds.append(f"{k(frozenset(w.requires))} <= caps")
        if w.complexity_gte is not None:
            conds.append(f"cx >= {k(w.complexity_gte)}")
        if w.complexity_lt is not None:
            conds.append(f"cx < {k(w.complexity_lt)}")
        if w.tokens_gte is not None:
            conds.append(f"tokens >= {k(w.tokens_gte)}")
        if w.tokens_lt is not None:
            conds.append(f"tokens < {k(w.tokens_lt)}")
        if w.caller is not None:
            conds.append(f"caller == {k(w.caller)}")
        if cr.schedule is not None:
            conds.append(f"{k(cr.schedule)}.active(now, local)")
        ref = k(cr)
        if conds:
            lines.append(f"    if {' and '.join(conds)}:")
            lines.append(f"        add({ref})")
        else:
            lines.append(f"    add({ref})")
    lines.append("    return out")
    namespace: dict[str, object] = {"K": tuple(consts)}
    exec(compile("\n".join(lines), "<legion routing rules>", "exec"), namespace)  # noqa: S102
    return namespace["match"]  # type: ignore[return-value]
