"""Instructions per routed gateway request, in process: a figure that does not move with the
machine's load.

    .venv/bin/python bench/gateway_instructions.py            # needs valgrind (apt-get install -y valgrind)
    .venv/bin/python bench/gateway_instructions.py --time     # CPU µs per request instead (noisy)
    .venv/bin/python bench/gateway_instructions.py --without audit   # what one component costs

The gateway's ASGI app is called directly (no sockets, no server) with the OpenAI dialect's
request, routing, metering, audit and the tier-0 lookup and store on and the cache missing,
as in `bench/gateway_overhead.py`; the llm-openai provider's HTTP exchange is replaced by a
canned upstream answer that it parses as usual. What is left is Legion's own work per request:
what the pass-through floor does not do. Under callgrind, the instructions of N1 and N2
requests are counted in two runs and the difference divided by N2 - N1 (start-up cancels out).
On a shared VM, wall-clock A/B comparisons of a few per cent drown in noise; this one repeats
to about ±0.5% (±1.5% seen on some hosts: compare runs made side by side). The reference is the code it is compared with: run it on both (`--root`).
`--without PART` (repeatable; the parts of `bench/gateway_ablation.py`) also counts the gateway
with those parts replaced by no-ops and prints the difference: a component's own cost, free of
the load and cache effects that make the under-load ablation noisy (and that it also leaves out).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_ablation import VARIANTS, _take_out  # noqa: E402 - the sibling bench's component switches

UPSTREAM_REPLY = (b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini",'
                  b'"choices":[{"index":0,"message":{"role":"assistant","content":"Wednesday comes after '
                  b'Tuesday."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":6,'
                  b'"total_tokens":18}}')


async def serve_requests(n: int) -> float:
    """Boot, warm up, run `n` requests through the ASGI app; CPU µs per request."""
    import orjson

    os.environ["LEGION_PLUGINS"] = "llm-openai"
    from legion_core.lifecycle import Legion
    from legion_core.providers import openai_wire
    from legion_core.server.app import create_app
    from legion_core.server.run import tune_gc

    async def post_json(self, path, body, *, token=None):  # type: ignore[no-untyped-def]
        return orjson.loads(UPSTREAM_REPLY)  # what the real one returns after aiohttp

    openai_wire.OpenAIWireProvider.post_json = post_json  # type: ignore[method-assign]
    settings = {"llm": {"providers": {"up": {"type": "openai", "tier": "openai_compat",
                                             "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-test-fake",
                                             "default_model": "gpt-4o-mini"}},
                        "discovery": {"enabled": False}}}
    lg = Legion(home=tempfile.mkdtemp(prefix="legion-instr-"), settings=settings)
    await lg.start()
    app = create_app(lg, manage_lifecycle=False)
    statuses: list[int] = []

    async def one(i: int) -> None:
        body = (b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"What day follows Tuesday? #'
                + str(i).encode() + b'"}]}')
        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions",
                 "raw_path": b"/v1/chat/completions", "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode())],
                 "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 80),
                 "client": ("127.0.0.1", 5555), "state": {}}
        msgs = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict:
            return msgs.pop() if msgs else {"type": "http.disconnect"}

        async def send(m: dict) -> None:
            if m["type"] == "http.response.start":
                statuses.append(m["status"])

        await app(scope, receive, send)

    for i in range(300):
        await one(-i - 1)
    tune_gc()  # as serve() does
    c0 = time.process_time()
    for i in range(n):
        await one(i)
    cpu = (time.process_time() - c0) / max(1, n) * 1e6
    await lg.shutdown()
    if set(statuses) != {200}:
        raise SystemExit(f"not every request answered 200: {sorted(set(statuses))}")
    return cpu


def _child(n: int, without: list[str] | None) -> list[str]:
    """The command line of a child that serves `n` requests with `without`'s parts taken out."""
    return [sys.executable, str(Path(__file__).resolve()), "--child", str(n),
            *(a for part in without or () for a in ("--without", part))]


def count(root: str, n: int, without: list[str] | None = None) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": root}
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *_child(n, without)],
                         env=env, capture_output=True, text=True, cwd=root)
    m = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if m is None:
        raise SystemExit(out.stderr[-3000:])
    return int(m.group(1).replace(",", ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--time", action="store_true", help="CPU µs per request, no valgrind")
    ap.add_argument("--root", default=str(ROOT), help="source tree to measure (default: this one)")
    ap.add_argument("-n", type=int, default=500, help="requests in the difference (default 500)")
    ap.add_argument("--without", action="append", choices=VARIANTS,
                    help="also measure with this part taken out (repeatable), and print what it costs")
    args = ap.parse_args()
    if args.child is not None:
        if args.without:
            _take_out(args.without)
        print(f"{asyncio.run(serve_requests(args.child)):.3f}")  # µs CPU per request (for --time)
        return 0
    label = "without " + ", ".join(args.without) if args.without else ""
    if args.time:
        if args.without:  # in a child process: taking parts out patches the kernel's classes
            full = asyncio.run(serve_requests(max(args.n, 2000)))
            out = subprocess.run(_child(max(args.n, 2000), args.without), capture_output=True, text=True,
                                 env={**os.environ, "PYTHONPATH": args.root}, cwd=args.root)
            if out.returncode != 0:
                raise SystemExit(out.stderr[-3000:])
            part = float(out.stdout.split()[-1])
            print(f"{full:.1f} µs CPU per request (in process); {label}: {part:.1f} µs; saves {full - part:.1f} µs")
        else:
            print(f"{asyncio.run(serve_requests(max(args.n, 2000))):.1f} µs CPU per request (in process)")
        return 0
    if subprocess.run(["which", "valgrind"], capture_output=True).returncode != 0:
        print("needs valgrind: apt-get install -y valgrind (or use --time)", file=sys.stderr)
        return 2
    base = 250
    runs = [(base, None), (base + args.n, None)]
    if args.without:
        runs += [(base, args.without), (base + args.n, args.without)]
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        counts = list(ex.map(lambda r: count(args.root, *r), runs))
    full = (counts[1] - counts[0]) / args.n
    print(f"{args.root}: {full:,.0f} instructions per routed request (in process, callgrind; "
          f"{base} and {base + args.n} requests)")
    if args.without:
        part = (counts[3] - counts[2]) / args.n
        print(f"{label}: {part:,.0f} instructions per request; the part costs {full - part:,.0f} "
              f"({(full - part) / full:.1%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
