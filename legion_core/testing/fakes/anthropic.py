"""A protocol-faithful fake of Anthropic's Messages API, on a real loopback HTTP server.

Speaks what `api.anthropic.com` speaks (checked against the public API reference):

- `POST /v1/messages`: JSON, or with `"stream": true` server-sent events, each frame
  `event: <type>\\ndata: {...}\\n\\n`: `message_start`, then per content block
  `content_block_start` / `content_block_delta` (`text_delta`, `input_json_delta`,
  `thinking_delta`, `signature_delta`) / `content_block_stop`, then `message_delta`
  (stop_reason and usage) and `message_stop`, with `ping` frames in between.
- `POST /v1/messages/count_tokens`, and `GET /v1/models` (paginated with `limit`/`after_id`; each
  entry with `max_input_tokens`, `max_tokens`, `lifecycle` and `capabilities`, as the Models API has them).
- Headers: `x-api-key` (or `Authorization: Bearer`, as newer SDKs send it; must equal `api_key`
  unless that is None) and `anthropic-version`.
- Errors: `{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}` with the
  documented statuses (400 invalid_request_error, 401 authentication_error, 403 permission_error,
  404 not_found_error, 413 request_too_large, 429 rate_limit_error + `retry-after`,
  500 api_error, 529 overloaded_error). Mid-stream failures arrive as an `event: error` frame.

Behaviour (the conformance fake protocol, `legion_core.testing.fault_kinds`): it answers
`reply_text` (streamed word by word) with `usage` token counts, calls the first tool offered with
`tool_arguments` when the last user turn carries no `tool_result`, and emits a thinking block
(`thinking_text`, with a signature) when the request enables thinking. `seen_system()`,
`seen_tool_results()` and `seen_images()` report what the last `/v1/messages` call carried.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import deque
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

API_VERSION = "2023-06-01"

#: Documented error type for each status.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

#: `fail_with(kind)`: the upstream's own response for each kernel error kind.
KIND_FAULTS: dict[str, tuple[int, str, str]] = {
    "auth": (401, "authentication_error", "invalid x-api-key"),
    "rate_limited": (429, "rate_limit_error",
                     "Number of request tokens has exceeded your per-minute rate limit"),
    "context_overflow": (400, "invalid_request_error", "prompt is too long: 215344 tokens > 200000 maximum"),
    "content_policy": (400, "invalid_request_error", "Output blocked by content filtering policy"),
    "unavailable": (529, "overloaded_error", "Overloaded"),  # Anthropic's "unavailable" is 529
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "server_error": (500, "api_error", "Internal server error"),
    "bad_request": (400, "invalid_request_error", "messages: roles must alternate between \"user\" and \"assistant\""),
    "not_found": (404, "not_found_error", "model: claude-nonexistent"),
}

def model_entry(model_id: str, display_name: str, created_at: str, *, max_input_tokens: int,
                max_tokens: int, thinking: tuple[bool, bool] = (True, False), vision: bool = True,
                lifecycle: str = "active", line: str | None = None) -> dict[str, Any]:
    """One `/v1/models` entry as the Models API describes it (`thinking` = (enabled, adaptive))."""
    enabled, adaptive = thinking
    sup = lambda b: {"supported": b}  # noqa: E731
    return {
        "type": "model", "id": model_id, "display_name": display_name, "created_at": created_at,
        "lifecycle": lifecycle, "line": line, "deprecated_at": None, "retires_at": None,
        "max_input_tokens": max_input_tokens, "max_tokens": max_tokens,
        "capabilities": {
            "batch": sup(True), "citations": sup(True), "image_input": sup(vision), "pdf_input": sup(vision),
            "thinking": {"supported": enabled or adaptive,
                         "types": {"enabled": sup(enabled), "adaptive": sup(adaptive),
                                   "disabled": sup(True), "between_tools": sup(False)}},
        },
    }


DEFAULT_MODELS: list[dict[str, Any]] = [
    model_entry("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z", max_input_tokens=1_000_000,
                max_tokens=128_000, thinking=(True, True), line="opus"),
    model_entry("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z", max_input_tokens=1_000_000,
                max_tokens=64_000, thinking=(True, True), line="sonnet"),
    model_entry("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01T00:00:00Z",
                max_input_tokens=200_000, max_tokens=64_000, line="haiku"),
]


def error_body(err_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": err_type, "message": message},
            "request_id": f"req_{uuid.uuid4().hex[:24]}"}


def estimate_tokens(obj: Any) -> int:
    """A deterministic stand-in for the tokenizer: ~4 characters per token, at least 1."""
    text = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
    return max(1, len(text) // 4)


def example_input(schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments that satisfy a tool's JSON schema (what a model would plausibly send)."""
    out: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        t = prop.get("type", "string")
        if "enum" in prop:
            out[name] = prop["enum"][0]
        elif t == "string":
            out[name] = "Paris"
        elif t == "integer":
            out[name] = 3
        elif t == "number":
            out[name] = 1.5
        elif t == "boolean":
            out[name] = True
        elif t == "array":
            out[name] = []
        elif t == "object":
            out[name] = example_input(prop)
    return out


class FakeAnthropic(FakeServer):
    """`with FakeAnthropic(api_key="sk-ant-test") as fake:`; point a client at `fake.url`."""

    def __init__(self, api_key: str | None = "sk-ant-test", *, context_window: int = 200_000,
                 models: list[dict[str, Any]] | None = None, fixed_reply: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        #: Benchmark mode: no validation or bookkeeping, pre-encoded answers (calls still counted).
        self.fixed_reply = fixed_reply
        self._fixed: dict[bool, bytes] = {}
        self.api_key = api_key
        self.context_window = context_window
        self.models = models if models is not None else list(DEFAULT_MODELS)
        self.thinking_text = "The user asks which day follows Tuesday. That is Wednesday."
        #: The tool call's input; None builds it from the tool's JSON schema instead.
        self.tool_arguments: dict[str, Any] | None = dict(DEFAULT_TOOL_ARGUMENTS)
        #: (input_tokens, output_tokens) reported for every message.
        self.usage: tuple[int, int] = DEFAULT_USAGE
        #: The last chat bodies received (bounded: benchmarks send thousands).
        self.chat_bodies: deque[dict[str, Any]] = deque(maxlen=64)
        #: Emit a `ping` frame after `message_start` (as the real API does).
        self.ping = True
        #: Send every SSE frame in two TCP writes, cut mid-frame (clients must reassemble).
        self.split_writes = False
        self._stream_error: tuple[str, str] | None = None

    # ------------------------------------------------------------------ faults
    def fail_with(self, kind: str, times: int = 1, *, retry_after: float = RETRY_AFTER_SECONDS) -> None:
        """Make the next call(s) fail the way the real API does for a kernel error `kind`.

        Kinds (`legion_core.testing.fault_kinds`): auth, rate_limited, context_overflow,
        content_policy, unavailable (529 overloaded_error), server_error (500 api_error), bad_request,
        not_found, timeout (answers only after SLOW_SECONDS), drop_before_first, drop_mid_stream.
        """
        if kind == "timeout":
            self.faults.append(Fault(delay=SLOW_SECONDS, times=times))
        elif kind == "drop_before_first":
            self.faults.append(Fault(drop_after_chunks=0, times=times))
        elif kind in ("drop_mid_stream", "stream_interrupted"):
            self.faults.append(Fault(drop_after_chunks=2, times=times))
        elif kind in KIND_FAULTS:
            status, etype, msg = KIND_FAULTS[kind]
            headers = {"retry-after": str(int(retry_after))} if status == 429 else {}
            self.faults.append(Fault(status=status, body=error_body(etype, msg), headers=headers, times=times))
        else:
            raise ValueError(f"FakeAnthropic.fail_with: unknown kind {kind!r}; use one of "
                             f"{sorted([*KIND_FAULTS, 'timeout', 'drop_before_first', 'drop_mid_stream'])}")

    def last_chat(self) -> dict[str, Any]:
        if not self.chat_bodies:
            raise AssertionError("the fake has not received a /v1/messages request")
        return self.chat_bodies[-1]

    def seen_system(self) -> str | None:
        system = self.last_chat().get("system")
        if isinstance(system, list):
            return "".join(b.get("text", "") for b in system if isinstance(b, dict)) or None
        return system or None

    def _blocks(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for m in self.last_chat().get("messages", []):
            if isinstance(m.get("content"), list):
                out.extend(b for b in m["content"] if isinstance(b, dict))
        return out

    def seen_tool_results(self) -> list[tuple[str, str]]:
        res = []
        for b in self._blocks():
            if b.get("type") == "tool_result":
                c = b.get("content", "")
                if isinstance(c, list):
                    c = "".join(x.get("text", "") for x in c if isinstance(x, dict))
                res.append((b.get("tool_use_id", ""), c))
        return res

    def seen_images(self) -> int:
        return sum(1 for b in self._blocks() if b.get("type") == "image")

    # ------------------------------------------------------------------ routes
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/models/{model_id}", self._model)

    def _error(self, status: int, message: str, err_type: str | None = None,
               headers: dict[str, str] | None = None) -> web.Response:
        etype = err_type or ERROR_TYPES.get(status, "api_error")
        return web.json_response(error_body(etype, message), status=status, headers=headers)

    def _check_headers(self, request: web.Request) -> web.Response | None:
        if self.api_key is not None:
            key = request.headers.get("x-api-key")
            auth = request.headers.get("authorization", "")
            if not key and auth.lower().startswith("bearer "):
                key = auth[7:].strip()  # newer SDKs send the key as a bearer token
            if not key:
                return self._error(401, "x-api-key header is required")
            if key != self.api_key:
                return self._error(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return self._error(400, "anthropic-version: header is required")
        return None

    async def _fault_response(self, fault: Fault | None) -> web.Response | None:
        if fault is None:
            return None
        if fault.status is None:
            return None
        body = fault.body
        if body is None:
            body = error_body(ERROR_TYPES.get(fault.status, "api_error"), "injected failure")
        if isinstance(body, dict | list):
            return web.json_response(body, status=fault.status, headers=fault.headers)
        return web.Response(text=str(body), status=fault.status, headers=fault.headers)

    async def _read_json(self, request: web.Request) -> tuple[dict[str, Any] | None, web.Response | None]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None, self._error(400, "There was an error parsing the body of your request")
        if not isinstance(body, dict):
            return None, self._error(400, "request body must be a JSON object")
        return body, None

    async def _models(self, request: web.Request) -> web.Response:
        self.record("models", request, None)
        if (bad := self._check_headers(request)) is not None:
            return bad
        try:
            limit = max(1, min(1000, int(request.query.get("limit", "20"))))
        except ValueError:
            return self._error(400, "limit: Input should be a valid integer")
        data = [{"type": "model", **m} for m in self.models]
        after = request.query.get("after_id")
        if after:
            ids = [m["id"] for m in data]
            if after not in ids:
                return self._error(400, f"after_id: unknown model id {after!r}")
            data = data[ids.index(after) + 1:]
        page = data[:limit]
        return web.json_response({"data": page, "has_more": len(data) > limit,
                                  "first_id": page[0]["id"] if page else None,
                                  "last_id": page[-1]["id"] if page else None})

    async def _model(self, request: web.Request) -> web.Response:
        self.record("model", request, None)
        if (bad := self._check_headers(request)) is not None:
            return bad
        mid = request.match_info["model_id"]
        for m in self.models:
            if m["id"] == mid:
                return web.json_response({"type": "model", **m})
        return self._error(404, f"model: {mid}")

    async def _count_tokens(self, request: web.Request) -> web.Response:
        body, bad = await self._read_json(request)
        self.record("count_tokens", request, body)
        if bad is not None:
            return bad
        if (bad := self._check_headers(request)) is not None:
            return bad
        assert body is not None
        if (bad := self._validate(body, count_only=True)) is not None:
            return bad
        return web.json_response({"input_tokens": self._input_tokens(body)})

    # ------------------------------------------------------------------ validation
    def _input_tokens(self, body: dict[str, Any]) -> int:
        return estimate_tokens({"system": body.get("system"), "messages": body.get("messages"),
                                "tools": body.get("tools")})

    def _validate(self, body: dict[str, Any], count_only: bool = False) -> web.Response | None:
        if not body.get("model"):
            return self._error(400, "model: Field required")
        if not count_only and "max_tokens" not in body:
            return self._error(400, "max_tokens: Field required")
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            return self._error(400, "messages: at least one message is required")
        prev_tool_ids: set[str] = set()
        for i, m in enumerate(msgs):
            role = m.get("role") if isinstance(m, dict) else None
            if role not in ("user", "assistant"):
                return self._error(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
            content = m.get("content")
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if not isinstance(blocks, list):
                return self._error(400, f"messages.{i}.content: Input should be a valid list")
            tool_ids: set[str] = set()
            for j, b in enumerate(blocks):
                bt = b.get("type") if isinstance(b, dict) else None
                where = f"messages.{i}.content.{j}"
                if bt == "tool_use":
                    if not b.get("id") or not b.get("name") or not isinstance(b.get("input"), dict):
                        return self._error(400, f"{where}.tool_use: id, name and input are required")
                    tool_ids.add(b["id"])
                elif bt == "tool_result":
                    if b.get("tool_use_id") not in prev_tool_ids:
                        return self._error(400, f"{where}: unexpected `tool_use_id` found in `tool_result` "
                                                "blocks: " + str(b.get("tool_use_id")) + ". Each `tool_result` "
                                                "block must have a corresponding `tool_use` block in the "
                                                "previous message.")
                elif bt == "image":
                    src = b.get("source") or {}
                    if src.get("type") == "base64" and not (src.get("data") and src.get("media_type")):
                        return self._error(400, f"{where}.image.source: media_type and data are required")
                    if src.get("type") not in ("base64", "url"):
                        return self._error(400, f"{where}.image.source.type: Input should be 'base64' or 'url'")
                elif bt == "thinking":
                    if role != "assistant" or not b.get("signature"):
                        return self._error(400, f"{where}.thinking.signature: Field required")
                elif bt not in ("text", "redacted_thinking", "document"):
                    return self._error(400, f"{where}.type: unknown content block type {bt!r}")
            prev_tool_ids = tool_ids
        thinking = body.get("thinking")
        if thinking and thinking.get("type") not in ("enabled", "adaptive", "disabled"):
            return self._error(400, "thinking.type: Input should be 'enabled', 'adaptive' or 'disabled'")
        if thinking and thinking.get("type") == "enabled":
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or budget < 1024:
                return self._error(400, "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
            if not count_only and budget >= body.get("max_tokens", 0):
                return self._error(400, "`max_tokens` must be greater than `thinking.budget_tokens`")
            if body.get("temperature") not in (None, 1, 1.0):
                return self._error(400, "`temperature` may only be set to 1 when thinking is enabled")
        system = body.get("system")
        if system is not None and not isinstance(system, str):
            if not isinstance(system, list) or not all(isinstance(b, dict) and b.get("type") == "text"
                                                       and isinstance(b.get("text"), str) for b in system):
                return self._error(400, "system: Input should be a valid string or a list of text blocks")
        marks = [b.get("cache_control") for b in (system if isinstance(system, list) else [])]
        marks += [t.get("cache_control") for t in body.get("tools") or [] if isinstance(t, dict)]
        if any(m is not None and not (isinstance(m, dict) and m.get("type") == "ephemeral") for m in marks):
            return self._error(400, "cache_control.type: Input should be 'ephemeral'")
        if sum(m is not None for m in marks) > 4:
            return self._error(400, "A maximum of 4 blocks with cache_control may be provided.")
        has_tool_blocks = any(isinstance(b, dict) and b.get("type") in ("tool_use", "tool_result")
                              for m in msgs if isinstance(m.get("content"), list) for b in m["content"])
        if has_tool_blocks and not body.get("tools"):
            return self._error(400, "Requests which include `tool_use` or `tool_result` blocks must define tools.")
        choice = body.get("tool_choice")
        if choice is not None and (not isinstance(choice, dict)
                                   or choice.get("type") not in ("auto", "any", "tool", "none")):
            return self._error(400, "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
        for k, t in enumerate(body.get("tools") or []):
            if not t.get("name") or not isinstance(t.get("input_schema"), dict):
                return self._error(400, f"tools.{k}: name and input_schema are required")
        n = self._input_tokens(body)
        if n > self.context_window:
            return self._error(400, f"prompt is too long: {n} tokens > {self.context_window} maximum")
        return None

    # ------------------------------------------------------------------ the answer
    def _plan(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        """The content blocks to answer with, and the stop reason."""
        blocks: list[dict[str, Any]] = []
        thinking = body.get("thinking") or {}
        if thinking.get("type") in ("enabled", "adaptive"):
            blocks.append({"type": "thinking", "thinking": self.thinking_text,
                           "signature": "EqQBCgIYAhIM" + uuid.uuid4().hex})
        last = body["messages"][-1]
        content = last.get("content")
        answered_tool = isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
        tools = body.get("tools") or []
        choice = (body.get("tool_choice") or {}).get("type", "auto")
        if tools and not answered_tool and choice != "none":
            tool = tools[0]
            if choice == "tool":
                tool = next((t for t in tools if t["name"] == body["tool_choice"].get("name")), tool)
            args = self.tool_arguments if self.tool_arguments is not None else example_input(tool["input_schema"])
            blocks.append({"type": "text", "text": "Let me check."})
            blocks.append({"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}",
                           "name": tool["name"], "input": args})
            return blocks, "tool_use"
        text = self.reply_text
        max_tokens = int(body.get("max_tokens") or 0)
        words = text.split(" ")
        stop = "end_turn"
        if max_tokens and len(words) > max_tokens:
            text, stop = " ".join(words[:max_tokens]), "max_tokens"
        for seq in body.get("stop_sequences") or []:
            if seq and seq in text:
                text, stop = text[: text.index(seq)], "stop_sequence"
                break
        blocks.append({"type": "text", "text": text})
        return blocks, stop

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        if self.fixed_reply:
            return await self._messages_fixed(request)
        body, bad = await self._read_json(request)
        self.record("messages", request, body)
        fault = self.take_fault()
        if bad is not None:
            return bad
        assert body is not None
        self.chat_bodies.append(body)
        if fault is not None and fault.delay and fault.drop_after_chunks is None:
            if not await sleep_unless_gone(request, fault.delay):
                return web.Response(status=499)  # the client gave up; nobody reads this
        if fault is not None and fault.status is not None:
            resp = await self._fault_response(fault)
            assert resp is not None
            return resp
        if (bad := self._check_headers(request)) is not None:
            return bad
        if (bad := self._validate(body)) is not None:
            return bad
        blocks, stop = self._plan(body)
        msg_id = f"msg_{uuid.uuid4().hex[:24]}"
        in_tok, out_tok = self.usage
        if not body.get("stream"):
            return web.json_response({
                "id": msg_id, "type": "message", "role": "assistant", "model": body["model"],
                "content": blocks, "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": in_tok, "output_tokens": out_tok,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
            })
        return await self._stream(request, body, blocks, stop, msg_id, in_tok, out_tok, fault)

    def _frames(self, body: dict[str, Any], blocks: list[dict[str, Any]], stop: str, msg_id: str,
                in_tok: int, out_tok: int) -> list[tuple[str, bytes]]:
        """Every SSE frame of one answer, tagged "delta" (a content delta), "end" (from
        `message_delta` on) or "other"."""
        def frame(event: str, data: dict[str, Any]) -> bytes:
            return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()

        out: list[tuple[str, bytes]] = [("other", frame("message_start", {"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": body["model"], "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": in_tok, "output_tokens": 1, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0}}}))]
        if self.ping:
            out.append(("other", frame("ping", {"type": "ping"})))
        for idx, block in enumerate(blocks):
            start = dict(block)
            pieces: list[dict[str, Any]] = []
            if block["type"] == "text":
                start["text"] = ""
                words = block["text"].split(" ")
                pieces = [{"type": "text_delta", "text": (w if i == 0 else " " + w)}
                          for i, w in enumerate(words)]
            elif block["type"] == "thinking":
                start.update(thinking="", signature="")
                words = block["thinking"].split(" ")
                pieces = [{"type": "thinking_delta", "thinking": (w if i == 0 else " " + w)}
                          for i, w in enumerate(words)]
                pieces.append({"type": "signature_delta", "signature": block["signature"]})
            elif block["type"] == "tool_use":
                start["input"] = {}
                raw = json.dumps(block["input"])
                cut = max(1, len(raw) // 3)
                parts = [raw[:cut], raw[cut:2 * cut], raw[2 * cut:]] if raw != "{}" else [""]
                pieces = [{"type": "input_json_delta", "partial_json": p} for p in parts]
            out.append(("other", frame("content_block_start", {"type": "content_block_start", "index": idx,
                                                               "content_block": start})))
            out.extend(("delta", frame("content_block_delta", {"type": "content_block_delta", "index": idx,
                                                               "delta": piece})) for piece in pieces)
            out.append(("other", frame("content_block_stop", {"type": "content_block_stop", "index": idx})))
        out.append(("end", frame("message_delta", {"type": "message_delta",
                                                   "delta": {"stop_reason": stop, "stop_sequence": None},
                                                   "usage": {"output_tokens": out_tok}})))
        out.append(("end", frame("message_stop", {"type": "message_stop"})))
        return out

    async def _stream(self, request: web.Request, body: dict[str, Any], blocks: list[dict[str, Any]],
                      stop: str, msg_id: str, in_tok: int, out_tok: int,
                      fault: Fault | None) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"content-type": "text/event-stream; charset=utf-8",
                                                       "cache-control": "no-cache",
                                                       "request-id": f"req_{uuid.uuid4().hex[:24]}"})
        await resp.prepare(request)
        drop_after = fault.drop_after_chunks if fault is not None else None
        deltas_sent = 0
        for kind, data in self._frames(body, blocks, stop, msg_id, in_tok, out_tok):
            # a drop comes before the Nth delta, or (fewer deltas than asked) before the end
            if drop_after is not None and (kind == "end" or (kind == "delta" and deltas_sent >= drop_after)):
                await self._drop(request)
                return resp
            await self._write(resp, data)
            if kind == "delta":
                deltas_sent += 1
                if self._stream_error is not None:
                    etype, emsg = self._stream_error
                    self._stream_error = None
                    await resp.write(f"event: error\ndata: {json.dumps({'type': 'error', 'error': {'type': etype, 'message': emsg}})}\n\n".encode())
                    await resp.write_eof()
                    return resp
        await resp.write_eof()
        return resp

    async def _write(self, resp: web.StreamResponse, data: bytes) -> None:
        if not self.split_writes:
            await resp.write(data)
            return
        # Cut inside a multi-byte UTF-8 character when there is one (the nastiest place for a
        # decoder), else in the middle; the pause lets the halves leave as separate TCP segments.
        cut = next((k + 1 for k in range(len(data) - 1) if data[k] >= 0xC0), len(data) // 2)
        await resp.write(data[:cut])
        await asyncio.sleep(0.005)
        await resp.write(data[cut:])

    async def _messages_fixed(self, request: web.Request) -> web.StreamResponse:
        """Benchmark mode: read the body, answer with pre-encoded bytes, count the call."""
        raw = await request.read()
        self.calls["messages"] += 1
        stream = b'"stream":true' in raw or b'"stream": true' in raw
        if stream not in self._fixed:
            body = {"model": "claude-sonnet-4-6", "max_tokens": 64,
                    "messages": [{"role": "user", "content": "hi"}]}
            blocks, stop = self._plan(body)
            if stream:
                self._fixed[stream] = b"".join(f for _, f in self._frames(body, blocks, stop, "msg_fixed",
                                                                          *self.usage))
            else:
                self._fixed[stream] = json.dumps({
                    "id": "msg_fixed", "type": "message", "role": "assistant", "model": body["model"],
                    "content": blocks, "stop_reason": stop, "stop_sequence": None,
                    "usage": {"input_tokens": self.usage[0], "output_tokens": self.usage[1]}}).encode()
        ctype = "text/event-stream" if stream else "application/json"
        return web.Response(body=self._fixed[stream], content_type=ctype)

    @staticmethod
    async def _drop(request: web.Request) -> None:
        await sleep_unless_gone(request, 0.05)  # let the frames already written reach the client
        await drop_connection(request)

    def send_stream_error_next(self, err_type: str = "overloaded_error", message: str = "Overloaded") -> None:
        """Make the next stream emit an `event: error` frame after its first content delta, then end."""
        self._stream_error = (err_type, message)

