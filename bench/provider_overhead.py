"""Each provider's client-side cost per request, beside a raw aiohttp client doing the same call.

    .venv/bin/python bench/provider_overhead.py [--requests N] [--only openai,vllm] [--stream]
    .venv/bin/python bench/provider_overhead.py --client   # the HTTP clients alone: aiohttp vs http1

The upstreams are the protocol fakes (`legion_core.testing.fakes`), the OpenAI one in its
fixed-reply mode, running in a child process pinned to another core (`os.sched_setaffinity`)
so the figures are the client's. For every provider, at 1 and at 32 concurrent requests, it
prints latency p50, throughput, and the client process's CPU time per request, next to the
same figures for a bare `aiohttp` POST of an equivalent body to the same fake (the floor any
client can reach). Providers whose plugin is not installed are skipped with a note.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

PROMPT = "What day comes after Tuesday?"
MAX_TOKENS = 16


# ============================================================ the upstream process
def serve() -> None:
    """Child process: start every available fake, print their URLs as one JSON line, wait."""
    from legion_core.testing.fakes.openai import FakeOpenAI

    urls: dict[str, str] = {}
    fakes: list[Any] = [FakeOpenAI(fixed_reply=True, api_key=None).start()]
    urls["openai"] = fakes[0].url
    for name, module, cls, kw in (("anthropic", "anthropic", "FakeAnthropic", {}),
                                  ("ollama", "ollama", "FakeOllama", {}),
                                  ("bedrock", "bedrock", "FakeBedrock", {"check_auth": False})):
        try:
            fake_cls = getattr(importlib.import_module(f"legion_core.testing.fakes.{module}"), cls)
            fake = fake_cls(**kw).start()
        except Exception as e:  # noqa: BLE001 - a missing fake only skips its provider
            print(f"# fake {name} unavailable: {e}", file=sys.stderr)
            continue
        fake.requests = _NoList()  # do not accumulate request bodies over thousands of calls
        fakes.append(fake)
        urls[name] = fake.url
    print(json.dumps(urls), flush=True)
    sys.stdin.read()  # the parent closes our stdin when it is done
    for f in fakes:
        f.stop()


class _NoList(list):  # type: ignore[type-arg]
    def append(self, item: Any) -> None:
        pass


# ============================================================ targets
@dataclass
class Target:
    name: str
    provider: Callable[[str], Any]
    model: str
    raw: Callable[[str], tuple[str, dict[str, str], bytes]]  # url -> (full url, headers, body)
    raw_stream: Callable[[str], tuple[str, dict[str, str], bytes]] | None = None


def _json(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def targets() -> tuple[list[Target], list[str]]:
    from legion_core.settings.models import ProviderSettings

    found: list[Target] = []
    notes: list[str] = []
    msgs = [{"role": "user", "content": PROMPT}]

    def add(name: str, module: str, cls: str, make: Callable[[Any, str], Any], model: str,
            raw: Callable[[str], tuple[str, dict[str, str], bytes]],
            raw_stream: Callable[[str], tuple[str, dict[str, str], bytes]] | None = None) -> None:
        try:
            provider_cls = getattr(importlib.import_module(module), cls)
        except ImportError as e:
            notes.append(f"{name}: skipped ({module} not installed: {e.name})")
            return
        found.append(Target(name, lambda url: make(provider_cls, url), model, raw, raw_stream))

    add("openai", "legion_llm_openai", "OpenAIProvider",
        lambda c, url: c("openai", ProviderSettings(base_url=url + "/v1", api_key="sk-bench")),
        "gpt-4o-mini",
        lambda url: (url + "/v1/chat/completions",
                     {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"},
                     _json({"model": "gpt-4o-mini", "messages": msgs, "max_completion_tokens": MAX_TOKENS})),
        lambda url: (url + "/v1/chat/completions",
                     {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"},
                     _json({"model": "gpt-4o-mini", "messages": msgs, "max_completion_tokens": MAX_TOKENS,
                            "stream": True, "stream_options": {"include_usage": True}})))
    add("vllm", "legion_llm_vllm", "VLLMProvider",
        lambda c, url: c("vllm", ProviderSettings(base_url=url + "/v1")),
        "gpt-4o-mini",
        lambda url: (url + "/v1/chat/completions", {"Content-Type": "application/json"},
                     _json({"model": "gpt-4o-mini", "messages": msgs, "max_tokens": MAX_TOKENS})),
        lambda url: (url + "/v1/chat/completions", {"Content-Type": "application/json"},
                     _json({"model": "gpt-4o-mini", "messages": msgs, "max_tokens": MAX_TOKENS, "stream": True,
                            "stream_options": {"include_usage": True}})))
    add("anthropic", "legion_llm_anthropic", "AnthropicProvider",
        lambda c, url: c("anthropic", ProviderSettings(base_url=url, api_key="sk-ant-test")),
        "claude-sonnet-4-6",
        lambda url: (url + "/v1/messages",
                     {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01",
                      "Content-Type": "application/json"},
                     _json({"model": "claude-sonnet-4-6", "max_tokens": MAX_TOKENS, "messages": msgs})),
        lambda url: (url + "/v1/messages",
                     {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01",
                      "Content-Type": "application/json"},
                     _json({"model": "claude-sonnet-4-6", "max_tokens": MAX_TOKENS, "messages": msgs,
                            "stream": True})))
    add("ollama", "legion_llm_ollama", "OllamaProvider",
        lambda c, url: c("ollama", ProviderSettings(base_url=url)),
        "qwen3:0.6b",
        lambda url: (url + "/api/chat", {"Content-Type": "application/json"},
                     _json({"model": "qwen3:0.6b", "messages": msgs, "stream": False,
                            "options": {"num_predict": MAX_TOKENS}})),
        lambda url: (url + "/api/chat", {"Content-Type": "application/json"},
                     _json({"model": "qwen3:0.6b", "messages": msgs, "stream": True,
                            "options": {"num_predict": MAX_TOKENS}})))
    bedrock_model = "us.anthropic.claude-sonnet-4-6-v1"
    add("bedrock", "legion_llm_bedrock", "BedrockProvider",
        lambda c, url: c("bedrock", ProviderSettings.model_validate({"base_url": url, "bearer_token": "bench-token"})),
        bedrock_model,
        lambda url: (f"{url}/model/{bedrock_model}/converse",
                     {"Authorization": "Bearer bench-token", "Content-Type": "application/json"},
                     _json({"messages": [{"role": "user", "content": [{"text": PROMPT}]}],
                            "inferenceConfig": {"maxTokens": MAX_TOKENS}})),
        lambda url: (f"{url}/model/{bedrock_model}/converse-stream",
                     {"Authorization": "Bearer bench-token", "Content-Type": "application/json"},
                     _json({"messages": [{"role": "user", "content": [{"text": PROMPT}]}],
                            "inferenceConfig": {"maxTokens": MAX_TOKENS}})))
    return found, notes


# ============================================================ measuring
@dataclass
class Figures:
    p50_ms: float
    rps: float
    cpu_us: float


async def measure(call: Callable[[], Awaitable[Any]], n: int, concurrency: int) -> Figures:
    for _ in range(min(50, n)):  # warm the pool and the code paths
        await call()
    lat: list[float] = []
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            t = time.perf_counter()
            await call()
            lat.append(time.perf_counter() - t)

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    lat.sort()
    return Figures(p50_ms=lat[len(lat) // 2] * 1000, rps=len(lat) / wall, cpu_us=cpu / len(lat) * 1e6)


async def bench_target(t: Target, url: str, n: int, stream: bool = False) -> dict[str, tuple[Figures, Figures]]:
    import aiohttp
    import orjson

    from legion_core.types import text_request

    out: dict[str, tuple[Figures, Figures]] = {}
    provider = t.provider(url)
    await provider.startup()
    request = text_request(PROMPT, max_tokens=MAX_TOKENS)
    full, headers, body = (t.raw_stream or t.raw)(url) if stream else t.raw(url)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
        async def raw() -> Any:
            async with session.post(full, data=body, headers=headers) as r:
                if r.status != 200:
                    raise RuntimeError(f"raw {t.name}: HTTP {r.status}: {(await r.text())[:200]}")
                if stream:  # the floor: read the frames as they come, decode nothing
                    async for _ in r.content.iter_any():
                        pass
                    return None
                return orjson.loads(await r.read())

        async def via_provider() -> Any:
            if stream:
                chunks = [c async for c in provider.stream(request, t.model)]
                if not chunks or chunks[-1].type != "done":
                    raise RuntimeError(f"{t.name}: stream did not finish: {chunks[-1:]}")
                return chunks
            return await provider.chat(request, t.model)

        for c in (1, 32):
            count = n if c == 1 else n * 2
            out[f"c{c}"] = (await measure(via_provider, count, c), await measure(raw, count, c))
    await provider.aclose()
    return out


async def bench_clients(url: str, n: int) -> dict[str, tuple[Figures, Figures]]:
    """One whole-answer POST, as `Pool.read` makes it: `providers.http1` against aiohttp's client
    configured as `Pool` configured it before http1 (the reference)."""
    import aiohttp
    import orjson

    from legion_core.providers.http1 import Http1Pool

    body = orjson.dumps({"model": "gpt-4o-mini", "max_tokens": MAX_TOKENS,
                         "messages": [{"role": "user", "content": PROMPT}]})
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    lean = Http1Pool(url + "/v1", headers, limit=100, connect_timeout=10, read_timeout=60)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100, limit_per_host=100, keepalive_timeout=30),
        timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=60),
        cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)
    target = url + "/v1/chat/completions"

    async def via_http1() -> Any:
        status, _, raw = await lean.post("/chat/completions", body)
        assert status == 200, raw[:200]

    async def via_aiohttp() -> Any:
        r = await session.post(target, data=body, headers=headers)
        try:
            raw = await r.read()
        finally:
            r.release()
        assert r.status == 200, raw[:200]

    out: dict[str, tuple[Figures, Figures]] = {}
    try:
        for c in (1, 32):
            count = n if c == 1 else n * 4
            out[f"c{c}"] = (await measure(via_http1, count, c), await measure(via_aiohttp, count, c))
    finally:
        await lean.aclose()
        await session.close()
    return out


def pin(cpu: int) -> None:
    try:
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--requests", type=int, default=400, help="requests per run at concurrency 1 (x2 at 32)")
    ap.add_argument("--only", default="", help="comma-separated provider names")
    ap.add_argument("--stream", action="store_true", help="measure streamed chat (typed chunks) instead")
    ap.add_argument("--client", action="store_true",
                    help="measure the HTTP clients alone: providers.http1 against aiohttp (whole answers)")
    args = ap.parse_args()
    if args.serve:
        serve()
        return
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    server_cpu, client_cpu = cpus[-1], cpus[0]
    child = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True,
                             preexec_fn=(lambda: pin(server_cpu)) if len(cpus) > 1 else None)
    try:
        assert child.stdout is not None
        urls = json.loads(child.stdout.readline())
        urls["vllm"] = urls["openai"]  # the same OpenAI-compatible fake serves both
        pin(client_cpu)
        if args.client:
            _try_uvloop()
            print(f"# whole-answer POSTs to the OpenAI fake; client on CPU {client_cpu}, fake on CPU {server_cpu}")
            print(f"{'conc':>4} | {'http1 p50':>9} {'req/s':>7} {'cpu µs':>7} | "
                  f"{'aiohttp p50':>11} {'req/s':>7} {'cpu µs':>7} | {'cpu ratio':>9}")
            for key, (mine, ref) in asyncio.run(bench_clients(urls["openai"], args.requests)).items():
                print(f"{key[1:]:>4} | {mine.p50_ms:9.3f} {mine.rps:7.0f} {mine.cpu_us:7.1f} | "
                      f"{ref.p50_ms:11.3f} {ref.rps:7.0f} {ref.cpu_us:7.1f} | {mine.cpu_us / ref.cpu_us:8.2f}x")
            return
        found, notes = targets()
        if args.only:
            keep = set(args.only.split(","))
            found = [t for t in found if t.name in keep]
        print(f"# client pinned to CPU {client_cpu}, fakes to CPU {server_cpu} "
              f"({'separate cores' if len(cpus) > 1 else 'SHARED core: figures include the fake'}); "
              f"{args.requests} requests at c=1, {args.requests * 2} at c=32; "
              f"{'streamed chat (raw reads the frames undecoded)' if args.stream else 'non-streaming chat'}")
        print(f"{'provider':<10} {'conc':>4} | {'p50 ms':>7} {'req/s':>7} {'cpu µs/req':>10} | "
              f"{'raw p50':>7} {'raw rps':>7} {'raw cpu':>8} | {'cpu overhead':>12}")
        for t in found:
            if t.name not in urls:
                notes.append(f"{t.name}: skipped (its fake is not available)")
                continue
            res = asyncio.run(bench_target(t, urls[t.name], args.requests, args.stream))
            for key, (prov, raw) in res.items():
                over = prov.cpu_us - raw.cpu_us
                print(f"{t.name:<10} {key[1:]:>4} | {prov.p50_ms:7.2f} {prov.rps:7.0f} {prov.cpu_us:10.0f} | "
                      f"{raw.p50_ms:7.2f} {raw.rps:7.0f} {raw.cpu_us:8.0f} | {over:+9.0f} µs")
        for n in notes:
            print("# " + n)
    finally:
        if child.stdin:
            child.stdin.close()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()


def _try_uvloop() -> None:
    """The gateway's event loop, when installed (`legion-core[fast]`)."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


if __name__ == "__main__":
    main()
