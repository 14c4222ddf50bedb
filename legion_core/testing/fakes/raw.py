"""A scripted HTTP/1.1 server on loopback that writes exactly the bytes a test gives it.

For testing an HTTP client (`providers.http1`) against what real servers do at the byte
level: chunked and close-delimited bodies, gzip, interim 100 answers, a keep-alive connection
closed while idle, a body cut short, a stall, garbage. Each request is read in full (head and
Content-Length body), recorded, and answered by the next queued `Reply` (or a 200 JSON
default). Runs its own event loop in a background thread, like the other fakes.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from legion_core.testing.fakes.base import _free_port


@dataclass
class Reply:
    """What to do with one request."""

    #: written as is (status line, headers and body, or anything else)
    data: bytes = b""
    #: seconds to wait before writing
    delay: float = 0.0
    #: close the connection after writing
    close: bool = False
    #: after `data`: (seconds to wait, bytes to write) in turn (a stream's later events)
    then: list[tuple[float, bytes]] = field(default_factory=list)
    #: after writing, hold the connection open and send nothing more
    stall: bool = False


def sse_head(status: int = 200) -> bytes:
    """The head of a chunked `text/event-stream` answer; send `chunk()`s after it."""
    return (f"HTTP/1.1 {status} OK\r\nContent-Type: text/event-stream\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (`chunk(b"")` is the terminator)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def answer(body: bytes = b'{"ok": true}', status: int = 200, headers: dict[str, str] | None = None,
           *, chunked: bool = False, length: bool = True) -> bytes:
    """An HTTP/1.1 answer as bytes: Content-Length (default), chunked, or neither (the body
    then ends with the connection: pair it with `Reply(close=True)`)."""
    reason = {200: "OK", 100: "Continue", 429: "Too Many Requests", 500: "Internal Server Error"}.get(status, "X")
    lines = [f"HTTP/1.1 {status} {reason}"]
    h = {"Content-Type": "application/json", **(headers or {})}
    if chunked:
        h["Transfer-Encoding"] = "chunked"
        half = len(body) // 2
        parts = [p for p in (body[:half], body[half:]) if p]
        payload = b"".join(chunk(p) for p in parts) + chunk(b"")
    else:
        if length:
            h["Content-Length"] = str(len(body))
        payload = body
    lines += [f"{k}: {v}" for k, v in h.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


@dataclass
class Seen:
    """One request as the server read it."""

    connection: int
    request_line: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


@dataclass
class RawHTTPServer:
    host: str = "127.0.0.1"
    port: int = 0
    replies: deque[Reply] = field(default_factory=deque)
    requests: list[Seen] = field(default_factory=list)
    #: connections accepted, and those the client closed (EOF or reset) before the server did
    accepted: int = 0
    client_closed: int = 0
    #: serve TLS with this context (the URL is then https://)
    tls: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        self.port = self.port or _free_port(self.host)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._idle: set[asyncio.StreamWriter] = set()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> RawHTTPServer:
        self._thread = threading.Thread(target=self._run, name="raw-http-fake", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the raw HTTP fake did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> RawHTTPServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def close_idle(self) -> None:
        """Close every connection waiting for its next request (a server's keep-alive expiry)."""
        assert self._loop is not None
        done = threading.Event()

        def close() -> None:
            for w in list(self._idle):
                w.close()
            done.set()

        self._loop.call_soon_threadsafe(close)
        done.wait(5)

    # ------------------------------------------------------------ the server
    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        self._server = loop.run_until_complete(asyncio.start_server(self._serve, self.host, self.port,
                                                                         ssl=self.tls))
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            for w in list(self._writers):
                w.close()
            self._server.close()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        conn = self.accepted
        self._writers.add(writer)
        try:
            while True:
                self._idle.add(writer)
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    if not writer.is_closing():
                        self.client_closed += 1
                    return
                finally:
                    self._idle.discard(writer)
                lines = head.decode("latin-1").split("\r\n")
                headers = [(k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)]
                n = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
                body = await reader.readexactly(n) if n else b""
                self.requests.append(Seen(conn, lines[0], headers, body))
                reply = self.replies.popleft() if self.replies else Reply(answer())
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                try:
                    writer.write(reply.data)
                    await writer.drain()
                    for pause, more in reply.then:
                        await asyncio.sleep(pause)
                        writer.write(more)
                        await writer.drain()
                except ConnectionError:
                    self.client_closed += 1
                    return
                if reply.stall:
                    if not await reader.read(1):  # the client gave up
                        self.client_closed += 1
                    return
                if reply.close:
                    return
        finally:
            self._writers.discard(writer)
            writer.close()
