"""The eventstream codec, byte for byte.

Three independent parties must agree: the provider's codec, the fake's encoder (written
separately in legion_core.testing.fakes.bedrock) and botocore's own decoder.
"""

from __future__ import annotations

import json
import random
import struct
import zlib

import pytest
from botocore.eventstream import EventStreamBuffer
from legion_llm_bedrock.eventstream import (
    EventStreamDecoder,
    EventStreamError,
    decode_message,
    encode_message,
)

from legion_core.testing.fakes.bedrock import event_frame, exception_frame, frame

# AWS's published vectors (also in botocore's test-suite): an empty message, and a payload
# without headers.
EMPTY = bytes.fromhex("00000010" "00000000" "05c248eb" "7d98c8ff")
PAYLOAD_NO_HEADERS = bytes.fromhex("0000001d" "00000000" "fd528c5a") + b"{'foo':'bar'}" + bytes.fromhex("c3653936")

MESSAGE_START_HEADERS = {":event-type": "messageStart", ":content-type": "application/json",
                         ":message-type": "event"}
MESSAGE_START_PAYLOAD = b'{"role":"assistant"}'
# Laid out by hand: total 118 = 12 prelude + 82 headers + 20 payload + 4 CRC.
MESSAGE_START = (
    bytes.fromhex("00000076" "00000052" "96d5fade")                   # total, headers length, prelude CRC
    + b"\x0b:event-type" + b"\x07" + b"\x00\x0c" + b"messageStart"      # name len, name, type 7, value len, value
    + b"\x0d:content-type" + b"\x07" + b"\x00\x10" + b"application/json"
    + b"\x0d:message-type" + b"\x07" + b"\x00\x05" + b"event"
    + MESSAGE_START_PAYLOAD
    + bytes.fromhex("6fa8c599")                                         # message CRC
)


def test_published_vectors():
    assert encode_message({}, b"") == EMPTY
    assert encode_message({}, b"{'foo':'bar'}") == PAYLOAD_NO_HEADERS
    assert decode_message(EMPTY).payload == b""
    assert decode_message(PAYLOAD_NO_HEADERS).payload == b"{'foo':'bar'}"


def test_known_bedrock_event_byte_exact():
    assert len(MESSAGE_START) == 118
    # The CRCs in the literal are what zlib's CRC32 says they are.
    assert struct.unpack(">I", MESSAGE_START[8:12])[0] == zlib.crc32(MESSAGE_START[:8])
    assert struct.unpack(">I", MESSAGE_START[-4:])[0] == zlib.crc32(MESSAGE_START[:-4])
    assert encode_message(MESSAGE_START_HEADERS, MESSAGE_START_PAYLOAD) == MESSAGE_START
    assert frame(MESSAGE_START_HEADERS, MESSAGE_START_PAYLOAD) == MESSAGE_START  # the fake's encoder
    msg = decode_message(MESSAGE_START)
    assert msg.headers == MESSAGE_START_HEADERS and msg.payload == MESSAGE_START_PAYLOAD
    assert msg.event_type == "messageStart" and msg.message_type == "event"


def test_botocore_decodes_our_frames():
    data = encode_message(MESSAGE_START_HEADERS, MESSAGE_START_PAYLOAD) + exception_frame(
        "throttlingException", "slow down")
    buf = EventStreamBuffer()
    buf.add_data(data)
    msgs = list(buf)
    assert msgs[0].headers == MESSAGE_START_HEADERS and msgs[0].payload == MESSAGE_START_PAYLOAD
    assert msgs[1].headers[":exception-type"] == "throttlingException"
    assert json.loads(msgs[1].payload) == {"message": "slow down"}


def test_all_header_types_round_trip():
    import uuid

    headers = {"t": True, "f": False, "i": -7, "b": b"\x00\x01", "s": "héllo", "u": uuid.UUID(int=5)}
    msg = decode_message(encode_message(headers, b"x"))
    assert msg.headers == headers and msg.payload == b"x"


@pytest.mark.parametrize("where", ["prelude_crc", "message_crc", "payload", "total_length"])
def test_corruption_is_detected(where):
    data = bytearray(MESSAGE_START)
    if where == "prelude_crc":
        data[9] ^= 0x01
    elif where == "message_crc":
        data[-1] ^= 0x01
    elif where == "payload":
        data[-10] ^= 0x20
    else:
        data[3] ^= 0x04
    with pytest.raises(EventStreamError, match="CRC"):
        decode_message(bytes(data))
    with pytest.raises(EventStreamError, match="CRC"):
        list(EventStreamDecoder().feed(bytes(data)))


def test_impossible_length_with_valid_prelude_crc_is_rejected():
    prelude = struct.pack(">II", 8, 0)
    bogus = prelude + struct.pack(">I", zlib.crc32(prelude)) + b"\x00" * 8
    with pytest.raises(EventStreamError, match="impossible"):
        list(EventStreamDecoder().feed(bogus))


def _stream() -> tuple[bytes, list[tuple[str | None, dict]]]:
    events = [
        ("messageStart", {"role": "assistant"}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Wednesday"}}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " comes after Tuesday."}}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("messageStop", {"stopReason": "end_turn"}),
        ("metadata", {"usage": {"inputTokens": 12, "outputTokens": 7, "totalTokens": 19}}),
    ]
    data = b"".join(event_frame(t, b) for t, b in events)
    return data, events


def test_split_at_every_boundary():
    data, events = _stream()
    for cut in range(1, len(data)):
        dec = EventStreamDecoder()
        got = list(dec.feed(data[:cut])) + list(dec.feed(data[cut:]))
        assert [m.event_type for m in got] == [t for t, _ in events], cut
        assert dec.pending == 0


def test_random_chunking_and_byte_by_byte():
    data, events = _stream()
    rng = random.Random(1234)
    for _ in range(50):
        dec = EventStreamDecoder()
        got = []
        i = 0
        while i < len(data):
            n = rng.randint(1, 40)
            got += list(dec.feed(data[i:i + n]))
            i += n
        assert [m.event_type for m in got] == [t for t, _ in events]
    dec = EventStreamDecoder()
    got = [m for b in data for m in dec.feed(bytes([b]))]
    payloads = [json.loads(m.payload) for m in got]
    assert [{k: v for k, v in p.items() if k != "p"} for p in payloads] == [b for _, b in events]


def test_truncated_stream_leaves_pending_bytes():
    data, events = _stream()
    dec = EventStreamDecoder()
    got = list(dec.feed(data[:-5]))
    assert len(got) == 5 and dec.pending == len(event_frame(*events[-1])) - 5
