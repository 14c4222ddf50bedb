"""Budget gauges for `/metrics`.

The guard writes here (cheap, thread-safe). At startup the plugin calls `publish()`, which
registers each series with the gateway's process-wide gauge registry
(`legion_core.server.metrics.gauges.register(name, func)`), so `GET /metrics` renders them at
scrape time. Without the gateway, read `REGISTRY.samples()` or `render_prometheus()`. Names:

- `legion_budget_spend_usd{limit=...}`: spend so far in the current period for each limit;
- `legion_budget_limit_usd{limit=...}`: the configured limit;
- `legion_budget_warning{limit=...}`: 1 once the warning threshold was crossed this period;
- `legion_budget_downgrades_total`, `legion_budget_blocks_total`: requests downgraded/refused.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

HELP = {
    "legion_budget_spend_usd": ("gauge", "Spend in the current budget period, per limit (USD)."),
    "legion_budget_limit_usd": ("gauge", "Configured budget limit (USD)."),
    "legion_budget_warning": ("gauge", "1 when the warning threshold was crossed this period."),
    "legion_budget_downgrades_total": ("counter", "Requests downgraded to a free tier by the budget."),
    "legion_budget_blocks_total": ("counter", "Requests refused by the budget."),
}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


class GaugeRegistry:
    def __init__(self) -> None:
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._lock = threading.Lock()

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._values[(name, tuple(sorted(labels.items())))] = float(value)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def get(self, name: str, **labels: str) -> float | None:
        with self._lock:
            return self._values.get((name, tuple(sorted(labels.items()))))

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def series(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        """One metric's values by label tuple (the shape the gateway's `gauges.register` wants)."""
        with self._lock:
            return {lab: v for (n, lab), v in self._values.items() if n == name}

    def samples(self) -> list[Sample]:
        with self._lock:
            return [Sample(n, lab, v) for (n, lab), v in sorted(self._values.items())]

    def render_prometheus(self) -> str:
        """Prometheus text exposition (0.0.4) of every sample, with HELP/TYPE lines."""
        out: list[str] = []
        seen: set[str] = set()
        for s in self.samples():
            if s.name not in seen:
                seen.add(s.name)
                kind, text = HELP.get(s.name, ("gauge", s.name))
                out.append(f"# HELP {s.name} {text}")
                out.append(f"# TYPE {s.name} {kind}")
            lab = ",".join(f'{k}="{_esc(v)}"' for k, v in s.labels)
            out.append(f"{s.name}{{{lab}}} {s.value:g}" if lab else f"{s.name} {s.value:g}")
        return "\n".join(out) + ("\n" if out else "")


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


#: The process-wide registry the guard reports to.
REGISTRY = GaugeRegistry()


def render_prometheus() -> str:
    return REGISTRY.render_prometheus()


def publish(registry: GaugeRegistry = REGISTRY) -> bool:
    """Expose every budget series on the gateway's `/metrics`; False without a gateway."""
    try:
        from legion_core.server.metrics import gauges
    except ImportError:
        return False
    for name, (_kind, text) in HELP.items():
        gauges.register(name, functools.partial(registry.series, name), help=text)
    return True
