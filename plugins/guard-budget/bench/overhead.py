"""What the budget guard adds to a request: before_chat (preview price + atomic reservation on
each counter) and after_chat (one reconciling increment per counter), on SQLite (a real file,
WAL) and in memory. Prints microseconds per request, side by side.

    .venv/bin/python plugins/guard-budget/bench/overhead.py

Reference: the gateway's own overhead budget is a few hundred microseconds per request
(DESIGN.md: thinnest pass-through p50 0.57 ms), so the guard should stay well under that.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from legion_guard_budget.guard import BudgetGuard
from legion_guard_budget.metrics import GaugeRegistry

from legion_core.hooktypes import RequestContext
from legion_core.store.db import Store
from legion_core.store.state import MemoryState, SQLiteState
from legion_core.types import ChatResponse, ModelInfo, RoutingDecision, text_request

INFO = ModelInfo(id="big", provider="cloud", input_price=3.0, output_price=15.0)
DECISION = RoutingDecision(provider="cloud", model="big", tier="cloud", estimated_tokens=200)


def run(state, n: int, settings: dict) -> float:
    g = BudgetGuard(settings, state=state, catalog=lambda p, m: INFO, metrics=GaugeRegistry())
    resp = ChatResponse(provider="cloud", model="big", cost_usd=0.0015)
    work = [(text_request("hello", max_tokens=100),
             RequestContext(request_id=f"r{i}", caller="bench", route_preview=lambda r: DECISION, state=state))
            for i in range(n)]  # built outside the timed loop: only the guard is measured
    t0 = time.perf_counter()
    for r, ctx in work:
        g.before_chat(r, ctx)
        g.after_chat(r, resp, ctx)
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    n = 2000
    daily = {"daily_usd": 1e9}
    full = {"daily_usd": 1e9, "per_caller_daily_usd": 1e9, "providers": {"cloud": {"daily_usd": 1e9}}}
    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "legion.db")
        rows = [
            ("memory, daily limit", run(MemoryState(), n, daily)),
            ("memory, daily+provider+caller", run(MemoryState(), n, full)),
            ("sqlite, daily limit", run(SQLiteState(store), n, daily)),
            ("sqlite, daily+provider+caller", run(SQLiteState(store), n, full)),
        ]
        store.close()
    print(f"{'state / limits':<34} {'us per request (before+after)':>30}")
    for name, us in rows:
        print(f"{name:<34} {us:>30.1f}")
    print("reference: gateway pass-through p50 570 us (DESIGN.md)")


if __name__ == "__main__":
    main()
