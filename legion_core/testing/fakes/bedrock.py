"""A protocol-faithful fake of the Amazon Bedrock runtime (Converse, ConverseStream, Titan embeddings).

What it speaks (from the public Bedrock API reference):

- `POST /model/{modelId}/converse`: JSON in, JSON out: `output.message.content[]` blocks
  (`text`, `toolUse`, `reasoningContent`), `stopReason`, `usage` (`inputTokens`, `outputTokens`,
  `totalTokens`), `metrics.latencyMs`.
- `POST /model/{modelId}/converse-stream`: `application/vnd.amazon.eventstream` binary frames,
  each with the string headers `:event-type`, `:content-type`, `:message-type`, carrying the
  events `messageStart`, `contentBlockStart` (toolUse), `contentBlockDelta` (text / toolUse input /
  reasoningContent), `contentBlockStop`, `messageStop` (stopReason), `metadata` (usage, metrics).
  Payloads carry the `"p"` padding field the real service adds. In-stream failures are frames with
  `:message-type: exception` and `:exception-type` (`throttlingException`, `validationException`,
  `modelStreamErrorException`, `internalServerException`, `serviceUnavailableException`).
- `POST /model/{modelId}/invoke` for `amazon.titan-embed-text-*`: `{"inputText"}` →
  `{"embedding", "inputTextTokenCount"}` (deterministic vectors derived from the text).
- Errors: JSON `{"message": ...}` with the `x-amzn-ErrorType` header (ThrottlingException 429,
  ValidationException 400, AccessDeniedException 403, ResourceNotFoundException 404,
  ModelTimeoutException 408, InternalServerException 500, ServiceUnavailableException 503).
- Auth: SigV4 — the fake *recomputes* the signature with botocore from the bytes it received and
  the credentials it was given, and answers 403 `InvalidSignatureException` on a mismatch — or
  `Authorization: Bearer <bearer_token>` (Bedrock API keys).

The frame encoder here is written independently of the provider's decoder on purpose: each
checks the other. Conformance-fake protocol: `fail_with(kind)`, `reply_text`, `usage`,
`tool_arguments`, `thinking_text`, `seen_system()`, `seen_tool_results()`, `seen_images()`.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import math
import struct
import uuid
import zlib
from typing import Any

from aiohttp import web

from legion_core.testing.fakes.base import FakeServer, Fault, drop_connection
from legion_core.testing.fault_kinds import (
    DEFAULT_TOOL_ARGUMENTS,
    DEFAULT_USAGE,
    RETRY_AFTER_SECONDS,
    SLOW_SECONDS,
    sleep_unless_gone,
)

TEST_ACCESS_KEY = "AKIDLEGIONFAKE000001"
TEST_SECRET_KEY = "legion-fake-secret-key/0123456789abcdef"
TEST_BEARER_TOKEN = "ABSKlegion-fake-bearer-token"
EVENTSTREAM = "application/vnd.amazon.eventstream"
#: Seconds of clock skew SigV4 tolerates before "Signature expired".
MAX_SKEW = 300

#: `fail_with(kind)` → (status, x-amzn-ErrorType, message), as the real service words them.
KIND_FAULTS: dict[str, tuple[int, str, str]] = {
    "auth": (403, "AccessDeniedException",
             "You don't have access to the model with the specified model ID."),
    "rate_limited": (429, "ThrottlingException", "Too many requests, please wait before trying again."),
    "context_overflow": (400, "ValidationException", "Input is too long for requested model."),
    "content_policy": (400, "ValidationException",
                       "Output blocked by content filtering policy."),
    "server_error": (500, "InternalServerException", "The server encountered an internal error."),
    "unavailable": (503, "ServiceUnavailableException",
                    "Bedrock is unable to process your request."),
    "bad_request": (400, "ValidationException",
                    "A conversation must alternate between user and assistant roles."),
    "not_found": (404, "ResourceNotFoundException", "Could not resolve the foundation model from "
                  "the provided model identifier."),
    "model_timeout": (408, "ModelTimeoutException", "Model has timed out in processing the request."),
}
#: Status → error type, for `fail_next(status)` without a body.
STATUS_TYPES: dict[int, str] = {
    400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
    408: "ModelTimeoutException", 424: "ModelErrorException", 429: "ThrottlingException",
    500: "InternalServerException", 503: "ServiceUnavailableException",
}
#: In-stream exception frames: kind → (`:exception-type`, message).
STREAM_EXCEPTIONS: dict[str, tuple[str, str]] = {
    "rate_limited": ("throttlingException", "Too many tokens, please wait before trying again."),
    "bad_request": ("validationException", "The model returned an invalid response."),
    "context_overflow": ("validationException", "Input is too long for requested model."),
    "model_stream_error": ("modelStreamErrorException", "The model stream failed."),
    "server_error": ("internalServerException", "The server encountered an internal error."),
    "unavailable": ("serviceUnavailableException", "Bedrock is unable to process your request."),
}


# ---------------------------------------------------------------- eventstream frames
def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One eventstream message with string-valued (type 7) headers, CRCs from zlib."""
    hb = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        hb += bytes([len(n)]) + n + b"\x07" + struct.pack(">H", len(v)) + v
    total = 12 + len(hb) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hb))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + hb + payload
    return head + struct.pack(">I", zlib.crc32(head))


def event_frame(event_type: str, body: dict[str, Any], pad: bool = True) -> bytes:
    if pad:  # the real service pads payloads so their size does not leak the text
        body = {**body, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123"[: 4 + len(event_type)]}
    return frame({":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
                 json.dumps(body, separators=(",", ":")).encode())


def exception_frame(exception_type: str, message: str) -> bytes:
    return frame({":exception-type": exception_type, ":content-type": "application/json",
                  ":message-type": "exception"}, json.dumps({"message": message}).encode())


def estimate_tokens(obj: Any) -> int:
    text = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
    return max(1, len(text) // 4)


def embedding_for(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for `text` (same text, same vector; different texts differ)."""
    raw = b""
    counter = 0
    while len(raw) < dimensions * 4:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    vals = [(x / 2**31) - 1.0 for x in struct.unpack(f">{dimensions}I", raw[: dimensions * 4])]
    norm = math.sqrt(sum(v * v for v in vals)) or 1.0
    return [v / norm for v in vals]


# ---------------------------------------------------------------- the server
class FakeBedrock(FakeServer):
    """`with FakeBedrock() as fake:`; point the provider's `base_url` at `fake.url`.

    :param access_key/secret_key/session_token: the SigV4 credentials it accepts.
    :param bearer_token: the Bedrock API key it accepts (`Authorization: Bearer ...`); None disables.
    :param check_auth: False accepts any request (for benchmarks).
    """

    def __init__(self, *, access_key: str = TEST_ACCESS_KEY, secret_key: str = TEST_SECRET_KEY,
                 session_token: str | None = None, bearer_token: str | None = TEST_BEARER_TOKEN,
                 region: str = "us-east-2", check_auth: bool = True, context_window: int = 200_000,
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.access_key, self.secret_key, self.session_token = access_key, secret_key, session_token
        self.bearer_token = bearer_token
        self.region = region
        self.check_auth = check_auth
        self.context_window = context_window
        self.usage: tuple[int, int] = DEFAULT_USAGE
        self.tool_arguments: dict[str, Any] = dict(DEFAULT_TOOL_ARGUMENTS)
        self.thinking_text = "The user asks which day follows Tuesday. That is Wednesday."
        #: Split each frame over this many TCP writes (exercises the decoder's buffering).
        self.split_frames = 1
        #: Answer as a guardrail does: a canned refusal with `stopReason: guardrail_intervened`.
        self.guardrail_intervenes = False
        self._stream_exception: tuple[str, str, int] | None = None
        self.auth_failures: list[str] = []

    # ------------------------------------------------------------------ faults
    def fail_with(self, kind: str, *, times: int = 1) -> None:
        """The next call(s) fail the way Bedrock does for a kernel error kind (see fault_kinds)."""
        if kind == "timeout":
            self.faults.append(Fault(delay=SLOW_SECONDS, times=times))
            return
        if kind == "drop_before_first":
            self.faults.append(Fault(drop_after_chunks=0, times=times))
            return
        if kind in ("drop_mid_stream", "stream_interrupted"):
            self.faults.append(Fault(drop_after_chunks=2, times=times))
            return
        if kind not in KIND_FAULTS:
            raise ValueError(f"FakeBedrock.fail_with: unknown kind {kind!r}; use one of "
                             f"{sorted([*KIND_FAULTS, 'timeout', 'drop_before_first', 'drop_mid_stream'])}")
        status, etype, msg = KIND_FAULTS[kind]
        headers = {"x-amzn-ErrorType": f"{etype}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
        if status == 429:
            headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        self.faults.append(Fault(status=status, body={"message": msg}, headers=headers, times=times))

    def stream_exception_next(self, kind: str, after_deltas: int = 1) -> None:
        """The next stream sends `after_deltas` text deltas, then an exception frame for `kind`."""
        etype, msg = STREAM_EXCEPTIONS[kind]
        self._stream_exception = (etype, msg, after_deltas)

    # ------------------------------------------------------------------ what the last request carried
    def last_body(self, endpoint: str | None = None) -> dict[str, Any]:
        for r in reversed(self.requests):
            if endpoint is None or r["endpoint"] == endpoint or (
                    endpoint == "chat" and r["endpoint"] in ("converse", "converse-stream")):
                return r["body"] or {}
        return {}

    def seen_system(self) -> str | None:
        blocks = self.last_body("chat").get("system") or []
        texts = [b["text"] for b in blocks if isinstance(b, dict) and "text" in b]
        return "\n".join(texts) if texts else None

    def seen_tool_results(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for m in self.last_body("chat").get("messages") or []:
            for b in m.get("content") or []:
                tr = b.get("toolResult") if isinstance(b, dict) else None
                if tr:
                    text = "".join(c.get("text", "") if "text" in c else json.dumps(c.get("json"))
                                   for c in tr.get("content") or [])
                    out.append((tr.get("toolUseId"), text))
        return out

    def seen_images(self) -> int:
        return sum(1 for m in self.last_body("chat").get("messages") or []
                   for b in m.get("content") or [] if isinstance(b, dict) and "image" in b)

    # ------------------------------------------------------------------ routes
    def routes(self, app: web.Application) -> None:
        app.router.add_post(r"/model/{model_id:.+}/converse-stream", self._converse_stream)
        app.router.add_post(r"/model/{model_id:.+}/converse", self._converse)
        app.router.add_post(r"/model/{model_id:.+}/invoke", self._invoke)

    def _error(self, status: int, etype: str, message: str,
               headers: dict[str, str] | None = None) -> web.Response:
        h = {"x-amzn-ErrorType": f"{etype}:http://internal.amazon.com/coral/com.amazon.bedrock/",
             "x-amzn-RequestId": str(uuid.uuid4()), **(headers or {})}
        return web.json_response({"message": message}, status=status, headers=h)

    async def _fault_response(self, fault: Fault) -> web.Response:
        assert fault.status is not None
        body = fault.body
        headers = dict(fault.headers)
        if body is None:
            etype = STATUS_TYPES.get(fault.status, "InternalServerException")
            headers.setdefault("x-amzn-ErrorType", etype)
            body = {"message": f"injected {etype}"}
        if isinstance(body, dict | list):
            return web.json_response(body, status=fault.status, headers=headers)
        return web.Response(text=str(body), status=fault.status, headers=headers)

    async def _begin(self, request: web.Request, endpoint: str
                     ) -> tuple[dict[str, Any] | None, Fault | None, web.StreamResponse | None]:
        """Read, record, authenticate, apply faults. Returns (body, fault, early response)."""
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        self.record(endpoint, request, body)
        fault = self.take_fault()
        if self.check_auth and (denied := self._authenticate(request, raw)) is not None:
            return None, None, denied
        if fault is not None and fault.status is not None:
            return None, None, await self._fault_response(fault)
        if not isinstance(body, dict):
            return None, None, self._error(400, "SerializationException", "Unable to parse request body")
        if fault is not None and fault.delay and fault.drop_after_chunks is None:
            if not await sleep_unless_gone(request, fault.delay):
                return None, None, web.Response(status=499)
        return body, fault, None

    # ------------------------------------------------------------------ auth
    def _authenticate(self, request: web.Request, raw: bytes) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            if self.bearer_token is not None and hmac.compare_digest(auth[7:].strip(), self.bearer_token):
                return None
            self.auth_failures.append("bearer")
            return self._error(403, "UnrecognizedClientException",
                               "The security token included in the request is invalid.")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            self.auth_failures.append("missing")
            return self._error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        try:
            parts = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
            akid, date, region, service, term = parts["Credential"].split("/")
            signed = parts["SignedHeaders"].split(";")
            provided = parts["Signature"]
            amz_date = request.headers["X-Amz-Date"]
        except (KeyError, ValueError):
            self.auth_failures.append("malformed")
            return self._error(403, "IncompleteSignatureException",
                               "Authorization header requires Credential, SignedHeaders and Signature.")
        if akid != self.access_key:
            self.auth_failures.append("access_key")
            return self._error(403, "UnrecognizedClientException",
                               "The security token included in the request is invalid.")
        if self.session_token is not None and request.headers.get("X-Amz-Security-Token") != self.session_token:
            self.auth_failures.append("session_token")
            return self._error(403, "UnrecognizedClientException",
                               "The security token included in the request is invalid.")
        if region != self.region or service != "bedrock" or term != "aws4_request" or date != amz_date[:8]:
            self.auth_failures.append("scope")
            return self._error(403, "InvalidSignatureException",
                               f"Credential should be scoped to a valid region and service: {region}/{service}")
        for required in ("host", "x-amz-date"):
            if required not in signed:
                self.auth_failures.append("unsigned_" + required)
                return self._error(403, "InvalidSignatureException", f"'{required}' must be a signed header")
        when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        if abs((dt.datetime.now(dt.UTC) - when).total_seconds()) > MAX_SKEW:
            self.auth_failures.append("expired")
            return self._error(403, "InvalidSignatureException", "Signature expired")
        expected = self._expected_signature(request, raw, signed, amz_date)
        if not hmac.compare_digest(expected, provided):
            self.auth_failures.append("signature")
            return self._error(403, "InvalidSignatureException",
                               "The request signature we calculated does not match the signature you "
                               "provided. Check your AWS Secret Access Key and signing method.")
        return None

    def _expected_signature(self, request: web.Request, raw: bytes, signed: list[str], amz_date: str) -> str:
        """Recompute SigV4 with botocore over exactly the headers the client says it signed."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        headers = {h: request.headers.get(h, "") for h in signed}
        url = f"http://{request.headers.get('Host', '')}{request.raw_path}"
        areq = AWSRequest(method=request.method, url=url, data=raw, headers=headers)
        areq.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(self.access_key, self.secret_key, self.session_token),
                           "bedrock", self.region)
        canonical = signer.canonical_request(areq)
        return signer.signature(signer.string_to_sign(areq, canonical), areq)

    # ------------------------------------------------------------------ validation and the answer
    def _validate(self, body: dict[str, Any]) -> web.Response | None:
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            return self._error(400, "ValidationException", "messages: at least one message is required")
        prev_role = None
        prev_tool_ids: set[str] = set()
        for i, m in enumerate(msgs):
            role = m.get("role")
            if role not in ("user", "assistant"):
                return self._error(400, "ValidationException",
                                   f"messages.{i}.role: must be one of user, assistant")
            if role == prev_role:
                return self._error(400, "ValidationException",
                                   "A conversation must alternate between user and assistant roles.")
            if i == 0 and role != "user":
                return self._error(400, "ValidationException", "A conversation must start with a user message.")
            content = m.get("content")
            if not isinstance(content, list) or not content:
                return self._error(400, "ValidationException", f"messages.{i}.content: must be a non-empty list")
            ids: set[str] = set()
            for j, b in enumerate(content):
                keys = set(b) if isinstance(b, dict) else set()
                if len(keys) != 1 or not keys <= {"text", "image", "toolUse", "toolResult",
                                                  "reasoningContent", "document"}:
                    return self._error(400, "ValidationException",
                                       f"messages.{i}.content.{j}: a content block has exactly one member")
                if "toolUse" in b:
                    tu = b["toolUse"]
                    if not tu.get("toolUseId") or not tu.get("name") or "input" not in tu:
                        return self._error(400, "ValidationException",
                                           f"messages.{i}.content.{j}.toolUse: toolUseId, name, input required")
                    ids.add(tu["toolUseId"])
                if "toolResult" in b and b["toolResult"].get("toolUseId") not in prev_tool_ids:
                    return self._error(400, "ValidationException",
                                       f"messages.{i}.content.{j}.toolResult: toolUseId does not match a "
                                       "toolUse in the previous turn")
                if "image" in b:
                    img = b["image"]
                    if img.get("format") not in ("png", "jpeg", "gif", "webp"):
                        return self._error(400, "ValidationException", "image.format must be png|jpeg|gif|webp")
                    try:
                        base64.b64decode((img.get("source") or {}).get("bytes", ""), validate=True)
                    except (ValueError, TypeError):
                        return self._error(400, "ValidationException", "image.source.bytes must be base64")
            prev_role, prev_tool_ids = role, ids
        has_tool_blocks = any("toolUse" in b or "toolResult" in b for m in msgs for b in m["content"])
        if has_tool_blocks and not (body.get("toolConfig") or {}).get("tools"):
            return self._error(400, "ValidationException", "The toolConfig field must be defined when using "
                                                           "toolUse and toolResult content blocks.")
        inf = body.get("inferenceConfig") or {}
        if "maxTokens" in inf and (not isinstance(inf["maxTokens"], int) or inf["maxTokens"] < 1):
            return self._error(400, "ValidationException", "inferenceConfig.maxTokens must be >= 1")
        if estimate_tokens(msgs) > self.context_window:
            return self._error(400, "ValidationException", "Input is too long for requested model.")
        return None

    def _thinking_requested(self, body: dict[str, Any]) -> bool:
        extra = body.get("additionalModelRequestFields") or {}
        return (extra.get("thinking") or {}).get("type") == "enabled" or bool(extra.get("reasoning_config"))

    def _plan(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        blocks: list[dict[str, Any]] = []
        if self._thinking_requested(body):
            blocks.append({"reasoningContent": {"reasoningText": {
                "text": self.thinking_text, "signature": "sig-" + uuid.uuid4().hex}}})
        last = body["messages"][-1]
        answered = any("toolResult" in b for b in last["content"])
        tc = body.get("toolConfig") or {}
        tools = [t["toolSpec"] for t in tc.get("tools") or [] if "toolSpec" in t]
        if tools and not answered and last["role"] == "user":
            tool = tools[0]
            forced = (tc.get("toolChoice") or {}).get("tool")
            if forced:
                tool = next((t for t in tools if t["name"] == forced.get("name")), tool)
            blocks.append({"toolUse": {"toolUseId": "tooluse_" + uuid.uuid4().hex[:22], "name": tool["name"],
                                       "input": dict(self.tool_arguments)}})
            return blocks, "tool_use"
        if self.guardrail_intervenes:
            return [{"text": "Sorry, the model cannot answer this question."}], "guardrail_intervened"
        text = self.reply_text
        stop = "end_turn"
        inf = body.get("inferenceConfig") or {}
        for seq in inf.get("stopSequences") or []:
            if seq and seq in text:
                text, stop = text[: text.index(seq)], "stop_sequence"
                break
        blocks.append({"text": text})
        return blocks, stop

    def _usage(self) -> dict[str, int]:
        i, o = self.usage
        return {"inputTokens": i, "outputTokens": o, "totalTokens": i + o}

    async def _converse(self, request: web.Request) -> web.StreamResponse:
        body, _fault, early = await self._begin(request, "converse")
        if early is not None:
            return early
        assert body is not None
        if (bad := self._validate(body)) is not None:
            return bad
        blocks, stop = self._plan(body)
        return web.json_response({
            "output": {"message": {"role": "assistant", "content": blocks}},
            "stopReason": stop, "usage": self._usage(), "metrics": {"latencyMs": 42},
        }, headers={"x-amzn-RequestId": str(uuid.uuid4())})

    async def _converse_stream(self, request: web.Request) -> web.StreamResponse:
        body, fault, early = await self._begin(request, "converse-stream")
        if early is not None:
            return early
        assert body is not None
        if (bad := self._validate(body)) is not None:
            return bad
        blocks, stop = self._plan(body)
        resp = web.StreamResponse(status=200, headers={"Content-Type": EVENTSTREAM,
                                                       "x-amzn-RequestId": str(uuid.uuid4())})
        await resp.prepare(request)
        drop_after = fault.drop_after_chunks if fault is not None else None
        exc = self._stream_exception
        self._stream_exception = None
        deltas = 0

        async def send(data: bytes) -> None:
            n = max(1, self.split_frames)
            step = max(1, math.ceil(len(data) / n))
            for k in range(0, len(data), step):
                await resp.write(data[k:k + step])

        await send(event_frame("messageStart", {"role": "assistant"}))
        for idx, block in enumerate(blocks):
            pieces: list[dict[str, Any]] = []
            if "text" in block:
                words = block["text"].split(" ")
                pieces = [{"text": w if i == 0 else " " + w} for i, w in enumerate(words)]
            elif "reasoningContent" in block:
                rt = block["reasoningContent"]["reasoningText"]
                words = rt["text"].split(" ")
                pieces = [{"reasoningContent": {"text": w if i == 0 else " " + w}} for i, w in enumerate(words)]
                pieces.append({"reasoningContent": {"signature": rt["signature"]}})
            elif "toolUse" in block:
                tu = block["toolUse"]
                await send(event_frame("contentBlockStart", {"contentBlockIndex": idx, "start": {
                    "toolUse": {"toolUseId": tu["toolUseId"], "name": tu["name"]}}}))
                raw = json.dumps(tu["input"])
                cut = max(1, len(raw) // 3)
                pieces = [{"toolUse": {"input": p}} for p in (raw[:cut], raw[cut:2 * cut], raw[2 * cut:]) if p]
            for piece in pieces:
                if drop_after is not None and deltas >= drop_after:
                    await drop_connection(request)
                    return resp
                if exc is not None and deltas >= exc[2]:
                    await send(exception_frame(exc[0], exc[1]))
                    await resp.write_eof()
                    return resp
                await send(event_frame("contentBlockDelta", {"contentBlockIndex": idx, "delta": piece}))
                deltas += 1
                await asyncio.sleep(0)
            await send(event_frame("contentBlockStop", {"contentBlockIndex": idx}))
        if drop_after is not None:  # fewer deltas than asked for: still never finish cleanly
            await drop_connection(request)
            return resp
        if exc is not None:
            await send(exception_frame(exc[0], exc[1]))
            await resp.write_eof()
            return resp
        await send(event_frame("messageStop", {"stopReason": stop}))
        await send(event_frame("metadata", {"usage": self._usage(), "metrics": {"latencyMs": 42}}))
        await resp.write_eof()
        return resp

    async def _invoke(self, request: web.Request) -> web.StreamResponse:
        body, _fault, early = await self._begin(request, "invoke")
        if early is not None:
            return early
        assert body is not None
        model = request.match_info["model_id"]
        if not model.startswith("amazon.titan-embed-text"):
            return self._error(400, "ValidationException", f"the fake only serves Titan text embeddings, not {model}")
        text = body.get("inputText")
        if not isinstance(text, str) or not text:
            return self._error(400, "ValidationException", "inputText: must be a non-empty string")
        dims = int(body.get("dimensions") or 1024)
        if dims not in (256, 512, 1024):
            return self._error(400, "ValidationException", "dimensions: must be 256, 512 or 1024")
        return web.json_response({"embedding": embedding_for(text, dims),
                                  "inputTextTokenCount": estimate_tokens(text)})
