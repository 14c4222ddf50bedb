"""Pipeline overhead and tier-0 cache figures, printed beside their targets.

    .venv/bin/python bench/pipeline_overhead.py [N]

An instant in-process provider (no network) isolates Legion's own cost: what a request spends
in normalize/route/meter/audit/cache, a tier-0 hit end to end (target: well under 2 ms), and a
raw cache lookup from the in-memory LRU and from SQLite (after a restart).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from legion_core.hookspecs import hookimpl
from legion_core.lifecycle import Legion
from legion_core.pipeline.cache import cache_key
from legion_core.plugins.manager import PluginManager
from legion_core.providers.base import Provider
from legion_core.types import ChatResponse, TextBlock, Usage, text_request


class Instant(Provider):
    kind = "instant"
    default_tier = "local"

    async def chat(self, request, model):
        return ChatResponse(model=model, content=[TextBlock(text="Wednesday.")],
                            usage=Usage(input_tokens=12, output_tokens=3))

    async def stream(self, request, model):  # pragma: no cover - not measured here
        raise NotImplementedError
        yield


class Plugin:
    @hookimpl
    def legion_register_providers(self, register):
        register(Instant)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def line(name: str, xs: list[float], target: str) -> None:
    print(f"{name:<44} p50 {pct(xs, 50) * 1000:8.1f} µs   p90 {pct(xs, 90) * 1000:8.1f} µs   "
          f"p99 {pct(xs, 99) * 1000:8.1f} µs   {target}")


async def boot(home: Path) -> Legion:
    pm = PluginManager()
    pm.load(entry_points=False)
    pm.register(Plugin(), name="bench-instant")
    providers = {
        "loc": {"type": "instant", "tier": "local", "default_model": "small"},
        "cld": {"type": "instant", "tier": "cloud", "default_model": "big",
                "models": {"big": {"input_price": 3, "output_price": 15}}},
    }
    lg = Legion(home=home, settings={"llm": {"providers": providers, "discovery": {"enabled": False}}},
                plugins=pm, load_entry_points=False)
    return await lg.start()


async def main(n: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="legion-bench-"))
    lg = await boot(home)
    p = lg.pipeline
    for i in range(50):  # warm up
        await p.chat(text_request(f"warm {i}?", cache=False))

    miss: list[float] = []
    overhead: list[float] = []
    for i in range(n):
        t0 = time.perf_counter()
        r = await p.chat(text_request(f"What day comes after day {i}?"))
        miss.append((time.perf_counter() - t0) * 1000)
        overhead.append(r.latency_ms - sum(a.duration_ms for a in r.attempts))
    p.audit.flush()  # the entries the LRU has let go of (n > its size) are read back from SQLite
    hits: list[float] = []
    for i in range(n):
        t0 = time.perf_counter()
        r = await p.chat(text_request(f"What day comes after day {i}?"))
        hits.append((time.perf_counter() - t0) * 1000)
        assert r.cache_hit
    keys = [cache_key(text_request(f"What day comes after day {i}?")) for i in range(n)]
    lru: list[float] = []
    for k in keys:
        t0 = time.perf_counter()
        assert p.cache.get(k) is not None
        lru.append((time.perf_counter() - t0) * 1000)
    await lg.shutdown()

    lg2 = await boot(home)  # restart: the LRU is empty, SQLite answers
    sql: list[float] = []
    for k in keys:
        t0 = time.perf_counter()
        assert lg2.pipeline.cache.get(k) is not None
        sql.append((time.perf_counter() - t0) * 1000)
    await lg2.shutdown()

    print(f"pipeline figures, n={n} requests each, instant in-process provider, Python "
          f"{sys.version.split()[0]}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(p99 on a shared machine is mostly scheduling noise)")
    line("full request, cache miss (route+call+audit)", miss, "(reference: LiteLLM proxy p50 16.4 ms)")
    line("  of which Legion overhead (minus provider)", overhead, "(target: < 1 ms)")
    line("tier-0 hit, end to end through pipeline.chat", hits, "(target: < 2 ms)")
    line("cache.get(), in-memory LRU", lru, "")
    line("cache.get(), SQLite after restart", sql, "")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
