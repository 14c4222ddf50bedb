"""Routing quality of `estimate_complexity` on RouteLLM's per-prompt outcomes.

    .venv/bin/python bench/routing_quality.py [--json]

Reads `../shared/routing-eval/*.jsonl` (override with LEGION_ROUTING_EVAL=<dir>) and prints,
per file, APGR and CPT(50%) exactly as that directory's README defines them, for:
the complexity estimator, random routing (mean of 50 seeds), prompt length alone, and the
oracle (strong − weak). Targets: APGR >= 0.62 on GSM8K, >= 0.70 on MT-Bench.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

from legion_core.routing import estimate_complexity

TARGETS = {"gsm8k": 0.62, "mt_bench": 0.70}


def eval_dir() -> Path:
    env = os.environ.get("LEGION_ROUTING_EVAL")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "routing-eval"


def quantile(sorted_vals: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default)."""
    k = (len(sorted_vals) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


def curve(scores: list[float], weak: list[float], strong: list[float]) -> list[tuple[float, float]]:
    """(fraction routed strong, mean quality) at the 11 quantile-edge thresholds, sorted by x."""
    n = len(scores)
    s = sorted(scores)
    edges = [quantile(s, i / 10) for i in range(11)]
    pts = []
    for i, thr in enumerate(edges):
        last = i == len(edges) - 1
        to_strong = [(sc > thr) if last else (sc >= thr) for sc in scores]
        x = sum(to_strong) / n
        y = sum(st if ts else wk for ts, wk, st in zip(to_strong, weak, strong, strict=True)) / n
        pts.append((x, y))
    pts.sort()
    return pts


def apgr(pts: list[tuple[float, float]], weak_mean: float, strong_mean: float) -> float:
    auc = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False))
    span = pts[-1][0] - pts[0][0]
    return (auc - weak_mean * span) / (strong_mean * span - weak_mean * span)


def cpt(pts: list[tuple[float, float]], weak_mean: float, strong_mean: float, frac: float = 0.5) -> float:
    """% of strong calls needed to recover `frac` of the quality gap (None-safe: 100 if never)."""
    target = weak_mean + frac * (strong_mean - weak_mean)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
        if y0 < target <= y1 or (y0 >= target and x0 == pts[0][0]):
            if y0 >= target:
                return 100 * x0
            return 100 * (x0 + (target - y0) * (x1 - x0) / (y1 - y0))
    return 100.0


def timing(prompts: list[str], repeats: int = 3) -> tuple[float, float]:
    """Per-prompt time with a cold token memo (the worst case: every word is new), in us:
    median and p99 over prompts of the best of `repeats` (a shared machine's preemptions
    would otherwise dominate the p99)."""
    from legion_core.routing import complexity

    best = [float("inf")] * len(prompts)
    for _ in range(repeats):
        for i, p in enumerate(prompts):
            complexity._MEMO.clear()
            t0 = time.perf_counter_ns()
            estimate_complexity(p)
            best[i] = min(best[i], (time.perf_counter_ns() - t0) / 1000)
    best.sort()
    return statistics.median(best), best[max(0, int(len(best) * 0.99) - 1)]


def evaluate(scores, weak, strong):
    wm, sm = statistics.fmean(weak), statistics.fmean(strong)
    pts = curve(scores, weak, strong)
    return apgr(pts, wm, sm), cpt(pts, wm, sm)


def main() -> int:
    as_json = "--json" in sys.argv
    d = eval_dir()
    files = sorted(d.glob("*.jsonl"))
    if not files:
        print(f"no *.jsonl in {d} (set LEGION_ROUTING_EVAL)", file=sys.stderr)
        return 2
    report = {}
    for f in files:
        rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        prompts = [r["prompt"] for r in rows]
        weak = [float(r["weak"]) for r in rows]
        strong = [float(r["strong"]) for r in rows]
        ours = [estimate_complexity(p) for p in prompts]
        per_prompt_us = timing(prompts)
        rand = [evaluate([random.Random(seed * 7919 + i).random() for i in range(len(rows))], weak, strong)
                for seed in range(50)]
        res = {
            "rows": len(rows),
            "weak_mean": statistics.fmean(weak),
            "strong_mean": statistics.fmean(strong),
            "estimate_complexity": evaluate(ours, weak, strong),
            "random (50 seeds)": (statistics.fmean(a for a, _ in rand), statistics.fmean(c for _, c in rand)),
            "prompt length": evaluate([float(len(p)) for p in prompts], weak, strong),
            "oracle": evaluate([s - w for w, s in zip(weak, strong, strict=True)], weak, strong),
            "us_per_prompt": per_prompt_us,
        }
        report[f.stem] = res
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    for name, res in report.items():
        target = TARGETS.get(name)
        print(f"\n{name}: {res['rows']} prompts, weak mean {res['weak_mean']:.3f}, "
              f"strong mean {res['strong_mean']:.3f}"
              + (f", target APGR >= {target:.2f}" if target else ""))
        print(f"  {'router':<22} {'APGR':>6} {'CPT(50%)':>9}")
        for key in ("estimate_complexity", "random (50 seeds)", "prompt length", "oracle"):
            a, c = res[key]
            print(f"  {key:<22} {a:6.3f} {c:8.1f}%")
        a = res["estimate_complexity"][0]
        if target:
            print(f"  -> estimate_complexity {'meets' if a >= target else 'MISSES'} the target "
                  f"({a:.3f} vs {target:.2f})")
        p50, p99 = res["us_per_prompt"]
        print(f"  estimate_complexity time per prompt, cold memo: median {p50:.0f} us, p99 {p99:.0f} us "
              "(target p99 < 1000 us)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
