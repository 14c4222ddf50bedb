"""A Server-Sent Events response that never buffers and cancels the upstream on disconnect.

Each chunk the pipeline yields is encoded and sent at once (no batching). A watcher waits
for `http.disconnect` at the same time as the stream runs: when the client goes away, the
task pumping the pipeline is cancelled, which cancels the provider's upstream request (its
async generator is closed, and with it the pooled HTTP stream).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import Response

from legion_core.log import get_logger
from legion_core.types import DoneChunk, ErrorChunk

log = get_logger("legion.gateway")

SSE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class StreamOutcome:
    __slots__ = ("done", "error", "disconnected", "chunks")

    def __init__(self) -> None:
        self.done: DoneChunk | None = None
        self.error: ErrorChunk | BaseException | None = None
        self.disconnected = False
        self.chunks = 0


class SSEResponse(Response):
    """Streams `encoder.start()` then `encoder.encode(chunk)` for each chunk of `chunks`."""

    def __init__(self, chunks: AsyncIterator[Any], encoder: Any, headers: list[tuple[bytes, bytes]],
                 first: list[Any] | None = None,
                 on_finish: Callable[[StreamOutcome], None] | None = None) -> None:
        self.status_code = 200
        self.background = None
        self.raw_headers = SSE_HEADERS + headers
        self._chunks = chunks
        self._encoder = encoder
        self._first = first or []
        self._on_finish = on_finish
        self.outcome = StreamOutcome()

    async def _pump(self, send: Any) -> None:
        enc = self._encoder
        out = self.outcome
        # Headers and the first bytes go out back to back, in the same loop iteration: a gap
        # between the two writes lets Nagle's algorithm hold the second one until the client
        # ACKs the first (delayed ACK: milliseconds added to the time to first chunk).
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        head = enc.start()
        for c in self._first:  # chunks already pulled before the response started
            out.chunks += 1
            if isinstance(c, DoneChunk):
                out.done = c
            elif isinstance(c, ErrorChunk):
                out.error = c
            b = enc.encode(c)
            if b:
                head += b
        await send({"type": "http.response.body", "body": head, "more_body": True})
        async for chunk in self._chunks:
            out.chunks += 1
            if isinstance(chunk, DoneChunk):
                out.done = chunk
            elif isinstance(chunk, ErrorChunk):
                out.error = chunk
            b = enc.encode(chunk)
            if b:
                await send({"type": "http.response.body", "body": b, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        out = self.outcome
        me = asyncio.current_task()
        pumping = [True]

        async def watch() -> None:  # cancels the stream (and with it the upstream) on disconnect
            while True:
                msg = await receive()
                if msg.get("type") == "http.disconnect":
                    if pumping[0]:
                        out.disconnected = True
                        if me is not None:
                            me.cancel()
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            await self._pump(send)  # in this task: no extra hop before the first byte
        except asyncio.CancelledError:
            if not out.disconnected:
                raise  # the server is cancelling us: not ours to swallow
            if me is not None:
                me.uncancel()
        except OSError:
            out.disconnected = True
        except Exception as exc:  # noqa: BLE001 - a bug after the stream started: end it in-band
            out.error = exc
            log.error("stream failed after it started", error=repr(exc), exc_info=exc)
            await self._send_error(send, exc)
        finally:
            pumping[0] = False
            watcher.cancel()
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:  # noqa: BLE001
                    pass
            if self._on_finish is not None:
                try:
                    self._on_finish(out)
                except Exception as e:  # noqa: BLE001
                    log.warning("stream accounting failed", error=repr(e))

    async def _send_error(self, send: Any, exc: BaseException) -> None:
        try:
            b = self._encoder.encode(ErrorChunk(message="the stream failed after it started; the gateway "
                                                        "log has the details", kind="internal"))
            await send({"type": "http.response.body", "body": b or b"", "more_body": False})
        except Exception:  # noqa: BLE001 - the client may be gone
            pass
