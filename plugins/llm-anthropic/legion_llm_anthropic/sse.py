"""Server-sent events framing (the WHATWG rules the Messages API follows).

Frames end with a blank line; `event:` names the type, `data:` lines are joined with "\\n",
lines starting with ":" are comments. Bytes may be split anywhere across TCP reads, including
inside a UTF-8 sequence or between "\\r" and "\\n", so the decoder buffers raw bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass
class Event:
    event: str
    data: str


class SSEDecoder:
    def __init__(self) -> None:
        self._buf = b""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[Event]:
        self._buf += chunk
        out: list[Event] = []
        while True:
            i = self._buf.find(b"\n")
            if i < 0:
                break
            raw, self._buf = self._buf[:i], self._buf[i + 1:]
            line = raw[:-1] if raw.endswith(b"\r") else raw
            ev = self._line(line.decode("utf-8"))
            if ev is not None:
                out.append(ev)
        return out

    def _line(self, line: str) -> Event | None:
        if not line:
            if not self._event and not self._data:
                return None
            ev = Event(self._event or "message", "\n".join(self._data))
            self._event, self._data = "", []
            return ev
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        return None

    @property
    def pending(self) -> bool:
        """True when a frame was started but not finished (the stream was cut)."""
        return bool(self._buf.strip() or self._event or self._data)


async def iter_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[Event]:
    dec = SSEDecoder()
    async for chunk in chunks:
        for ev in dec.feed(chunk):
            yield ev
