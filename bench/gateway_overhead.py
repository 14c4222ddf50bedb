"""Gateway overhead: Legion's routed gateway vs the thinnest pass-through vs LiteLLM's proxy.

    .venv/bin/python bench/gateway_overhead.py [--duration 10] [--soak] [--no-litellm]

Needs `wrk` (`apt-get install -y wrk`) and `taskset`. LiteLLM, the peer, runs from its own
venv (default /tmp/litellm-venv; created with `python -m venv /tmp/litellm-venv &&
/tmp/litellm-venv/bin/pip install 'litellm[proxy]'`); it is skipped with a note when missing.

Set-up, on loopback: a fixed-reply OpenAI-compatible upstream (`FakeOpenAI(fixed_reply=True)`)
and the load generator (wrk) pinned to core 1; the server under test pinned to core 0:

- **legion**: `legion_core.server.serve()` with the real llm-openai plugin, routing, metering,
  audit and the tier-0 cache lookup all on. Every request has a unique prompt (a counter in
  the wrk Lua script), so the cache always misses (and stores). Requests name the model, as
  OpenAI clients do: the router routes them without the complexity estimate (one tier).
- **legion-auto**: the same gateway with every request asking for `legion/auto`, so each one
  is also estimated and placed by complexity (reported beside the targets, not judged).
- **floor**: the thinnest Starlette + aiohttp-client pass-through (same uvicorn options).
- **litellm**: `litellm --config C --num_workers 1` with `LITELLM_MASTER_KEY` set.

Prints p50/p99 at 1 connection, req/s and p99 at 32 connections, RSS after the run, and the
ratios against the targets (req/s at 32 >= 50% of the floor's; p50 at 1 <= 2x the floor's;
RSS <= 150 MB). It also prints each server's CPU time per request during the 32-connection run
(from /proc): on a machine where other processes share core 0, wall-clock req/s measures the
neighbours as much as the server, and the CPU ratio is the robust figure. Streaming: time to the first chunk through the gateway vs direct (target:
within 1 ms). `--soak` sends 100k requests through the gateway and prints RSS after each 25k
(target: no growth between the 2nd and the 4th 25k).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
MASTER_KEY = "sk-bench-master"
UPSTREAM_KEY = "sk-test-fake"
MODEL = "gpt-4o-mini"

# Every request's prompt is unique across wrk runs too: wrk restarts its counter and Lua's
# random sequence (fixed seed) in each run, so the nonce (one per run) keeps a later run from
# replaying an earlier one's prompts, which the gateway would answer from its cache.
LUA = """
counter = 0
local key = os.getenv("BENCH_KEY") or ""
local nonce = os.getenv("BENCH_NONCE") or ""
request = function()
  counter = counter + 1
  local body = '{"model":"%MODEL%","messages":[{"role":"user","content":"What day follows Tuesday? #'
    .. nonce .. '-' .. counter .. '"}]}'
  local headers = {["Content-Type"] = "application/json"}
  if key ~= "" then headers["Authorization"] = "Bearer " .. key end
  return wrk.format("POST", "/v1/chat/completions", headers, body)
end
"""

#: The model each measured system is asked for (default MODEL).
MODELS = {"legion-auto": "legion/auto"}


# ============================================================ roles (run in child processes)
def role_upstream(port: int) -> None:
    from legion_core.testing.fakes.openai import FakeOpenAI

    FakeOpenAI(port=port, api_key=UPSTREAM_KEY, fixed_reply=True).start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


def role_legion(port: int, upstream: str, home: str) -> None:
    from legion_core.lifecycle import Legion
    from legion_core.server import serve

    os.environ["LEGION_PLUGINS"] = "llm-openai"  # the kernel plus the one provider plugin measured
    settings = {"llm": {"providers": {"up": {"type": "openai", "tier": "openai_compat",
                                             "base_url": upstream + "/v1", "api_key": UPSTREAM_KEY,
                                             "default_model": MODEL}},
                        "discovery": {"enabled": False}}}
    serve(Legion(home=home, settings=settings), host="127.0.0.1", port=port)


def role_floor(port: int, upstream: str) -> None:
    import aiohttp
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from legion_core.server.run import uvicorn_options

    session: dict[str, aiohttp.ClientSession] = {}

    async def chat(request: Request) -> Response:
        body = await request.body()
        s = session.get("s")
        if s is None:
            s = session["s"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
        async with s.post(upstream + "/v1/chat/completions", data=body,
                          headers={"content-type": "application/json",
                                   "authorization": f"Bearer {UPSTREAM_KEY}"}) as r:
            data = await r.read()
            return Response(data, r.status, media_type=r.headers.get("content-type"))

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    opts = uvicorn_options()
    opts.pop("lifespan")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning",
                loop="uvloop" if _have("uvloop") else "asyncio", lifespan="off", **opts)


def _have(mod: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(mod) is not None


# ============================================================ orchestration
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port} after {timeout}s")


def start(cmd: list[str], core: int, env: dict[str, str] | None = None, log: Path | None = None
          ) -> subprocess.Popen:
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(["taskset", "-c", str(core), *cmd], env={**os.environ, **(env or {})},
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants (LiteLLM runs workers as children)."""
    pids = [pid]
    try:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
        for child in out.split():
            pids.extend([int(child)] + _descendants(int(child)))
    except OSError:
        pass
    total = 0
    for p in set(pids):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) used so far by a process and its descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in {pid, *_descendants(pid)}:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / tick


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    kids = [int(x) for x in out.split()]
    return kids + [d for k in kids for d in _descendants(k)]


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text.strip())
    if not m:
        return float("nan")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url: str, conns: int, seconds: float, lua: Path, key: str = "") -> dict[str, float]:
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{max(1, int(seconds))}s", "--latency",
                          "--timeout", "10s", "-s", str(lua), url],
                         capture_output=True, text=True,
                         env={**os.environ, "BENCH_KEY": key, "BENCH_NONCE": str(time.time_ns())}).stdout
    res = {"p50": float("nan"), "p99": float("nan"), "rps": 0.0, "requests": 0, "errors": 0}
    for line in out.splitlines():
        s = line.strip()
        if s.startswith("50%"):
            res["p50"] = _ms(s.split()[1])
        elif s.startswith("99%"):
            res["p99"] = _ms(s.split()[1])
        elif s.startswith("Requests/sec:"):
            res["rps"] = float(s.split()[1])
        elif "requests in" in s:
            res["requests"] = int(s.split()[0])
        elif s.startswith("Non-2xx") or s.startswith("Socket errors"):
            res["errors"] += sum(int(x) for x in re.findall(r"\d+", s))
    if res["requests"] == 0:
        print(out, file=sys.stderr)
    return res


def _first_chunk_ms(c: object, url: str, headers: dict[str, str], i: int, model: str = MODEL) -> float:
    body = {"model": model, "stream": True,
            "messages": [{"role": "user", "content": f"first chunk please #{i}-{time.time_ns()}"}]}
    t0 = time.perf_counter()
    with c.stream("POST", url + "/v1/chat/completions", json=body, headers=headers) as r:  # type: ignore[attr-defined]
        for line in r.iter_lines():
            if line.startswith("data: ") and '"content":"' in line and '"content":""' not in line:
                break
    return (time.perf_counter() - t0) * 1000


def ttfb(url: str, headers: dict[str, str], n: int = 200, direct: str | None = None,
         model: str = MODEL) -> tuple[float, float]:
    """Median ms to the first content chunk through `url`, and the median of the per-pair
    difference with a request sent straight to `direct` just before it (interleaving keeps
    both under the same machine load)."""
    import httpx

    times, diffs = [], []
    direct_hdr = {"authorization": f"Bearer {UPSTREAM_KEY}"}
    with httpx.Client(timeout=30) as c, httpx.Client(timeout=30) as d:
        for i in range(n + 20):
            base = _first_chunk_ms(d, direct, direct_hdr, i) if direct else 0.0
            t = _first_chunk_ms(c, url, headers, i, model)
            if i >= 20:
                times.append(t)
                diffs.append(t - base)
    return statistics.median(times), statistics.median(diffs)


def cache_hits(url: str) -> float:
    """Tier-0 hits the gateway has served so far (from /metrics); the runs must have none."""
    import httpx

    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("legion_cache_hits_total"))


def smoke(url: str, key: str = "", model: str = MODEL) -> None:
    import httpx

    headers = {"authorization": f"Bearer {key}"} if key else {}
    r = httpx.post(url + "/v1/chat/completions", headers=headers, timeout=60,
                   json={"model": model, "messages": [{"role": "user", "content": "warm up"}]})
    if r.status_code != 200:
        raise RuntimeError(f"{url}: {r.status_code} {r.text[:300]}")


def litellm_bin(venv: str) -> str | None:
    b = Path(venv) / "bin" / "litellm"
    return str(b) if b.exists() else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--role", choices=["upstream", "legion", "floor"], help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--upstream", help=argparse.SUPPRESS)
    ap.add_argument("--home", help=argparse.SUPPRESS)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default 10)")
    ap.add_argument("--soak", action="store_true", help="also send 100k requests through the gateway")
    ap.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM peer")
    ap.add_argument("--litellm-venv", default="/tmp/litellm-venv")
    ap.add_argument("--only", choices=["legion", "legion-auto", "floor", "litellm"], action="append")
    args = ap.parse_args()

    if args.role == "upstream":
        role_upstream(args.port)
        return 0
    if args.role == "legion":
        role_legion(args.port, args.upstream, args.home)
        return 0
    if args.role == "floor":
        role_floor(args.port, args.upstream)
        return 0

    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk   (Debian/Ubuntu)", file=sys.stderr)
        return 2
    if not shutil.which("taskset"):
        print("taskset is not installed: apt-get install -y util-linux", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="legion-bench-"))
    luas: dict[str, Path] = {}
    for m in {MODEL, *MODELS.values()}:
        luas[m] = work / f"post-{len(luas)}.lua"
        luas[m].write_text(LUA.replace("%MODEL%", m))
    me = str(Path(__file__).resolve())
    procs: list[subprocess.Popen] = []
    results: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    try:
        up_port = free_port()
        upstream = f"http://127.0.0.1:{up_port}"
        up = start([PY, me, "--role", "upstream", "--port", str(up_port)], core=1, log=work / "upstream.log")
        procs.append(up)
        wait_port(up_port, up)
        direct_ttfb, _ = ttfb(upstream, {"authorization": f"Bearer {UPSTREAM_KEY}"})

        systems: list[tuple[str, list[str], dict[str, str], str]] = []
        p = free_port()
        systems.append(("legion", [PY, me, "--role", "legion", "--port", str(p), "--upstream", upstream,
                                   "--home", str(work / "home")], {}, f"http://127.0.0.1:{p}"))
        p = free_port()
        systems.append(("legion-auto", [PY, me, "--role", "legion", "--port", str(p), "--upstream", upstream,
                                        "--home", str(work / "home-auto")], {}, f"http://127.0.0.1:{p}"))
        p = free_port()
        systems.append(("floor", [PY, me, "--role", "floor", "--port", str(p), "--upstream", upstream], {},
                        f"http://127.0.0.1:{p}"))
        lb = None if args.no_litellm else litellm_bin(args.litellm_venv)
        if lb is None:
            notes.append("litellm: skipped (" + ("--no-litellm" if args.no_litellm else
                         f"not installed in {args.litellm_venv}; python -m venv {args.litellm_venv} && "
                         f"{args.litellm_venv}/bin/pip install 'litellm[proxy]'") + ")")
        else:
            p = free_port()
            cfg = work / "litellm.yaml"
            cfg.write_text(json.dumps({"model_list": [{"model_name": MODEL, "litellm_params": {
                "model": f"openai/{MODEL}", "api_base": upstream + "/v1", "api_key": UPSTREAM_KEY}}],
                "litellm_settings": {"telemetry": False}}))
            systems.append(("litellm", [lb, "--config", str(cfg), "--port", str(p), "--host", "127.0.0.1",
                                        "--num_workers", "1"],
                            {"LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_TELEMETRY": "False",
                             "LITELLM_LOG": "ERROR"}, f"http://127.0.0.1:{p}"))
        if args.only:
            systems = [s for s in systems if s[0] in args.only]

        for name, cmd, env, url in systems:
            key = MASTER_KEY if name == "litellm" else ""
            model = MODELS.get(name, MODEL)
            lua = luas[model]
            proc = start(cmd, core=0, env=env, log=work / f"{name}.log")
            procs.append(proc)
            try:
                wait_port(int(url.rsplit(":", 1)[1]), proc, timeout=180)
                smoke(url, key, model)
            except RuntimeError as e:
                notes.append(f"{name}: failed to start ({e}); log: {work / (name + '.log')}")
                stop(proc)
                continue
            print(f"[{name}] time to first chunk...", file=sys.stderr)
            hdr = {"authorization": f"Bearer {key}"} if key else {}
            # before the load (no backlog of queued writes), interleaved with direct requests
            first_chunk, first_chunk_extra = ttfb(url, hdr, n=200, direct=upstream, model=model)
            print(f"[{name}] warming up...", file=sys.stderr)
            wrk(url, 8, 3, lua, key)
            one = wrk(url, 1, args.duration, lua, key)
            cpu0 = tree_cpu_s(proc.pid)
            many = wrk(url, 32, args.duration, lua, key)
            cpu_ms = (tree_cpu_s(proc.pid) - cpu0) * 1000 / max(1, many["requests"])
            res = {"p50_1": one["p50"], "p99_1": one["p99"], "rps_32": many["rps"], "p99_32": many["p99"],
                   "rss": tree_rss_mb(proc.pid), "errors": one["errors"] + many["errors"],
                   "ttfb": first_chunk, "ttfb_extra": first_chunk_extra, "cpu_ms": cpu_ms}
            if name.startswith("legion"):
                hits = cache_hits(url)
                if hits:
                    notes.append(f"{name}: {hits:.0f} cache hits during the runs; the figures are not all "
                                 "cache misses (the prompts repeated)")
            if name == "legion" and args.soak:
                res["soak"] = soak(url, lua, proc.pid)  # type: ignore[assignment]
            results[name] = res
            stop(proc)
    finally:
        for p_ in procs:
            stop(p_)

    report(results, direct_ttfb, notes, args)
    return 0


def soak(url: str, lua: Path, pid: int, total: int = 100_000, step: int = 25_000) -> list[tuple[int, float]]:
    done = 0
    marks: list[tuple[int, float]] = []
    nxt = step
    while done < total:
        r = wrk(url, 32, 5, lua)
        done += int(r["requests"])
        if r["requests"] == 0:
            break
        while done >= nxt and nxt <= total:
            marks.append((nxt, tree_rss_mb(pid)))
            print(f"[soak] {done} requests, RSS {marks[-1][1]:.1f} MB", file=sys.stderr)
            nxt += step
    return marks


def report(results: dict[str, dict[str, float]], direct_ttfb: float, notes: list[str],
           args: argparse.Namespace) -> None:
    print()
    print(f"machine: {os.cpu_count()} cores, {platform_line()}; gateway on core 0, upstream + wrk on core 1; "
          f"{args.duration:.0f}s per run")
    print(f"{'gateway':<11} {'p50@1 ms':>9} {'p99@1 ms':>9} {'req/s@32':>9} {'p99@32 ms':>10} {'RSS MB':>7} "
          f"{'TTFB ms':>8} {'CPU ms/req':>10} {'errors':>6}")
    for name in ("legion", "legion-auto", "floor", "litellm"):
        r = results.get(name)
        if r is None:
            continue
        print(f"{name:<11} {r['p50_1']:>9.2f} {r['p99_1']:>9.2f} {r['rps_32']:>9.0f} {r['p99_32']:>10.2f} "
              f"{r['rss']:>7.1f} {r['ttfb']:>8.2f} {r['cpu_ms']:>10.3f} {int(r['errors']):>6}")
    print(f"{'direct':<11} {'':>9} {'':>9} {'':>9} {'':>10} {'':>7} {direct_ttfb:>8.2f}")
    lg, fl = results.get("legion"), results.get("floor")
    if lg and fl:
        print()
        ratio = lg["rps_32"] / fl["rps_32"] if fl["rps_32"] else float("nan")
        print(f"req/s@32 legion/floor = {ratio:.2f}   (target >= 0.50)  {'PASS' if ratio >= 0.5 else 'FAIL'}")
        r2 = lg["p50_1"] / fl["p50_1"] if fl["p50_1"] else float("nan")
        print(f"p50@1   legion/floor = {r2:.2f}   (target <= 2.00)  {'PASS' if r2 <= 2.0 else 'FAIL'}")
        print(f"RSS     legion       = {lg['rss']:.1f} MB (target <= 150 MB)  {'PASS' if lg['rss'] <= 150 else 'FAIL'}")
        d = lg["ttfb_extra"]
        print(f"TTFB    legion-direct = {d:+.2f} ms (median of interleaved pairs; target <= 1 ms)  "
              f"{'PASS' if d <= 1.0 else 'FAIL'}   (floor-direct = {fl['ttfb_extra']:+.2f} ms)")
        c = fl["cpu_ms"] / lg["cpu_ms"] if lg["cpu_ms"] else float("nan")
        print(f"CPU/req floor/legion = {c:.2f}   (the req/s ratio a dedicated core would give; "
              f"robust when other processes share core 0)")
    la = results.get("legion-auto")
    if la and fl and fl["rps_32"] and la["cpu_ms"]:
        print(f"legion-auto (every request estimated): req/s@32 / floor = {la['rps_32'] / fl['rps_32']:.2f}, "
              f"CPU/req floor/legion-auto = {fl['cpu_ms'] / la['cpu_ms']:.2f}, p50@1 / floor = "
              f"{la['p50_1'] / fl['p50_1']:.2f}, TTFB - direct = {la['ttfb_extra']:+.2f} ms")
    lt = results.get("litellm")
    if lg and lt and lt["rps_32"]:
        print(f"vs LiteLLM: req/s@32 x{lg['rps_32'] / lt['rps_32']:.1f}, p50@1 "
              f"{lt['p50_1'] / lg['p50_1']:.1f}x lower, RSS {lt['rss']:.0f} MB vs {lg['rss']:.0f} MB")
    soak_marks = (lg or {}).get("soak")
    if soak_marks:
        print("soak (requests, RSS MB): " + ", ".join(f"{n}: {m:.1f}" for n, m in soak_marks))  # type: ignore[union-attr]
        if len(soak_marks) >= 4:  # type: ignore[arg-type]
            growth = soak_marks[3][1] - soak_marks[1][1]  # type: ignore[index]
            peak = max(m for _, m in soak_marks)  # type: ignore[union-attr]
            print(f"RSS after 100k = {soak_marks[3][1]:.1f} MB (target <= 150)  growth 50k->100k = "  # type: ignore[index]
                  f"{growth:+.1f} MB (target ~0)  {'PASS' if peak <= 150 and growth <= 5 else 'FAIL'}")
    for n in notes:
        print("note:", n)


def platform_line() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


if __name__ == "__main__":
    sys.exit(main())
