"""The `application/vnd.amazon.eventstream` binary framing that ConverseStream answers with.

One message on the wire::

    [total length u32][headers length u32][prelude CRC32 u32][headers][payload][message CRC32 u32]

Integers are big-endian; the prelude CRC covers the first 8 bytes, the message CRC covers
everything before it. A header is `[name length u8][name][type u8][value]`; a string value (type 7)
and a byte array (type 6) carry a u16 length first. Both CRCs are the zlib/gzip CRC32.

HTTP hands us arbitrary slices of that stream, so `EventStreamDecoder.feed()` buffers partial
frames and yields only complete, CRC-checked messages.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

PRELUDE_LENGTH = 12
MIN_MESSAGE_LENGTH = PRELUDE_LENGTH + 4
#: AWS limits: a message is at most 16 MiB, its headers at most 128 KiB.
MAX_MESSAGE_LENGTH = 16 * 1024 * 1024
MAX_HEADERS_LENGTH = 128 * 1024

# header value types
T_TRUE, T_FALSE, T_BYTE, T_SHORT, T_INT, T_LONG, T_BYTES, T_STRING, T_TIMESTAMP, T_UUID = range(10)


class EventStreamError(ValueError):
    """A frame is corrupt (bad CRC, impossible lengths, unknown header type)."""


@dataclass
class EventMessage:
    headers: dict[str, Any] = field(default_factory=dict)
    payload: bytes = b""

    @property
    def message_type(self) -> str:
        return str(self.headers.get(":message-type", "event"))

    @property
    def event_type(self) -> str | None:
        v = self.headers.get(":event-type")
        return str(v) if v is not None else None

    @property
    def exception_type(self) -> str | None:
        v = self.headers.get(":exception-type") or self.headers.get(":error-code")
        return str(v) if v is not None else None


# ---------------------------------------------------------------- encoding
def _encode_header(name: str, value: Any) -> bytes:
    raw_name = name.encode("utf-8")
    if len(raw_name) > 255:
        raise EventStreamError(f"header name {name!r} is longer than 255 bytes")
    out = struct.pack(">B", len(raw_name)) + raw_name
    if value is True:
        return out + struct.pack(">B", T_TRUE)
    if value is False:
        return out + struct.pack(">B", T_FALSE)
    if isinstance(value, int):
        return out + struct.pack(">Bi", T_INT, value)
    if isinstance(value, uuid.UUID):
        return out + struct.pack(">B", T_UUID) + value.bytes
    if isinstance(value, bytes):
        return out + struct.pack(">BH", T_BYTES, len(value)) + value
    raw = str(value).encode("utf-8")
    if len(raw) > 0xFFFF:
        raise EventStreamError(f"header {name!r} value is longer than 65535 bytes")
    return out + struct.pack(">BH", T_STRING, len(raw)) + raw


def encode_message(headers: dict[str, Any], payload: bytes = b"") -> bytes:
    """One complete frame. Header order is preserved (it is part of the bytes, hence the CRC)."""
    raw_headers = b"".join(_encode_header(k, v) for k, v in headers.items())
    total = PRELUDE_LENGTH + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + raw_headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


# ---------------------------------------------------------------- decoding
def _decode_headers(data: bytes) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    i, n = 0, len(data)
    try:
        while i < n:
            name_len = data[i]
            i += 1
            name = data[i:i + name_len].decode("utf-8")
            i += name_len
            htype = data[i]
            i += 1
            value: Any
            if htype == T_TRUE:
                value = True
            elif htype == T_FALSE:
                value = False
            elif htype == T_BYTE:
                (value,) = struct.unpack_from(">b", data, i)
                i += 1
            elif htype == T_SHORT:
                (value,) = struct.unpack_from(">h", data, i)
                i += 2
            elif htype == T_INT:
                (value,) = struct.unpack_from(">i", data, i)
                i += 4
            elif htype in (T_LONG, T_TIMESTAMP):
                (value,) = struct.unpack_from(">q", data, i)
                i += 8
            elif htype in (T_BYTES, T_STRING):
                (length,) = struct.unpack_from(">H", data, i)
                i += 2
                raw = data[i:i + length]
                if len(raw) != length:
                    raise EventStreamError("header value runs past the headers section")
                value = raw.decode("utf-8") if htype == T_STRING else bytes(raw)
                i += length
            elif htype == T_UUID:
                value = uuid.UUID(bytes=bytes(data[i:i + 16]))
                i += 16
            else:
                raise EventStreamError(f"unknown header value type {htype} for header {name!r}")
            if i > n:
                raise EventStreamError("header runs past the headers section")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError) as e:
        raise EventStreamError(f"malformed headers: {e}") from e
    return headers


def decode_message(frame: bytes) -> EventMessage:
    """Decode exactly one complete frame (used by tests and by the streaming decoder)."""
    if len(frame) < MIN_MESSAGE_LENGTH:
        raise EventStreamError(f"frame of {len(frame)} bytes is shorter than the 16-byte minimum")
    total, headers_len, prelude_crc = struct.unpack_from(">III", frame, 0)
    if zlib.crc32(frame[:8]) != prelude_crc:
        raise EventStreamError(
            f"prelude CRC mismatch: frame says {prelude_crc:#010x}, computed {zlib.crc32(frame[:8]):#010x}")
    if total != len(frame):
        raise EventStreamError(f"frame length {len(frame)} does not match its prelude ({total})")
    if headers_len > total - MIN_MESSAGE_LENGTH:
        raise EventStreamError(f"headers length {headers_len} does not fit in a {total}-byte frame")
    (message_crc,) = struct.unpack_from(">I", frame, total - 4)
    computed = zlib.crc32(frame[:total - 4])
    if computed != message_crc:
        raise EventStreamError(f"message CRC mismatch: frame says {message_crc:#010x}, computed {computed:#010x}")
    headers = _decode_headers(frame[PRELUDE_LENGTH:PRELUDE_LENGTH + headers_len])
    payload = bytes(frame[PRELUDE_LENGTH + headers_len:total - 4])
    return EventMessage(headers=headers, payload=payload)


class EventStreamDecoder:
    """Incremental decoder: `feed()` any slice of the byte stream, get the complete messages."""

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered (non-zero at EOF means truncation)."""
        return len(self._buf)

    def feed(self, data: bytes) -> Iterator[EventMessage]:
        self._buf.extend(data)
        while len(self._buf) >= PRELUDE_LENGTH:
            total, headers_len, prelude_crc = struct.unpack_from(">III", self._buf, 0)
            # Check the prelude before trusting its length: a corrupt length must not make us
            # wait forever for bytes that will never come.
            if zlib.crc32(bytes(self._buf[:8])) != prelude_crc:
                raise EventStreamError("prelude CRC mismatch: the stream is corrupt")
            if total < MIN_MESSAGE_LENGTH or total > MAX_MESSAGE_LENGTH:
                raise EventStreamError(f"impossible frame length {total}")
            if headers_len > MAX_HEADERS_LENGTH:
                raise EventStreamError(f"headers length {headers_len} exceeds {MAX_HEADERS_LENGTH}")
            if len(self._buf) < total:
                return
            frame = bytes(self._buf[:total])
            del self._buf[:total]
            yield decode_message(frame)
