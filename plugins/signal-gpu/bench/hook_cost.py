"""What `legion_provider_signals` costs the router per candidate: a dict lookup and a staleness
check (the signal object is built once per poll). Prints nanoseconds per call.

    .venv/bin/python plugins/signal-gpu/bench/hook_cost.py

Reference: the router's decision costs tens of microseconds (bench/ in the repository root
measures it); a signal should be a small fraction of that: about a microsecond per candidate.
"""

from __future__ import annotations

import time

from legion_signal_gpu.plugin import GpuPlugin
from legion_signal_gpu.poller import GpuPoller, Reading
from legion_signal_gpu.settings import GpuSettings


class P:
    def __init__(self, name: str) -> None:
        self.name = name


def per_call_ns(fn, n: int = 200_000) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e9


def main() -> None:
    plugin = GpuPlugin()
    plugin.poller = GpuPoller(GpuSettings(), [])
    plugin.poller.readings["busy"] = Reading(0.8, "vllm", time.monotonic(), plugin.poller._signal(0.8, "vllm"))
    busy, other = P("busy"), P("other")
    idle_plugin = GpuPlugin()  # never started: no poller
    rows = [
        ("hook, provider with a reading", per_call_ns(lambda: plugin.legion_provider_signals(busy))),
        ("hook, provider without one", per_call_ns(lambda: plugin.legion_provider_signals(other))),
        ("hook, no poller (no signal)", per_call_ns(lambda: idle_plugin.legion_provider_signals(other))),
    ]
    print(f"{'case':<34} {'ns per call':>12}")
    for name, ns in rows:
        print(f"{name:<34} {ns:>12.0f}")
    print("reference: about 1000 ns per candidate (router decision: tens of microseconds)")


if __name__ == "__main__":
    main()
