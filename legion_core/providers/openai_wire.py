"""The OpenAI Chat Completions wire format, both ways, and a provider base class speaking it.

Generic on purpose: it is a protocol, not a vendor. OpenAI itself, vLLM, LM Studio, LocalAI,
llama.cpp's server and most gateways speak it, so `llm-openai` and `llm-vllm` (and any
third-party plugin for another compatible server) subclass `OpenAIWireProvider` and only add
what differs: the catalog, auth, thinking switches, the max-tokens field, discovery.

Kernel types -> wire: `build_chat_body`. Wire -> kernel types: `parse_completion`,
`StreamAssembler` (SSE events -> typed chunks), `parse_embeddings`, `error_from_response`.
"""

from __future__ import annotations

import base64
import re
import struct
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx
import orjson

from legion_core.errors import (
    ContentPolicy,
    ContextOverflow,
    ProviderBadRequest,
    ProviderError,
    ProviderUnavailable,
    StreamInterrupted,
    error_for_status,
)
from legion_core.log import scrub
from legion_core.providers.http import TRANSPORT_ERRORS, retry_after_seconds, transport_error
from legion_core.providers.http1 import StreamResponse
from legion_core.providers.pool import PooledProvider, release_stream
from legion_core.types import (
    ChatRequest,
    ChatResponse,
    DoneChunk,
    EmbedResponse,
    Health,
    ImageBlock,
    Message,
    StopReason,
    StreamChunk,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ThinkingDelta,
    ToolCallDelta,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    Usage,
    UsageChunk,
    build,
    set_fields,
)

FINISH_REASONS: dict[str, StopReason] = {
    "stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
    "content_filter": "error", "eos": "end_turn",
}
_OVERFLOW_HINTS = ("maximum context length", "context length", "context_length_exceeded", "too many tokens",
                   "prompt is too long", "exceeds the context", "context window", "reduce the length")
_POLICY_HINTS = ("content_policy", "content policy", "safety system", "content management policy",
                 "content_filter", "flagged")


# ======================================================================== kernel -> wire
def _image_url(block: ImageBlock) -> str:
    if block.data:
        return f"data:{block.media_type};base64,{block.data}"
    if block.url:
        return block.url
    raise ProviderBadRequest("an image block needs `data` (base64) or `url`")


def _user_content(blocks: list[Any]) -> str | list[dict[str, Any]]:
    """Plain text stays a string (every compatible server takes that); images need parts."""
    if all(isinstance(b, TextBlock) for b in blocks):
        return "".join(b.text for b in blocks)
    parts: list[dict[str, Any]] = []
    for b in blocks:
        if isinstance(b, TextBlock):
            parts.append({"type": "text", "text": b.text})
        elif isinstance(b, ImageBlock):
            parts.append({"type": "image_url", "image_url": {"url": _image_url(b)}})
    return parts


def _tool_message(block: ToolResultBlock) -> dict[str, Any]:
    text = block.text
    if block.is_error:
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": block.tool_use_id, "content": text}


def to_wire_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """Kernel messages -> OpenAI messages.

    `request.system` becomes the first system message. Tool results (in a `user` or `tool`
    message) become one `role: tool` message each, placed before any other content of that
    message, because OpenAI requires them right after the assistant's `tool_calls`.
    """
    out: list[dict[str, Any]] = []
    if request.system:
        out.append({"role": "system", "content": request.system})
    for i, m in enumerate(request.messages):
        out.extend(_message_to_wire(m, i))
    return out


def _message_to_wire(m: Message, index: int) -> list[dict[str, Any]]:
    if type(m.content) is str and m.role in ("user", "assistant"):  # plain text: the common case
        plain: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.name and m.role == "user":
            plain["name"] = m.name
        return [plain]
    blocks = m.blocks()
    if m.role == "system":
        return [{"role": "system", "content": m.text}]
    if m.role == "assistant":
        text = "".join(b.text for b in blocks if isinstance(b, TextBlock))
        calls = [{"id": b.id, "type": "function",
                  "function": {"name": b.name, "arguments": orjson.dumps(b.input).decode()}}
                 for b in blocks if isinstance(b, ToolUseBlock)]
        msg: dict[str, Any] = {"role": "assistant", "content": text if (text or not calls) else None}
        if calls:
            msg["tool_calls"] = calls
        return [msg]
    results = [_tool_message(b) for b in blocks if isinstance(b, ToolResultBlock)]
    rest = [b for b in blocks if isinstance(b, (TextBlock, ImageBlock))]
    if m.role == "tool":
        if not results:
            raise ProviderBadRequest(
                f"messages[{index}]: a `tool` message must carry ToolResultBlock(s) with `tool_use_id`")
        return results
    out = list(results)
    if rest or not results:
        msg = {"role": "user", "content": _user_content(rest)}
        if m.name:
            msg["name"] = m.name
        out.append(msg)
    return out


def to_wire_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": t.parameters}} for t in tools]


def to_wire_tool_choice(choice: str | None) -> Any:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def to_wire_response_format(fmt: dict[str, Any] | None) -> dict[str, Any] | None:
    if not fmt:
        return None
    if fmt.get("type") == "json_schema" and "json_schema" not in fmt:
        return {"type": "json_schema", "json_schema": {"name": fmt.get("name", "response"),
                                                       "schema": fmt.get("schema", {}),
                                                       "strict": bool(fmt.get("strict", False))}}
    return fmt


def build_chat_body(request: ChatRequest, model: str, *, stream: bool, max_tokens_field: str = "max_tokens",
                    include_usage: bool = True, sampling: bool = True) -> dict[str, Any]:
    """The JSON body for `POST /chat/completions`. `sampling=False` drops temperature/top_p
    (reasoning models reject them)."""
    body: dict[str, Any] = {"model": model, "messages": to_wire_messages(request)}
    if request.tools:
        body["tools"] = to_wire_tools(request.tools)
        if request.tool_choice is not None:
            body["tool_choice"] = to_wire_tool_choice(request.tool_choice)
    if sampling and request.temperature is not None:
        body["temperature"] = request.temperature
    if sampling and request.top_p is not None:
        body["top_p"] = request.top_p
    if request.max_tokens is not None:
        body[max_tokens_field] = request.max_tokens
    if request.stop:
        body["stop"] = request.stop
    if (fmt := to_wire_response_format(request.response_format)) is not None:
        body["response_format"] = fmt
    if stream:
        body["stream"] = True
        if include_usage:
            body["stream_options"] = {"include_usage": True}
    return body


# ======================================================================== wire -> kernel
def _tool_input(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if not raw:
        return {}
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"_raw_arguments": raw}  # the model wrote invalid JSON; keep it for the caller
    return parsed if isinstance(parsed, dict) else {"_value": parsed}


def parse_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    return Usage(input_tokens=int(raw.get("prompt_tokens") or 0),
                 output_tokens=int(raw.get("completion_tokens") or 0))


def estimate_usage(request: ChatRequest | None, output_text: str) -> Usage:
    """~4 characters per token, flagged `estimated`, for servers that report nothing."""
    prompt = 0
    if request is not None:
        prompt = len(request.system or "") + sum(len(m.text) for m in request.messages)
    return Usage(input_tokens=max(1, prompt // 4), output_tokens=max(1, len(output_text) // 4),
                 estimated=True)


def parse_completion(data: dict[str, Any], *, provider: str, tier: str, model: str,
                     request: ChatRequest | None = None) -> ChatResponse:
    choices = data.get("choices") or []
    if not choices:
        raise ProviderUnavailable(f"{provider}: upstream answered without choices", provider=provider)
    choice = choices[0]
    message = choice.get("message") or {}
    content: list[Any] = []
    thinking = message.get("reasoning_content") or message.get("reasoning")
    if thinking:
        content.append(ThinkingBlock(thinking=thinking))
    text = message.get("content")
    if isinstance(text, list):  # a few servers answer with parts
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
    if text:
        content.append(TextBlock(text=text))
    elif message.get("refusal"):
        content.append(TextBlock(text=message["refusal"]))
    for tc in message.get("tool_calls") or []:
        fn = tc.get("function") or {}
        content.append(ToolUseBlock(id=tc.get("id") or f"call_{len(content)}", name=fn.get("name", ""),
                                    input=_tool_input(fn.get("arguments"))))
    finish = choice.get("finish_reason") or "stop"
    if finish == "content_filter" and not text:
        raise ContentPolicy(f"{provider}: the upstream's content filter stopped the answer",
                            provider=provider)
    stop: StopReason = FINISH_REASONS.get(finish, "end_turn")
    if any(isinstance(b, ToolUseBlock) for b in content):
        stop = "tool_use"
    usage = parse_usage(data.get("usage")) or estimate_usage(request, text or "")
    named = data.get("model")
    fields: dict[str, Any] = {"model": named if isinstance(named, str) and named else model, "provider": provider,
                              "tier": tier, "content": content, "stop_reason": stop, "usage": usage}
    if isinstance(data.get("id"), str) and data["id"]:
        fields["id"] = data["id"]
    return build(ChatResponse, fields)  # every value is typed above: no second validation


class StreamAssembler:
    """SSE `data:` payloads -> typed chunks. Usage and the final `DoneChunk` come from `finish()`."""

    def __init__(self, provider: str, request: ChatRequest | None = None) -> None:
        self.provider = provider
        self.request = request
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.done = False
        self.started = False
        self.tool_calls = False
        self._text: list[str] = []
        self._tool_indices: set[int] = set()

    def feed(self, event: dict[str, Any]) -> list[StreamChunk]:
        if "error" in event and not event.get("choices"):
            raise error_from_body(None, event, provider=self.provider)
        if event.get("object") == "error":
            raise error_from_body(event.get("code") if isinstance(event.get("code"), int) else None, event,
                                  provider=self.provider)
        out: list[StreamChunk] = []
        if (u := parse_usage(event.get("usage"))) is not None:
            self.usage = u
        for choice in event.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            thinking = delta.get("reasoning_content") or delta.get("reasoning")
            if thinking:
                out.append(ThinkingDelta(thinking=thinking))
            text = delta.get("content")
            if text:
                self._text.append(text)
                out.append(TextDelta(text=text))
            for tc in delta.get("tool_calls") or []:
                fn = tc.get("function") or {}
                index = int(tc.get("index", 0))
                first = index not in self._tool_indices  # some servers repeat id/name on every delta
                self._tool_indices.add(index)
                self.tool_calls = True
                out.append(ToolCallDelta(index=index, id=tc.get("id") if first else None,
                                         name=fn.get("name") if first else None,
                                         arguments_delta=fn.get("arguments") or ""))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        if out:
            self.started = True
        return out

    def finish(self) -> list[StreamChunk]:
        """Called at `[DONE]` or a clean end of the body; raises if the stream never finished."""
        if self.finish_reason is None:
            msg = f"{self.provider}: stream ended before the upstream finished"
            if self.started:
                raise StreamInterrupted(msg, provider=self.provider)
            raise ProviderUnavailable(msg, provider=self.provider)
        usage = self.usage or estimate_usage(self.request, "".join(self._text))
        stop: StopReason = "tool_use" if self.tool_calls else FINISH_REASONS.get(self.finish_reason, "end_turn")
        return [UsageChunk(usage=usage), DoneChunk(stop_reason=stop)]


def chunks_from_response(resp: ChatResponse) -> list[StreamChunk]:
    """A whole answer as the typed chunks a stream would have carried."""
    out: list[StreamChunk] = []
    for block in resp.content:
        if isinstance(block, ThinkingBlock):
            out.append(ThinkingDelta(thinking=block.thinking))
        elif isinstance(block, TextBlock):
            out.append(TextDelta(text=block.text))
    calls = [b for b in resp.content if isinstance(b, ToolUseBlock)]
    for i, b in enumerate(calls):
        out.append(ToolCallDelta(index=i, id=b.id, name=b.name, arguments_delta=orjson.dumps(b.input).decode()))
    return [*out, UsageChunk(usage=resp.usage), DoneChunk(stop_reason=resp.stop_reason)]


async def iter_sse(source: httpx.Response | AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any] | None]:
    """Server-sent events -> decoded `data` payloads; `None` for `[DONE]`.

    `source` is an httpx response or any async iterator of body bytes (the pool's
    `response.content.iter_any()` on the hot path).

    Works on raw bytes (no text decoding layers: the payload is JSON, which orjson reads as
    bytes). Handles `\n`/`\r\n` line ends, multi-line `data:` fields, comments
    (`: keep-alive`) and `event:`/`id:` lines.
    """
    data: list[bytes] = []
    buf = b""
    chunks = source.aiter_bytes() if isinstance(source, httpx.Response) else source
    async for raw in chunks:  # content-decoded (gateways may gzip streams)
        buf += raw
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    payload = b"\n".join(data)
                    data = []
                    if payload.strip() == b"[DONE]":
                        yield None
                        return
                    yield _decode_event(payload)
                continue
            if line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
    if buf.startswith(b"data:"):  # body ended without a final newline
        value = buf[5:]
        data.append(value[1:] if value.startswith(b" ") else value)
    if data:  # ... or without the blank line
        payload = b"\n".join(data)
        yield None if payload.strip() == b"[DONE]" else _decode_event(payload)


def _decode_event(payload: bytes | str) -> dict[str, Any]:
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise ProviderUnavailable(f"upstream sent a malformed stream event ({e})") from e
    return event if isinstance(event, dict) else {}


def parse_embeddings(data: dict[str, Any], *, provider: str, tier: str, model: str) -> EmbedResponse:
    items = sorted(data.get("data") or [], key=lambda d: d.get("index", 0))
    vectors: list[list[float]] = []
    for item in items:
        emb = item.get("embedding")
        if isinstance(emb, str):  # encoding_format=base64: little-endian float32
            raw = base64.b64decode(emb)
            emb = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        if emb and isinstance(emb[0], list):  # token-level vectors (llama.cpp without pooling): mean-pool
            emb = [sum(col) / len(emb) for col in zip(*emb, strict=True)]
        vectors.append([float(x) for x in emb or []])
    usage = data.get("usage") or {}
    return EmbedResponse(embeddings=vectors, model=data.get("model") or model, provider=provider, tier=tier,
                         usage=Usage(input_tokens=int(usage.get("prompt_tokens") or 0)))


# ======================================================================== errors
_STATUS_BY_CODE: dict[str, int] = {
    "invalid_api_key": 401, "rate_limit_exceeded": 429, "insufficient_quota": 429, "requests": 429,
    "tokens": 429, "server_error": 500, "invalid_request_error": 400, "BadRequestError": 400,
    "NotFoundError": 404, "InternalServerError": 500, "ServiceUnavailableError": 503,
}


def _error_fields(body: Any) -> tuple[str, str, str]:
    """(message, type, code) from an OpenAI error object, vLLM's top-level error, or plain text."""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, str):
            return err, "", ""
        if isinstance(err, dict):
            code = err.get("code")
            return (str(err.get("message") or err.get("detail") or ""), str(err.get("type") or ""),
                    "" if code is None else str(code))
    if isinstance(body, (bytes, str)):
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return text[:500], "", ""
    return "", "", ""


def error_from_body(status: int | None, body: Any, *, provider: str, headers: Any = None) -> ProviderError:
    """Map an upstream failure to a typed error: body details first, then the HTTP status."""
    message, etype, code = _error_fields(body)
    if status is None:  # an error event inside a stream: infer the status from the error object
        status = int(code) if code.isdigit() else _STATUS_BY_CODE.get(code) or _STATUS_BY_CODE.get(etype)
    message = scrub(message) or f"HTTP {status}"
    text = f"{provider}: upstream error {status or ''}: {message}".replace("error :", "error:")
    probe = f"{code} {etype} {message}".lower()
    kw: dict[str, Any] = {"provider": provider, "upstream_status": status, "code": code or None,
                          "type": etype or None}
    if status is None or 400 <= status < 500:
        if status != 429 and any(h in probe for h in _OVERFLOW_HINTS):
            return ContextOverflow(text, **kw)
        if status != 429 and any(h in probe for h in _POLICY_HINTS):
            return ContentPolicy(text, **kw)
    if status is None:
        return ProviderUnavailable(text, **kw)
    err = error_for_status(status, text, provider=provider, retry_after=_retry_after(headers))
    err.details.update({k: v for k, v in kw.items() if k in ("code", "type") and v})
    return err


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    if (s := retry_after_seconds(headers)) is not None:
        return s
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    reset = headers.get("x-ratelimit-reset-requests") or headers.get("x-ratelimit-reset-tokens")
    return _duration(reset) if reset else None


def _duration(text: str) -> float | None:
    """OpenAI's reset durations: '7s', '1m3s', '250ms', '2h1m'."""
    total, found = 0.0, False
    for value, unit in re.findall(r"([\d.]+)(ms|h|m|s)", text):
        found = True
        total += float(value) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total if found else None


def error_from_raw(status: int, raw: bytes, headers: Any, provider: str) -> ProviderError:
    """An upstream's error answer (status, raw body, headers) as a typed error."""
    try:
        body: Any = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = raw
    return error_from_body(status, body, provider=provider, headers=headers)


def error_from_response(response: httpx.Response, provider: str) -> ProviderError:
    """`error_from_raw` for an httpx response whose body has been read."""
    return error_from_raw(response.status_code, response.content, response.headers, provider)


# ======================================================================== the provider base
class OpenAIWireProvider(PooledProvider):
    """A provider for any server speaking OpenAI Chat Completions under `base_url` (ending in `/v1`).

    Subclasses set `kind`, `default_base_url`, and override `extra_body()` for their switches,
    `static_models()` for their catalog. HTTP goes through the provider's `Pool`: `send()`
    and `post_json()` (`providers.http1`) for completions and embeddings, `client()` (httpx)
    for the rest.
    """

    kind: ClassVar[str] = "openai_wire"
    #: `max_tokens` (vLLM, llama.cpp, most gateways) or `max_completion_tokens` (OpenAI).
    max_tokens_field: ClassVar[str] = "max_tokens"
    #: Ask for the usage chunk (`stream_options.include_usage`).
    include_usage: ClassVar[bool] = True
    #: Path for health checks, relative to the server root (None: `GET {base_url}/models`).
    health_path: ClassVar[str | None] = None

    def __init__(self, name: str, settings: Any) -> None:
        super().__init__(name, settings)
        if not self.base_url:
            raise ProviderBadRequest(f"provider {name}: set `base_url` (e.g. http://localhost:8000/v1)",
                                     provider=name)

    # ---------------------------------------------------------------- plumbing
    @property
    def api_key(self) -> str | None:
        key = self.settings.api_key
        if isinstance(key, list):
            key = next((k for k in key if k), None)
        return key or None

    def headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def _headers(self) -> dict[str, str]:
        return self.headers()

    async def send(self, path: str, body: bytes, *, accept: str = "application/json",
                   token: str | None = None) -> StreamResponse:
        """POST `body` to `base_url + path`; the caller reads and releases the (streaming)
        response. Raises `TRANSPORT_ERRORS` (map them with `transport_error`).

        `token` (the gateway's pass-through credential) replaces the configured key for this call.
        """
        return await self.pool().post(path, body, self._extra_headers(accept, token))

    @staticmethod
    def _extra_headers(accept: str = "application/json", token: str | None = None) -> dict[str, str] | None:
        """Headers beyond the pool's own for one call: another Accept, a pass-through key."""
        if accept == "application/json" and not token:
            return None
        extra = {"Accept": accept}
        if token:
            extra["Authorization"] = f"Bearer {token}"
        return extra

    @property
    def server_root(self) -> str:
        """`base_url` without its trailing `/v1` (where vLLM serves `/health` and `/metrics`)."""
        base = self.base_url or ""
        return base[:-3] if base.endswith("/v1") else base

    def sampling_allowed(self, model: str) -> bool:
        return True

    def extra_body(self, request: ChatRequest, model: str) -> dict[str, Any]:
        """Provider-specific fields merged into the chat body (thinking switches, ...)."""
        return {}

    def chat_body(self, request: ChatRequest, model: str, *, stream: bool) -> dict[str, Any]:
        body = build_chat_body(request, model, stream=stream, max_tokens_field=self.max_tokens_field,
                               include_usage=self.include_usage, sampling=self.sampling_allowed(model))
        body.update(self.extra_body(request, model))
        return body

    async def post_json(self, path: str, body: dict[str, Any], *, token: str | None = None) -> dict[str, Any]:
        try:
            status, headers, raw = await self.pool().read(path, orjson.dumps(body), self._extra_headers(token=token))
        except TRANSPORT_ERRORS as e:
            raise transport_error(e, self.name) from None
        if status >= 400:
            raise error_from_raw(status, raw, headers, self.name)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ProviderUnavailable(f"{self.name}: upstream sent invalid JSON", provider=self.name,
                                      upstream_status=status) from None
        if not isinstance(data, dict):
            raise ProviderUnavailable(f"{self.name}: upstream sent a non-object", provider=self.name)
        return data

    # ---------------------------------------------------------------- operations
    async def chat(self, request: ChatRequest, model: str) -> ChatResponse:
        t0 = time.perf_counter()
        call = self.post_json("/chat/completions", self.chat_body(request, model, stream=False),
                              token=request.pass_through_token)
        data = await self._bounded(call)
        resp = parse_completion(data, provider=self.name, tier=self.tier, model=model, request=request)
        set_fields(resp, {"request_id": request.request_id, "latency_ms": (time.perf_counter() - t0) * 1000})
        return resp

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[StreamChunk]:  # type: ignore[override]
        body = orjson.dumps(self.chat_body(request, model, stream=True))
        asm = StreamAssembler(self.name, request)
        complete = False
        try:
            resp = await self.send("/chat/completions", body, accept="text/event-stream",
                                   token=request.pass_through_token)
            try:
                if resp.status >= 400:
                    raise error_from_raw(resp.status, await resp.read(), resp.headers, self.name)
                if resp.headers.get("content-type", "").startswith("application/json"):
                    # a server that ignored `stream: true` and answered whole: replay it as chunks
                    for chunk in chunks_from_response(self._parse_whole(await resp.read(), request, model)):
                        yield chunk
                    return
                async for event in iter_sse(resp.content.iter_any()):
                    if event is None:
                        complete = True
                        break
                    for chunk in asm.feed(event):
                        yield chunk
            finally:
                await release_stream(resp, complete=complete)  # abandoned part-way: the connection closes
            for chunk in asm.finish():
                yield chunk
        except StreamInterrupted:
            raise
        except ProviderError as e:
            if asm.started:
                raise StreamInterrupted(f"{self.name}: stream broke after it started: {e.message}",
                                        provider=self.name) from e
            raise
        except TRANSPORT_ERRORS as e:
            if asm.started:
                raise StreamInterrupted(f"{self.name}: stream broke after it started ({type(e).__name__})",
                                        provider=self.name) from None
            raise transport_error(e, self.name) from None

    def _parse_whole(self, raw: bytes, request: ChatRequest, model: str) -> ChatResponse:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ProviderUnavailable(f"{self.name}: upstream sent invalid JSON", provider=self.name) from None
        return parse_completion(data, provider=self.name, tier=self.tier, model=model, request=request)

    async def embed(self, texts: list[str], model: str) -> EmbedResponse:
        """Option `embed_batch_size` splits the inputs into several calls (some servers, such as
        llama.cpp's Python server with a non-pooling model, corrupt later items of a batch)."""
        size = int(self.option("embed_batch_size", 0) or 0) or len(texts) or 1
        parts = []
        for i in range(0, max(1, len(texts)), size):
            data = await self.post_json("/embeddings", {"model": model, "input": texts[i:i + size],
                                                        "encoding_format": "float"})
            parts.append(parse_embeddings(data, provider=self.name, tier=self.tier, model=model))
        if len(parts) == 1:
            return parts[0]
        return EmbedResponse(embeddings=[v for p in parts for v in p.embeddings], model=parts[0].model,
                             provider=self.name, tier=self.tier,
                             usage=Usage(input_tokens=sum(p.usage.input_tokens for p in parts)))

    async def fetch_models(self) -> list[dict[str, Any]]:
        """The raw `GET /models` entries."""
        try:
            resp = await self.client().get("/models")
        except httpx.HTTPError as e:
            raise transport_error(e, self.name) from None
        if resp.status_code >= 400:
            raise error_from_response(resp, self.name)
        try:
            data = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            raise ProviderUnavailable(f"{self.name}: /models sent invalid JSON", provider=self.name) from None
        return [m for m in (data.get("data") or []) if isinstance(m, dict) and m.get("id")]

    async def health(self) -> Health:
        """Never raises: a report of reachability, with the reason when unhealthy."""
        t0 = time.perf_counter()
        try:
            if self.health_path is not None:
                resp = await self.client().get(self.server_root + self.health_path)
                if resp.status_code >= 400:
                    return Health(ok=False, detail=f"{self.health_path} answered HTTP {resp.status_code}")
            else:
                await self.fetch_models()
        except ProviderError as e:
            return Health(ok=False, detail=e.message)
        except httpx.HTTPError as e:
            return Health(ok=False, detail=transport_error(e, self.name).message)
        return Health(ok=True, latency_ms=(time.perf_counter() - t0) * 1000)
