"""A real HTTP server on loopback, in a background thread, for protocol-faithful fakes.

Each fake (OpenAI, Anthropic, Ollama, Bedrock) subclasses `FakeServer`, adds its routes in
`routes()`, and uses `self.faults` to misbehave on demand: a status with a body, a
`Retry-After`, a delay, or a connection dropped mid-stream. Fakes count their calls so a
test can prove a request reached (or did not reach) an upstream, and the client connections
they came on (`connections`) so a test can prove a client reuses its connections.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Fault:
    """One injected misbehaviour, consumed by the next `times` matching calls (-1 = forever)."""

    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    #: For streams: send this many chunks, then drop the connection.
    drop_after_chunks: int | None = None
    times: int = 1


class FakeServer:
    """Start with `with Fake() as f:` (or `.start()`/`.stop()`); `f.url` is the base URL."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self.calls: Counter[str] = Counter()
        self.requests: list[dict[str, Any]] = []
        #: The distinct client (host, port) pairs recorded calls arrived from: one per TCP connection.
        self.connections: set[tuple[Any, ...]] = set()
        self.faults: list[Fault] = []
        self.reply_text = "Wednesday comes after Tuesday."
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # ----------------------------------------------------------- to override
    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    # ----------------------------------------------------------- fault helpers
    def fail_next(self, status: int, body: Any = None, times: int = 1, **kw: Any) -> None:
        self.faults.append(Fault(status=status, body=body, times=times, **kw))

    def take_fault(self) -> Fault | None:
        if not self.faults:
            return None
        f = self.faults[0]
        if f.times > 0:
            f.times -= 1
            if f.times == 0:
                self.faults.pop(0)
        return f

    def record(self, name: str, request: web.Request, body: Any) -> None:
        self.calls[name] += 1
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        if peer is not None:
            self.connections.add(tuple(peer))
        self.requests.append({"endpoint": name, "headers": dict(request.headers), "body": body,
                              "path": request.path_qs})

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    # ----------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeServer:
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{type(self).__name__} did not start")
        return self

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def stop(self) -> None:
        if self._loop and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)
        self._ready.clear()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def drop_connection(request: web.Request) -> None:
    """Abort the TCP connection without finishing the HTTP response (a broken stream)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
