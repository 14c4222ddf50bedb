"""The embedded provider's cost over calling llama-cpp-python directly, and the event loop's lag.

    .venv/bin/python plugins/llm-llamacpp/bench/generation.py [--tokens 32] [--runs 5]

Reference: the same greedy generation through `llama_cpp.Llama.create_chat_completion` called
synchronously (what the provider does on its worker thread). Printed side by side: median wall
time and tokens/s for chat and stream, and the worst delay a 1 ms asyncio ticker saw while the
provider generated, measured in separate runs (what other requests on the loop would feel;
calling llama.cpp on the loop itself would block it for the whole generation).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from legion_llm_llamacpp.provider import LlamaCppProvider

from legion_core.types import TextDelta, text_request

PROMPT = "Count from one to twenty, separated by commas."


def direct(p: LlamaCppProvider, tokens: int, runs: int) -> list[float]:
    llm = p.engine._chat_model()
    kw = p._kwargs(text_request(PROMPT, max_tokens=tokens))
    out = []
    for _ in range(runs):
        llm.reset()
        t0 = time.perf_counter()
        llm.create_chat_completion(**kw)
        out.append(time.perf_counter() - t0)
    return out


async def via_provider(p: LlamaCppProvider, tokens: int, runs: int, stream: bool,
                       tick: bool) -> tuple[list[float], float]:
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            t = loop.time()
            await asyncio.sleep(0.001)
            lags.append(loop.time() - t - 0.001)

    task = asyncio.create_task(ticker()) if tick else None
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        if stream:
            n = sum([isinstance(c, TextDelta) async for c in p.stream(text_request(PROMPT, max_tokens=tokens), "m")])
            assert n > 0
        else:
            await p.chat(text_request(PROMPT, max_tokens=tokens), "m")
        out.append(time.perf_counter() - t0)
    stop.set()
    if task is not None:
        await task
    return out, max(lags) if lags else 0.0


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    p = LlamaCppProvider("llamacpp", LlamaCppProvider.auto_settings())
    t0 = time.perf_counter()
    await p.engine.preload()
    print(f"# model load: {(time.perf_counter() - t0) * 1000:.0f} ms; n_threads={p.engine._llm.n_threads}; "
          f"{a.runs} interleaved runs of {a.tokens} tokens (greedy)")
    loop = asyncio.get_running_loop()
    ref: list[float] = []
    chat: list[float] = []
    strm: list[float] = []
    for _ in range(a.runs):  # interleaved, so machine load drifts hit every path alike
        ref += await loop.run_in_executor(None, direct, p, a.tokens, 1)
        chat += (await via_provider(p, a.tokens, 1, stream=False, tick=False))[0]
        strm += (await via_provider(p, a.tokens, 1, stream=True, tick=False))[0]
    _, lag_c = await via_provider(p, a.tokens, 2, stream=False, tick=True)
    _, lag_s = await via_provider(p, a.tokens, 2, stream=True, tick=True)
    r = statistics.median(ref)
    print(f"{'path':28} {'median ms':>10} {'tok/s':>8} {'vs direct':>10} {'max loop lag ms':>16}")
    print(f"{'llama_cpp direct (ref)':28} {r * 1000:10.1f} {a.tokens / r:8.1f} {'':>10} {'(blocks loop)':>16}")
    for name, xs, lag in (("provider.chat", chat, lag_c), ("provider.stream", strm, lag_s)):
        m = statistics.median(xs)
        print(f"{name:28} {m * 1000:10.1f} {a.tokens / m:8.1f} {(m - r) * 1000:+9.1f}ms {lag * 1000:16.2f}")
    await p.aclose()


if __name__ == "__main__":
    asyncio.run(main())
