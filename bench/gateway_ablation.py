"""Where the gateway's CPU goes: the routed gateway with one component at a time taken out.

    .venv/bin/python bench/gateway_ablation.py [--duration 8] [--reps 3] [--only cache_store ...]

Same set-up as `bench/gateway_overhead.py` (fixed-reply upstream and wrk on core 1, the server
on core 0, unique prompts so the cache always misses). Each variant is a fresh gateway process
in which one component is replaced by a no-op before it starts:

- `routing`: the router decides once and returns that decision for every request;
- `complexity`: the built-in complexity estimator (part of routing) returns a constant (it runs
  only with `--model legion/auto`: a request naming a model on one tier is not estimated);
- `cache_lookup` / `cache_store`: the tier-0 SQLite read of a miss / the store of the answer;
- `audit`: the audit row (built and written);
- `metrics`: the Prometheus bookkeeping;
- `sqlite_writes`: the batch writer's commits (rows are queued and dropped: the SQLite work only);
- `pipeline`: every pipeline step but the provider call (what is left is the HTTP server, the
  dialect's parsing and rendering, and the provider's own HTTP client: the gateway's plumbing);
- `gc_tuning`: `serve()` keeps CPython's default GC settings (a negative delta: it saves CPU).

It prints CPU per request (user + system, all threads, from /proc; the figure that does not
depend on what else shares core 0) and req/s at 32 connections, the median over `--reps`
alternating runs, and each variant's saving against the full gateway. Profilers mislead
here (cProfile and py-spy charge GIL waits and collector passes to whatever frame is running),
so taking a part out is the measurement. The variants are not features to turn off: the
gateway needs every one of them; the point is what each costs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway_overhead as g  # noqa: E402 - the sibling bench: roles, wrk, /proc readers

#: name -> what the child does before booting the gateway (see `_take_out`)
VARIANTS = ("routing", "complexity", "cache_lookup", "cache_store", "audit", "metrics", "sqlite_writes",
            "pipeline", "gc_tuning")


def _take_out(parts: list[str]) -> None:
    """Replace the named components with no-ops (runs in the gateway's own process)."""
    if "routing" in parts:
        from legion_core.routing.router import Router

        decide = Router.decide
        memo: dict[int, object] = {}

        def once(self, request, **kw):  # type: ignore[no-untyped-def]
            if 0 not in memo:
                memo[0] = decide(self, request, **kw)
            return memo[0]

        Router.decide = once  # type: ignore[method-assign]
    if "complexity" in parts:
        from legion_core.routing import router

        router.estimate_complexity = lambda text: 0.3  # the router's fallback when no signal answers
        from legion_core.builtin import complexity

        complexity.estimate_complexity = lambda text: 0.3
    if "cache_lookup" in parts:
        from legion_core.pipeline.cache import ResponseCache

        ResponseCache._fetch = lambda self, key: None  # type: ignore[method-assign]
    if "cache_store" in parts:
        from legion_core.pipeline import steps

        async def nothing(self, p, turn):  # type: ignore[no-untyped-def]
            return None

        steps.CacheStore.run = nothing  # type: ignore[method-assign]
    if "audit" in parts:
        from legion_core.pipeline.pipeline import Pipeline

        Pipeline.audit_turn = lambda self, turn: None  # type: ignore[method-assign]
    if "metrics" in parts:
        from legion_core.server.metrics import Metrics

        Metrics.observe_chat = lambda self, *a, **k: None  # type: ignore[method-assign]
    if "sqlite_writes" in parts:
        from legion_core.pipeline.writer import BatchWriter

        BatchWriter._commit = lambda self, batch: None  # type: ignore[method-assign]
    if "pipeline" in parts:
        from legion_core.pipeline.pipeline import Pipeline

        async def direct(self, request, context=None, **kw):  # type: ignore[no-untyped-def]
            name, provider = next(iter(self.legion.registry.providers.items()))
            resp = await provider.chat(request, provider.default_model)
            resp.provider = name
            return resp

        Pipeline.chat = direct  # type: ignore[method-assign]
    if "gc_tuning" in parts:
        from legion_core.server import run

        run.tune_gc = lambda: None


def role(port: int, upstream: str, home: str, parts: list[str]) -> None:
    _take_out(parts)
    g.role_legion(port, upstream, home)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--role", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--upstream", help=argparse.SUPPRESS)
    ap.add_argument("--home", help=argparse.SUPPRESS)
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per 32-connection run (default 8)")
    ap.add_argument("--reps", type=int, default=3, help="alternating runs per variant (default 3)")
    ap.add_argument("--only", choices=VARIANTS, action="append", help="measure only these variants")
    ap.add_argument("--model", default=g.MODEL,
                    help=f"the model requests ask for (default {g.MODEL}, which is routed without the "
                         "complexity estimate; legion/auto routes every request by complexity)")
    args = ap.parse_args()
    if args.role is not None:
        role(args.port, args.upstream, args.home, json.loads(args.role))
        return 0
    if not (shutil.which("wrk") and shutil.which("taskset")):
        print("needs wrk and taskset: apt-get install -y wrk util-linux", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="legion-ablation-"))
    lua = work / "post.lua"
    lua.write_text(g.LUA.replace("%MODEL%", args.model))
    me = str(Path(__file__).resolve())
    names = ["full", *(args.only or VARIANTS), "floor"]
    runs: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    up_port = g.free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    up = g.start([g.PY, str(Path(g.__file__).resolve()), "--role", "upstream", "--port", str(up_port)], core=1)
    try:
        g.wait_port(up_port, up)
        for rep in range(args.reps):
            for name in names:
                port = g.free_port()
                if name == "floor":
                    cmd = [g.PY, str(Path(g.__file__).resolve()), "--role", "floor", "--port", str(port),
                           "--upstream", upstream]
                else:
                    parts = [] if name == "full" else [name]
                    cmd = [g.PY, me, "--role", json.dumps(parts), "--port", str(port), "--upstream", upstream,
                           "--home", str(work / f"home-{name}-{rep}")]
                proc = g.start(cmd, core=0)
                try:
                    g.wait_port(port, proc, timeout=120)
                    url = f"http://127.0.0.1:{port}"
                    g.wrk(url, 8, 2, lua)  # warm-up
                    cpu0 = g.tree_cpu_s(proc.pid)
                    r = g.wrk(url, 32, args.duration, lua)
                    cpu = (g.tree_cpu_s(proc.pid) - cpu0) * 1000 / max(1, r["requests"])
                    runs[name].append((cpu, r["rps"]))
                    print(f"[rep {rep + 1}] {name:<13} {cpu:.3f} ms/req  {r['rps']:.0f} req/s", file=sys.stderr)
                finally:
                    g.stop(proc)
    finally:
        g.stop(up)

    full = statistics.median(c for c, _ in runs["full"])
    print(f"\nmachine: {os.cpu_count()} cores, {g.platform_line()}; {args.reps} alternating runs of "
          f"{args.duration:.0f}s at 32 connections; medians")
    print(f"{'variant':<22} {'CPU ms/req':>10} {'req/s':>7} {'saves':>8}")
    for name in names:
        cpu = statistics.median(c for c, _ in runs[name])
        rps = statistics.median(r for _, r in runs[name])
        label = {"full": "full gateway", "floor": "floor (pass-through)"}.get(name, f"without {name}")
        saves = "" if name in ("full", "floor") else f"{full - cpu:+.3f}"
        print(f"{label:<22} {cpu:>10.3f} {rps:>7.0f} {saves:>8}")
    print("saves = full gateway's CPU per request minus the variant's (what the component costs); "
          "a negative figure means taking it out costs CPU (gc_tuning)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
