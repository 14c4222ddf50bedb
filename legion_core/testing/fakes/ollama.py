"""A protocol-faithful fake of Ollama's native REST API, on a real loopback HTTP server.

Checked against Ollama's API reference:

- `POST /api/chat`: `"stream"` defaults to true. Streaming is NDJSON (`application/x-ndjson`): one
  JSON object per line, `done: false` chunks carrying `message.content`, `message.thinking` or
  `message.tool_calls` (whole calls, arguments as an object), then a final `done: true` object with
  `done_reason`, `total_duration`, `load_duration`, `prompt_eval_count`, `prompt_eval_duration`,
  `eval_count`, `eval_duration` (nanoseconds). Images ride in `messages[].images` as base64.
- `POST /api/embed` (`embeddings`), `GET /api/tags` (pulled models with size and details),
  `POST /api/show` (`model_info` with `<arch>.context_length`, `capabilities`), `GET /api/ps`
  (loaded models with `size_vram`), `GET /api/version`, `GET /` ("Ollama is running").
- Errors are `{"error": "..."}`: 404 for an unknown model ("try pulling it first"), 400 for bad
  input, 500 when the runner dies, 503 when the queue is full, 429 from rate-limiting proxies.

It follows the conformance fake protocol (`legion_core.testing.fault_kinds`): `reply_text`,
`usage` (prompt_eval_count, eval_count), `tool_arguments`, `thinking_text`, `fail_with(kind)`,
and `seen_system()` / `seen_tool_results()` / `seen_images()` for the last `/api/chat` body.

`split_writes = True` sends every NDJSON line in two TCP writes cut mid-line (and mid-UTF-8
character where possible), so clients prove they reassemble frames.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import json
import math
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from legion_core.testing.fakes.anthropic import example_input
from legion_core.testing.fakes.base import FakeServer, Fault, drop_connection
from legion_core.testing.fault_kinds import (
    DEFAULT_TOOL_ARGUMENTS,
    DEFAULT_USAGE,
    RETRY_AFTER_SECONDS,
    SLOW_SECONDS,
    sleep_unless_gone,
)

VERSION = "0.12.6"


@dataclass
class FakeModel:
    """A pulled model as `/api/tags` and `/api/show` describe it."""

    name: str
    size: int
    family: str
    context_length: int
    capabilities: list[str] = field(default_factory=lambda: ["completion"])
    parameter_size: str = "3.2B"
    quantization_level: str = "Q4_K_M"
    embedding_length: int = 8
    #: `num_ctx` set in the Modelfile (reported in `/api/show`'s `parameters`), if any.
    num_ctx: int | None = None

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()

    def details(self) -> dict[str, Any]:
        return {"parent_model": "", "format": "gguf", "family": self.family, "families": [self.family],
                "parameter_size": self.parameter_size, "quantization_level": self.quantization_level}


def default_models() -> dict[str, FakeModel]:
    ms = [
        FakeModel("llama3.2:3b", 2_019_393_189, "llama", 131_072, ["completion", "tools"]),
        FakeModel("qwen3:0.6b", 522_653_767, "qwen3", 40_960, ["completion", "tools", "thinking"],
                  parameter_size="751.63M"),
        FakeModel("llava:7b", 4_733_363_377, "llama", 32_768, ["completion", "vision"],
                  parameter_size="7B", quantization_level="Q4_0"),
        FakeModel("nomic-embed-text:latest", 274_302_450, "nomic-bert", 2_048, ["embedding"],
                  parameter_size="137M", quantization_level="F16"),
    ]
    return {m.name: m for m in ms}


#: `fail_with(kind)`: what Ollama (or the proxy in front of it) answers for each kernel error kind.
KIND_FAULTS: dict[str, tuple[int, str]] = {
    "auth": (401, "unauthorized"),
    "rate_limited": (429, "too many requests, please slow down"),
    "unavailable": (503, "server busy, please try again.  maximum pending requests exceeded"),
    "overloaded": (503, "server busy, please try again.  maximum pending requests exceeded"),
    "server_error": (500, "llama runner process has terminated: exit status 2"),
    "context_overflow": (400, "the input length exceeds the context length"),
    "content_policy": (400, "content policy violation: the request was blocked by the moderation filter"),
    "bad_request": (400, "invalid message format: unknown role \"robot\""),
    "not_found": (404, "model \"missing:latest\" not found, try pulling it first"),
}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def fake_embedding(text: str, dim: int) -> list[float]:
    """Deterministic unit vector: the same text always embeds to the same point."""
    h = hashlib.sha256(text.encode()).digest()
    raw = [(h[i % len(h)] - 127.5) / 127.5 for i in range(dim)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


class FakeOllama(FakeServer):
    """`with FakeOllama() as fake:`; `fake.models` (pulled), `fake.loaded` (for `/api/ps`)."""

    def __init__(self, *, models: dict[str, FakeModel] | None = None, api_key: str | None = None,
                 fixed_reply: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        #: Benchmark mode: no validation or bookkeeping, pre-encoded answers (calls still counted).
        self.fixed_reply = fixed_reply
        self._fixed: dict[bool, bytes] = {}
        self.models: dict[str, FakeModel] = models if models is not None else default_models()
        self.loaded: set[str] = set()
        #: When set, requests must carry `Authorization: Bearer <api_key>` (ollama.com, proxies).
        self.api_key = api_key
        self.thinking_text = "Tuesday is followed by Wednesday."
        #: The tool call's arguments; None builds them from the tool's JSON schema instead.
        self.tool_arguments: dict[str, Any] | None = dict(DEFAULT_TOOL_ARGUMENTS)
        #: (prompt_eval_count, eval_count) reported for every chat.
        self.usage: tuple[int, int] = DEFAULT_USAGE
        #: The last chat bodies received (bounded: benchmarks send thousands).
        self.chat_bodies: deque[dict[str, Any]] = deque(maxlen=64)
        self.split_writes = False
        #: (after_chunks, message): the next stream sends an `{"error": message}` line after that
        #: many chunks and ends (how Ollama reports a runner that dies mid-generation).
        self.stream_error: tuple[int, str] | None = None
        self.version = VERSION

    # ------------------------------------------------------------------ faults
    def fail_with(self, kind: str, times: int = 1, *, retry_after: float = RETRY_AFTER_SECONDS) -> None:
        """Make the next call(s) fail as Ollama (or the proxy in front of it) does for a kernel `kind`.

        Kinds (`legion_core.testing.fault_kinds`): auth, rate_limited, unavailable (503 queue full),
        server_error (500 runner died), context_overflow, content_policy (a moderating proxy's 400),
        bad_request, not_found, timeout (answers only after SLOW_SECONDS), drop_before_first,
        drop_mid_stream.
        """
        if kind == "timeout":
            self.faults.append(Fault(delay=SLOW_SECONDS, times=times))
        elif kind == "drop_before_first":
            self.faults.append(Fault(drop_after_chunks=0, times=times))
        elif kind in ("drop_mid_stream", "stream_interrupted"):
            self.faults.append(Fault(drop_after_chunks=2, times=times))
        elif kind in KIND_FAULTS:
            status, msg = KIND_FAULTS[kind]
            headers = {"retry-after": str(int(retry_after))} if status == 429 else {}
            self.faults.append(Fault(status=status, body={"error": msg}, headers=headers, times=times))
        else:
            raise ValueError(f"FakeOllama.fail_with: unknown kind {kind!r}; use one of "
                             f"{sorted([*KIND_FAULTS, 'timeout', 'drop_before_first', 'drop_mid_stream'])}")

    def last_chat(self) -> dict[str, Any]:
        if not self.chat_bodies:
            raise AssertionError("the fake has not received an /api/chat request")
        return self.chat_bodies[-1]

    def seen_system(self) -> str | None:
        parts = [m.get("content", "") for m in self.last_chat().get("messages", []) if m.get("role") == "system"]
        return "\n\n".join(parts) if parts else None

    def seen_tool_results(self) -> list[tuple[str, str]]:
        return [(m.get("tool_call_id", ""), m.get("content", ""))
                for m in self.last_chat().get("messages", []) if m.get("role") == "tool"]

    def seen_images(self) -> int:
        return sum(len(m.get("images") or []) for m in self.last_chat().get("messages", []))

    # ------------------------------------------------------------------ routes
    def routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._root)
        app.router.add_post("/api/chat", self._chat)
        app.router.add_post("/api/embed", self._embed)
        app.router.add_get("/api/tags", self._tags)
        app.router.add_post("/api/show", self._show)
        app.router.add_get("/api/ps", self._ps)
        app.router.add_get("/api/version", self._version)

    @staticmethod
    def _err(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
        return web.json_response({"error": message}, status=status, headers=headers)

    async def _prologue(self, request: web.Request, name: str, *, json_body: bool = True
                        ) -> tuple[Any, Fault | None, web.StreamResponse | None]:
        body: Any = None
        if json_body:
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                self.record(name, request, None)
                return None, None, self._err(400, "invalid character looking for beginning of value")
        self.record(name, request, body)
        fault = self.take_fault()
        if fault is not None:
            if fault.delay and fault.drop_after_chunks is None:
                if not await sleep_unless_gone(request, fault.delay):
                    return body, fault, web.Response(status=499)  # the client gave up
            if fault.status is not None:
                b = fault.body if fault.body is not None else {"error": "injected failure"}
                if isinstance(b, dict | list):
                    return body, fault, web.json_response(b, status=fault.status, headers=fault.headers)
                return body, fault, web.Response(text=str(b), status=fault.status, headers=fault.headers)
        if self.api_key is not None:
            auth = request.headers.get("authorization", "")
            if auth != f"Bearer {self.api_key}":
                return body, fault, self._err(401, "unauthorized")
        if json_body and not isinstance(body, dict):
            return body, fault, self._err(400, "request body must be a JSON object")
        return body, fault, None

    def _model(self, body: dict[str, Any]) -> tuple[FakeModel | None, web.Response | None]:
        name = body.get("model") or body.get("name")
        if not name:
            return None, self._err(400, "model is required")
        m = self.models.get(name) or self.models.get(f"{name}:latest")
        if m is None:
            return None, self._err(404, f"model \"{name}\" not found, try pulling it first")
        return m, None

    async def _root(self, request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def _version(self, request: web.Request) -> web.StreamResponse:
        _, _, bad = await self._prologue(request, "version", json_body=False)
        return bad or web.json_response({"version": self.version})

    async def _tags(self, request: web.Request) -> web.StreamResponse:
        _, _, bad = await self._prologue(request, "tags", json_body=False)
        if bad is not None:
            return bad
        return web.json_response({"models": [
            {"name": m.name, "model": m.name, "modified_at": "2025-10-01T12:00:00.000000000Z",
             "size": m.size, "digest": m.digest, "details": m.details()} for m in self.models.values()]})

    async def _show(self, request: web.Request) -> web.StreamResponse:
        body, _, bad = await self._prologue(request, "show")
        if bad is not None:
            return bad
        m, bad = self._model(body)
        if bad is not None:
            return bad
        assert m is not None
        arch = m.family.replace("-", "")
        params = 'stop "<|eot_id|>"' + (f"\nnum_ctx {m.num_ctx}" if m.num_ctx else "")
        info = {"general.architecture": arch, "general.parameter_count": 3_212_749_888,
                f"{arch}.context_length": m.context_length, f"{arch}.embedding_length": 3072,
                f"{arch}.block_count": 28}
        return web.json_response({
            "license": "LICENSE", "modelfile": f"FROM {m.name}", "parameters": params,
            "template": "{{ .Prompt }}", "details": m.details(), "model_info": info,
            "capabilities": list(m.capabilities), "modified_at": "2025-10-01T12:00:00.000000000Z"})

    async def _ps(self, request: web.Request) -> web.StreamResponse:
        _, _, bad = await self._prologue(request, "ps", json_body=False)
        if bad is not None:
            return bad
        out = []
        for name in sorted(self.loaded):
            m = self.models.get(name)
            if m is None:
                continue
            size = int(m.size * 1.2)
            out.append({"name": m.name, "model": m.name, "size": size, "digest": m.digest,
                        "details": m.details(), "expires_at": "2099-01-01T00:00:00Z", "size_vram": size,
                        "context_length": min(m.context_length, 4096)})
        return web.json_response({"models": out})

    async def _embed(self, request: web.Request) -> web.StreamResponse:
        body, _, bad = await self._prologue(request, "embed")
        if bad is not None:
            return bad
        m, bad = self._model(body)
        if bad is not None:
            return bad
        assert m is not None
        if "embedding" not in m.capabilities:
            return self._err(400, f"\"{m.name}\" does not support embeddings")
        inp = body.get("input")
        texts = [inp] if isinstance(inp, str) else inp
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return self._err(400, "invalid input type")
        for t in texts:
            if _tokens(t) > m.context_length and body.get("truncate") is False:
                return self._err(400, "the input length exceeds the context length")
        self.loaded.add(m.name)
        return web.json_response({"model": m.name,
                                  "embeddings": [fake_embedding(t, m.embedding_length) for t in texts],
                                  "total_duration": 14_143_917, "load_duration": 1_019_500,
                                  "prompt_eval_count": sum(_tokens(t) for t in texts)})

    # ------------------------------------------------------------------ chat
    def _validate_messages(self, msgs: Any, model: FakeModel) -> web.Response | None:
        if not isinstance(msgs, list):
            return self._err(400, "messages must be a list")
        for i, msg in enumerate(msgs):
            if not isinstance(msg, dict) or msg.get("role") not in ("system", "user", "assistant", "tool"):
                return self._err(400, f"invalid message format: unknown role {msg.get('role') if isinstance(msg, dict) else msg!r}")
            if not isinstance(msg.get("content", ""), str):
                return self._err(400, "json: cannot unmarshal array into Go struct field Message.messages.content of type string")
            for img in msg.get("images") or []:
                try:
                    base64.b64decode(img, validate=True)
                except (binascii.Error, ValueError, TypeError):
                    return self._err(400, f"illegal base64 data at input byte 0 (messages[{i}].images)")
            for tc in msg.get("tool_calls") or []:
                fn = tc.get("function") if isinstance(tc, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("arguments"), dict):
                    return self._err(400, "json: cannot unmarshal string into Go struct field "
                                          "ToolCallFunction.messages.tool_calls.function.arguments of type "
                                          "api.ToolCallFunctionArguments")
        return None

    def _plan(self, body: dict[str, Any], model: FakeModel) -> tuple[str, str, list[dict[str, Any]], str]:
        """(thinking, content, tool_calls, done_reason) for this request."""
        msgs = body.get("messages") or []
        last = msgs[-1] if msgs else {}
        thinking = self.thinking_text if body.get("think") and "thinking" in model.capabilities else ""
        tools = body.get("tools") or []
        if tools and last.get("role") != "tool":
            fn = tools[0].get("function") or {}
            args = self.tool_arguments if self.tool_arguments is not None else example_input(
                fn.get("parameters") or {})
            call = {"id": f"call_{uuid.uuid4().hex[:8]}",
                    "function": {"index": 0, "name": fn.get("name", ""), "arguments": args}}
            return thinking, "", [call], "stop"
        content = self.reply_text
        opts = body.get("options") or {}
        reason = "stop"
        n = opts.get("num_predict")
        words = content.split(" ")
        if isinstance(n, int) and 0 < n < len(words):
            content, reason = " ".join(words[:n]), "length"
        for s in opts.get("stop") or []:
            if s and s in content:
                content = content[: content.index(s)]
                break
        return thinking, content, [], reason

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if self.fixed_reply:
            return await self._chat_fixed(request)
        body, fault, bad = await self._prologue(request, "chat")
        if isinstance(body, dict):
            self.chat_bodies.append(body)
        if bad is not None:
            return bad
        m, bad = self._model(body)
        if bad is not None:
            return bad
        assert m is not None
        if "completion" not in m.capabilities:
            return self._err(400, f"\"{m.name}\" does not support chat")
        if (bad := self._validate_messages(body.get("messages"), m)) is not None:
            return bad
        if body.get("tools") and "tools" not in m.capabilities:
            return self._err(400, f"registry.ollama.ai/library/{m.name} does not support tools")
        if body.get("think") and "thinking" not in m.capabilities:
            return self._err(400, f"\"{m.name}\" does not support thinking")
        self.loaded.add(m.name)
        thinking, content, calls, reason = self._plan(body, m)
        prompt_tokens, eval_count = self.usage
        final = {"done": True, "done_reason": reason, "total_duration": 5_191_566_416,
                 "load_duration": 2_154_458, "prompt_eval_count": prompt_tokens,
                 "prompt_eval_duration": 383_809_000, "eval_count": eval_count,
                 "eval_duration": 4_799_921_000}
        if not body.get("stream", True):
            msg: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking:
                msg["thinking"] = thinking
            if calls:
                msg["tool_calls"] = calls
            return web.json_response({"model": m.name, "created_at": _now(), "message": msg, **final})
        return await self._stream_chat(request, m, thinking, content, calls, final, fault)

    @staticmethod
    def _stream_objects(m: FakeModel, thinking: str, content: str, calls: list[dict[str, Any]],
                        final: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The `done: false` objects of one streamed answer, and the final `done: true` one."""
        def piece(**message: Any) -> dict[str, Any]:
            return {"model": m.name, "created_at": _now(), "message": {"role": "assistant", **message},
                    "done": False}

        chunks: list[dict[str, Any]] = []
        for i, w in enumerate(thinking.split(" ") if thinking else []):
            chunks.append(piece(content="", thinking=w if i == 0 else " " + w))
        for i, w in enumerate(content.split(" ") if content else []):
            chunks.append(piece(content=w if i == 0 else " " + w))
        if calls:
            chunks.append(piece(content="", tool_calls=calls))
        last = {"model": m.name, "created_at": _now(), "message": {"role": "assistant", "content": ""},
                **final}
        return chunks, last

    async def _chat_fixed(self, request: web.Request) -> web.StreamResponse:
        """Benchmark mode: read the body, answer with pre-encoded bytes, count the call."""
        raw = await request.read()
        self.calls["chat"] += 1
        stream = not (b'"stream":false' in raw or b'"stream": false' in raw)  # Ollama streams by default
        if stream not in self._fixed:
            m = next(iter(self.models.values()))
            final = {"done": True, "done_reason": "stop", "total_duration": 1, "load_duration": 1,
                     "prompt_eval_count": self.usage[0], "prompt_eval_duration": 1,
                     "eval_count": self.usage[1], "eval_duration": 1}
            if stream:
                chunks, last = self._stream_objects(m, "", self.reply_text, [], final)
                self._fixed[stream] = b"".join(json.dumps(o).encode() + b"\n" for o in [*chunks, last])
            else:
                self._fixed[stream] = json.dumps({"model": m.name, "created_at": _now(), "message": {
                    "role": "assistant", "content": self.reply_text}, **final}).encode()
        ctype = "application/x-ndjson" if stream else "application/json"
        return web.Response(body=self._fixed[stream], content_type=ctype)

    async def _stream_chat(self, request: web.Request, m: FakeModel, thinking: str, content: str,
                           calls: list[dict[str, Any]], final: dict[str, Any],
                           fault: Fault | None) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        drop_after = fault.drop_after_chunks if fault is not None else None
        chunks, last = self._stream_objects(m, thinking, content, calls, final)
        err, self.stream_error = self.stream_error, None
        for n, obj in enumerate(chunks):
            if drop_after is not None and n >= drop_after:
                break
            if err is not None and n >= err[0]:
                await self._write_line(resp, {"error": err[1]})
                await resp.write_eof()
                return resp
            await self._write_line(resp, obj)
        if drop_after is not None:
            await sleep_unless_gone(request, 0.05)  # let the lines already written reach the client
            await drop_connection(request)
            return resp
        await self._write_line(resp, last)
        await resp.write_eof()
        return resp

    async def _write_line(self, resp: web.StreamResponse, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj, ensure_ascii=False) + "\n").encode()
        if not self.split_writes:
            await resp.write(data)
            return
        cut = len(data) // 2
        # Prefer a cut inside a multi-byte UTF-8 character, the nastiest place for a decoder.
        for k in range(len(data) - 1):
            if data[k] >= 0xC0:
                cut = k + 1
                break
        await resp.write(data[:cut])
        await asyncio.sleep(0.005)  # let the first half leave as its own TCP segment
        await resp.write(data[cut:])
