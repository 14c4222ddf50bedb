"""Prometheus metrics, written by hand (text exposition format 0.0.4, no client library).

The gateway records per request: a counter by dialect/status/provider/model/tier/cache, a
latency histogram, tokens, cost, cache hits and failovers. Recording is a few dict updates
(no locks: one event loop writes). `gauges` is a process-wide registry any plugin can write
to — e.g. a budget guard publishing how much of a budget is spent::

    from legion_core.server.metrics import gauges
    gauges.set("legion_budget_used_ratio", 0.83, {"scope": "daily"},
               help="Fraction of the budget spent")
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from typing import Any

#: Seconds. Covers cache hits (sub-ms) to slow frontier answers.
LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                                      2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
#: Milliseconds of gateway overhead (everything but the upstream call).
OVERHEAD_BUCKETS_MS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0)


def _esc(v: Any) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple[Any, ...]) -> str:
    if not names:
        return ""
    return "{" + ",".join(f'{n}="{_esc(v)}"' for n, v in zip(names, values, strict=True)) + "}"


def _num(v: float) -> str:
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


class Counter:
    def __init__(self, name: str, help: str, labels: tuple[str, ...]) -> None:
        self.name, self.help, self.labelnames = name, help, labels
        self.values: dict[tuple[Any, ...], float] = {}

    def inc(self, labels: tuple[Any, ...], by: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + by

    def get(self, labels: tuple[Any, ...]) -> float:
        return self.values.get(labels, 0.0)

    def render(self, out: list[str]) -> None:
        out.append(f"# HELP {self.name} {self.help}")
        out.append(f"# TYPE {self.name} counter")
        for lv, v in self.values.items():
            out.append(f"{self.name}{_labels(self.labelnames, lv)} {_num(v)}")


class Histogram:
    def __init__(self, name: str, help: str, labels: tuple[str, ...], buckets: tuple[float, ...]) -> None:
        self.name, self.help, self.labelnames, self.buckets = name, help, labels, buckets
        # per label set: [count per bucket (non-cumulative)..., +Inf count, sum]
        self.values: dict[tuple[Any, ...], list[float]] = {}

    def observe(self, labels: tuple[Any, ...], value: float) -> None:
        row = self.values.get(labels)
        if row is None:
            row = self.values[labels] = [0.0] * (len(self.buckets) + 2)
        row[bisect.bisect_left(self.buckets, value)] += 1
        row[-1] += value

    def count(self, labels: tuple[Any, ...]) -> int:
        row = self.values.get(labels)
        return int(sum(row[:-1])) if row else 0

    def render(self, out: list[str]) -> None:
        out.append(f"# HELP {self.name} {self.help}")
        out.append(f"# TYPE {self.name} histogram")
        names = self.labelnames + ("le",)
        for lv, row in self.values.items():
            acc = 0.0
            for i, b in enumerate(self.buckets):
                acc += row[i]
                out.append(f"{self.name}_bucket{_labels(names, lv + (_num(b) if b >= 1 else repr(b),))} {_num(acc)}")
            acc += row[len(self.buckets)]
            out.append(f"{self.name}_bucket{_labels(names, lv + ('+Inf',))} {_num(acc)}")
            out.append(f"{self.name}_sum{_labels(self.labelnames, lv)} {_num(row[-1])}")
            out.append(f"{self.name}_count{_labels(self.labelnames, lv)} {_num(acc)}")


class GaugeRegistry:
    """Gauges any plugin may set (thread-safe), plus lazily computed ones (`register`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        self._help: dict[str, str] = {}
        self._funcs: dict[str, Callable[[], dict[tuple[tuple[str, str], ...], float] | float]] = {}
        self._text: dict[str, Callable[[], str]] = {}

    def set(self, name: str, value: float, labels: dict[str, str] | None = None, help: str = "") -> None:
        if not name.replace("_", "").replace(":", "").isalnum() or name[0].isdigit():
            raise ValueError(f"invalid metric name {name!r}: use letters, digits, '_' and ':'")
        key = tuple(sorted((labels or {}).items()))
        with self._lock:
            self._values.setdefault(name, {})[key] = float(value)
            if help or name not in self._help:
                self._help[name] = help or name

    def remove(self, name: str, labels: dict[str, str] | None = None) -> None:
        with self._lock:
            if labels is None:
                self._values.pop(name, None)
                self._funcs.pop(name, None)
                self._text.pop(name, None)
            else:
                self._values.get(name, {}).pop(tuple(sorted(labels.items())), None)

    def register(self, name: str, func: Callable[[], Any], help: str = "") -> None:
        """A gauge computed at scrape time: `func()` returns a number or {label-tuple: number}."""
        with self._lock:
            self._funcs[name] = func
            self._help[name] = help or name

    def add_collector(self, name: str, render: Callable[[], str]) -> None:
        """A plugin that keeps its own registry: `render()` returns Prometheus text (with its
        HELP/TYPE lines), appended to every scrape. E.g. a budget guard:
        `gauges.add_collector("budget", REGISTRY.render_prometheus)`."""
        with self._lock:
            self._text[name] = render

    def get(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self._values.get(name, {}).get(tuple(sorted((labels or {}).items())))

    def render(self, out: list[str]) -> None:
        with self._lock:
            values = {k: dict(v) for k, v in self._values.items()}
            funcs = dict(self._funcs)
            helps = dict(self._help)
            texts = dict(self._text)
        for name, fn in funcs.items():
            try:
                got = fn()
            except Exception:  # noqa: BLE001 - a broken gauge must not break the scrape
                continue
            values[name] = got if isinstance(got, dict) else {(): float(got)}
        for name, series in sorted(values.items()):
            out.append(f"# HELP {name} {helps.get(name, name)}")
            out.append(f"# TYPE {name} gauge")
            for key, v in series.items():
                lbl = "{" + ",".join(f'{k}="{_esc(val)}"' for k, val in key) + "}" if key else ""
                out.append(f"{name}{lbl} {_num(v)}")
        for render in texts.values():
            try:
                text = render()
            except Exception:  # noqa: BLE001 - a broken collector must not break the scrape
                continue
            if text:
                out.append(text.rstrip("\n"))


#: The process-wide gauge registry (budget warnings, GPU load, queue depths...).
gauges = GaugeRegistry()

_ROUTE = ("provider", "model", "tier")


class Metrics:
    """The gateway's own counters. One per app."""

    def __init__(self) -> None:
        self.requests = Counter("legion_requests_total", "Requests answered by the gateway",
                                ("dialect", "endpoint", "status", "provider", "model", "tier", "cache"))
        self.latency = Histogram("legion_request_duration_seconds",
                                 "Time from request received to response complete",
                                 ("dialect", "provider", "model", "tier"), LATENCY_BUCKETS)
        self.overhead = Histogram("legion_gateway_overhead_ms",
                                  "Gateway time spent outside the upstream call, in milliseconds",
                                  ("dialect",), OVERHEAD_BUCKETS_MS)
        self.tokens = Counter("legion_tokens_total", "Tokens by direction",
                              _ROUTE + ("direction",))
        self.cost = Counter("legion_cost_usd_total", "Spend in USD", _ROUTE)
        self.cache_hits = Counter("legion_cache_hits_total", "Requests answered from the tier-0 cache",
                                  _ROUTE)
        self.failovers = Counter("legion_failovers_total",
                                 "Provider attempts that failed and were failed over", _ROUTE + ("kind",))
        self.escalations = Counter("legion_escalations_total", "Responses that needed escalation",
                                   _ROUTE)
        self.errors = Counter("legion_errors_total", "Requests that failed, by error kind",
                              ("dialect", "endpoint", "status", "kind"))
        self.in_flight = 0

    def observe_chat(self, dialect: str, endpoint: str, status: int, resp: Any, seconds: float,
                     overhead_ms: float | None) -> None:
        """Record one routed answer (`resp` is a ChatResponse)."""
        route = (resp.provider, resp.model, resp.tier)
        cache = "hit" if resp.cache_hit else "miss"
        self.requests.inc((dialect, endpoint, status) + route + (cache,))
        self.latency.observe((dialect,) + route, seconds)
        if overhead_ms is not None:
            self.overhead.observe((dialect,), overhead_ms)
        u = resp.usage
        if u.input_tokens:
            self.tokens.inc(route + ("input",), u.input_tokens)
        if u.output_tokens:
            self.tokens.inc(route + ("output",), u.output_tokens)
        if resp.cost_usd:
            self.cost.inc(route, resp.cost_usd)
        if resp.cache_hit:
            self.cache_hits.inc(route)
        for a in resp.attempts:
            if a.outcome == "failed":
                self.failovers.inc((a.provider, a.model, a.tier, a.error_kind or "unknown"))
        if resp.escalated:
            self.escalations.inc(route)

    def observe_other(self, dialect: str, endpoint: str, status: int, seconds: float,
                      provider: str = "", model: str = "", tier: str = "") -> None:
        self.requests.inc((dialect, endpoint, status, provider, model, tier, ""))
        self.latency.observe((dialect, provider, model, tier), seconds)

    def observe_error(self, dialect: str, endpoint: str, status: int, kind: str, seconds: float) -> None:
        self.requests.inc((dialect, endpoint, status, "", "", "", ""))
        self.errors.inc((dialect, endpoint, status, kind))

    def render(self, legion: Any = None) -> bytes:
        out: list[str] = []
        for m in (self.requests, self.latency, self.overhead, self.tokens, self.cost, self.cache_hits,
                  self.failovers, self.escalations, self.errors):
            m.render(out)
        out.append("# HELP legion_requests_in_flight Requests being served now")
        out.append("# TYPE legion_requests_in_flight gauge")
        out.append(f"legion_requests_in_flight {self.in_flight}")
        if legion is not None:
            _render_providers(legion, out)
        gauges.render(out)
        out.append("")
        return "\n".join(out).encode()


def _render_providers(legion: Any, out: list[str]) -> None:
    reg = getattr(legion, "registry", None)
    if reg is None:
        return
    out.append("# HELP legion_provider_up 1 if the provider was reachable at the last check, 0 if "
               "not, -1 if not checked yet")
    out.append("# TYPE legion_provider_up gauge")
    for name in reg.names():
        r = reg.reachable.get(name)
        v = -1 if r is None else int(bool(r))
        out.append(f'legion_provider_up{{provider="{_esc(name)}",tier="{_esc(reg.providers[name].tier)}"}} {v}')
