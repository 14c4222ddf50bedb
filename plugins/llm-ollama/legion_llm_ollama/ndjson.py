"""Newline-delimited JSON framing. A line may arrive split across any number of TCP reads
(even inside a UTF-8 character), so bytes are buffered until a newline completes the frame."""

from __future__ import annotations

from typing import Any

import orjson


class NDJSONDecoder:
    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[Any]:
        self._buf += chunk
        if b"\n" not in self._buf:
            return []
        *lines, self._buf = self._buf.split(b"\n")
        return [orjson.loads(line) for line in lines if line.strip()]

    def flush(self) -> list[Any]:
        """Whatever is left when the body ends (a last line without its newline)."""
        rest, self._buf = self._buf, b""
        return [orjson.loads(rest)] if rest.strip() else []
