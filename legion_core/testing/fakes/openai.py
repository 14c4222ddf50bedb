"""A protocol-faithful OpenAI-compatible upstream (OpenAI, vLLM, LM Studio, llama.cpp server).

Speaks the Chat Completions wire format: JSON answers and SSE streams (`data: {...}\\n\\n` ...
`data: [DONE]\\n\\n`) with `stream_options.include_usage` usage chunks, `tool_calls` deltas
(index/id/name first, then argument pieces) and vLLM's `reasoning_content` deltas when a
request enables thinking (`chat_template_kwargs.enable_thinking`). Also `/v1/embeddings`
(float or base64), `/v1/models` (vLLM adds `max_model_len`), `/health` and vLLM's Prometheus
`/metrics`. Errors are OpenAI error objects (`flavor="openai"`) or vLLM's top-level
`{"object": "error", ...}` (`flavor="vllm"`).

It follows the conformance fake protocol (`legion_core.testing.conformance`): `fail_with(kind)`,
`reply_text`, `usage`, `tool_arguments`, `thinking_text`, `seen_system()`, `seen_tool_results()`,
`seen_images()`. `latency` and `chunk_delay` simulate model time; `fixed_reply=True` skips
request bookkeeping for benchmarks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import time
import uuid
from typing import Any, Literal

from aiohttp import web

from legion_core.testing.fakes.base import FakeServer, Fault, drop_connection
from legion_core.testing.fault_kinds import (
    DEFAULT_TOOL_ARGUMENTS,
    DEFAULT_USAGE,
    RETRY_AFTER_SECONDS,
    SLOW_SECONDS,
    sleep_unless_gone,
)

DEFAULT_MODELS = ("gpt-4o-mini", "text-embedding-3-small")
EMBED_DIM = 16

#: kind -> (status, OpenAI error object, extra headers). Bodies follow the documented shapes.
_OPENAI_ERRORS: dict[str, tuple[int, dict[str, Any], dict[str, str]]] = {
    "auth": (401, {"message": "Incorrect API key provided: sk-***. You can find your API key at "
                              "https://platform.openai.com/account/api-keys.",
                   "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}, {}),
    "rate_limited": (429, {"message": "Rate limit reached for requests per min (RPM): Limit 3, Used 3, "
                                      f"Requested 1. Please try again in {RETRY_AFTER_SECONDS}s.",
                           "type": "requests", "param": None, "code": "rate_limit_exceeded"},
                     {"Retry-After": str(RETRY_AFTER_SECONDS),
                      "x-ratelimit-reset-requests": f"{RETRY_AFTER_SECONDS}s"}),
    "context_overflow": (400, {"message": "This model's maximum context length is 128000 tokens. However, "
                                          "your messages resulted in 130532 tokens. Please reduce the "
                                          "length of the messages.",
                               "type": "invalid_request_error", "param": "messages",
                               "code": "context_length_exceeded"}, {}),
    "content_policy": (400, {"message": "Your request was rejected as a result of our safety system.",
                             "type": "invalid_request_error", "param": None,
                             "code": "content_policy_violation"}, {}),
    "server_error": (500, {"message": "The server had an error while processing your request. Sorry about that!",
                           "type": "server_error", "param": None, "code": None}, {}),
    "unavailable": (503, {"message": "The engine is currently overloaded, please try again later.",
                          "type": "server_error", "param": None, "code": None}, {}),
    "bad_request": (400, {"message": "Invalid value for 'temperature': must be between 0 and 2.",
                          "type": "invalid_request_error", "param": "temperature", "code": "invalid_value"}, {}),
}
#: vLLM's own wording where it differs (its errors carry the HTTP status as `code`).
_VLLM_TYPES = {400: "BadRequestError", 401: "Unauthorized", 404: "NotFoundError", 429: "TooManyRequests",
               500: "InternalServerError", 503: "ServiceUnavailableError"}
_VLLM_CONTEXT = ("This model's maximum context length is 8192 tokens. However, you requested 9000 tokens "
                 "(8990 in the messages, 10 in the completion). Please reduce the length of the messages "
                 "or completion.")


class FakeOpenAI(FakeServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, api_key: str | None = "sk-test-fake",
                 models: tuple[str, ...] | list[str] = DEFAULT_MODELS, max_model_len: int = 8192,
                 flavor: Literal["openai", "vllm"] = "openai", fixed_reply: bool = False,
                 reply_text: str | None = None) -> None:
        super().__init__(host, port)
        self.api_key = api_key
        self.models = list(models)
        self.max_model_len = max_model_len
        self.flavor = flavor
        self.fixed_reply = fixed_reply
        if reply_text is not None:
            self.reply_text = reply_text
        self.usage: tuple[int, int] = DEFAULT_USAGE
        self.tool_arguments: dict[str, Any] = dict(DEFAULT_TOOL_ARGUMENTS)
        self.thinking_text = "Tuesday is day two, so the next is day three."
        self.healthy = True
        #: Seconds every chat call waits before answering, and between streamed chunks (model time).
        self.latency = 0.0
        self.chunk_delay = 0.0
        #: vLLM gauges served at /metrics (settable by tests).
        self.metrics: dict[str, float] = {"num_requests_running": 0.0, "num_requests_waiting": 0.0,
                                          "gpu_cache_usage_perc": 0.0}
        self.chat_bodies: list[dict[str, Any]] = []
        self._fixed: dict[bool, bytes] = {}

    # ------------------------------------------------------------ conformance protocol
    def fail_with(self, kind: str, times: int = 1) -> None:
        """Inject one of `fault_kinds.ERROR_KINDS` / `STREAM_FAULTS` in this upstream's format."""
        if kind == "timeout":
            self.faults.append(Fault(delay=SLOW_SECONDS, times=times))
        elif kind == "drop_before_first":
            self.faults.append(Fault(drop_after_chunks=0, times=times))
        elif kind == "drop_mid_stream":
            self.faults.append(Fault(drop_after_chunks=3, times=times))  # role chunk + 2 text pieces
        elif kind in _OPENAI_ERRORS:
            status, err, headers = _OPENAI_ERRORS[kind]
            if self.flavor == "vllm" and kind in ("context_overflow", "bad_request", "server_error"):
                msg = _VLLM_CONTEXT if kind == "context_overflow" else err["message"]
                body: Any = self.vllm_error(status, msg)
            else:
                body = {"error": dict(err)}
            self.fail_next(status, body, times=times, headers=dict(headers))
        else:
            raise ValueError(f"unknown fault kind {kind!r}; see legion_core.testing.fault_kinds")

    def last_chat(self) -> dict[str, Any]:
        if not self.chat_bodies:
            raise AssertionError("the fake has not received a chat request")
        return self.chat_bodies[-1]

    def seen_system(self) -> str | None:
        parts = [_text_of(m.get("content")) for m in self.last_chat().get("messages", [])
                 if m.get("role") in ("system", "developer")]
        return "\n\n".join(parts) if parts else None

    def seen_tool_results(self) -> list[tuple[str, str]]:
        return [(m.get("tool_call_id", ""), _text_of(m.get("content")))
                for m in self.last_chat().get("messages", []) if m.get("role") == "tool"]

    def seen_images(self) -> int:
        n = 0
        for m in self.last_chat().get("messages", []):
            if isinstance(m.get("content"), list):
                n += sum(1 for p in m["content"] if isinstance(p, dict) and p.get("type") == "image_url")
        return n

    @staticmethod
    def vllm_error(status: int, message: str) -> dict[str, Any]:
        return {"object": "error", "message": message, "type": _VLLM_TYPES.get(status, "BadRequestError"),
                "param": None, "code": status}

    # ------------------------------------------------------------ routes
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)

    def _error(self, status: int, message: str, etype: str, code: Any = None, param: Any = None,
               headers: dict[str, str] | None = None) -> web.Response:
        if self.flavor == "vllm":
            body: Any = self.vllm_error(status, message)
        else:
            body = {"error": {"message": message, "type": etype, "param": param, "code": code}}
        return web.json_response(body, status=status, headers=headers)

    def _check_auth(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        got = request.headers.get("Authorization", "")
        if got == f"Bearer {self.api_key}":
            return None
        if not got:
            return self._error(401, "You didn't provide an API key. You need to provide your API key in an "
                                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                               "invalid_request_error")
        key = got.removeprefix("Bearer ")
        masked = f"{key[:3]}***{key[-4:]}" if len(key) > 8 else "***"
        return self._error(401, f"Incorrect API key provided: {masked}.", "invalid_request_error",
                           code="invalid_api_key")

    async def _apply_fault(self, request: web.Request, fault: Fault | None) -> web.StreamResponse | None:
        """Status faults answer here; a pure delay stalls and then lets the call proceed."""
        if fault is None:
            return None
        if fault.delay:
            if not await sleep_unless_gone(request, fault.delay):
                return web.Response(status=499)  # client went away; nobody reads this
        if fault.status is not None:
            body = fault.body if fault.body is not None else {"error": {"message": "injected", "type": "server_error",
                                                                        "param": None, "code": None}}
            return web.json_response(body, status=fault.status, headers=fault.headers)
        return None

    async def _read_json(self, request: web.Request) -> tuple[dict[str, Any] | None, web.Response | None]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None, self._error(400, "We could not parse the JSON body of your request.",
                                     "invalid_request_error")
        if not isinstance(body, dict):
            return None, self._error(400, "The request body must be a JSON object.", "invalid_request_error")
        return body, None

    # ------------------------------------------------------------ chat
    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if self.fixed_reply:
            return await self._chat_fixed(request)
        body, err = await self._read_json(request)
        self.record("chat", request, body)
        if err is not None or body is None:
            return err  # type: ignore[return-value]
        if (denied := self._check_auth(request)) is not None:
            return denied
        fault = self.take_fault()
        if (answered := await self._apply_fault(request, fault)) is not None:
            return answered
        if (invalid := self._validate_chat(body)) is not None:
            return invalid
        self.chat_bodies.append(body)
        if self.latency and not await sleep_unless_gone(request, self.latency):
            return web.Response(status=499)
        drop = fault.drop_after_chunks if fault is not None else None
        if body.get("stream"):
            return await self._chat_stream(request, body, drop)
        if drop is not None:
            await drop_connection(request)
            return web.Response(status=499)
        return web.json_response(self._completion(body))

    def _validate_chat(self, body: dict[str, Any]) -> web.Response | None:
        model = body.get("model")
        if not model:
            return self._error(400, "you must provide a model parameter", "invalid_request_error", param="model")
        if model not in self.models:
            return self._error(404, f"The model `{model}` does not exist or you do not have access to it.",
                               "invalid_request_error", code="model_not_found")
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            return self._error(400, "Invalid 'messages': empty array. Expected an array with minimum length 1.",
                               "invalid_request_error", param="messages", code="empty_array")
        called: set[str] = set()
        for i, m in enumerate(msgs):
            role = m.get("role") if isinstance(m, dict) else None
            if role not in ("system", "developer", "user", "assistant", "tool"):
                return self._error(400, f"Invalid value for 'messages[{i}].role': {role!r}.",
                                   "invalid_request_error", param=f"messages[{i}].role")
            for tc in m.get("tool_calls") or []:
                called.add(tc.get("id", ""))
                try:
                    json.loads(tc["function"]["arguments"])
                except (KeyError, TypeError, json.JSONDecodeError):
                    return self._error(400, f"Invalid 'messages[{i}].tool_calls': arguments must be a JSON "
                                            "string.", "invalid_request_error", param=f"messages[{i}].tool_calls")
            if role == "tool" and m.get("tool_call_id") not in called:
                return self._error(400, "Invalid parameter: messages with role 'tool' must be a response to a "
                                        "preceeding message with 'tool_calls'.", "invalid_request_error",
                                   param=f"messages.[{i}].role")
        for t in body.get("tools") or []:
            if t.get("type") != "function" or not (t.get("function") or {}).get("name"):
                return self._error(400, "Invalid 'tools': each tool needs type 'function' and a function name.",
                                   "invalid_request_error", param="tools")
        return None

    def _wants_tool_call(self, body: dict[str, Any]) -> str | None:
        tools = body.get("tools") or []
        msgs = body.get("messages") or []
        if not tools or body.get("tool_choice") == "none" or (msgs and msgs[-1].get("role") == "tool"):
            return None
        return str(tools[0]["function"]["name"])

    def _thinking(self, body: dict[str, Any]) -> str | None:
        kwargs = body.get("chat_template_kwargs") or {}
        return self.thinking_text if kwargs.get("enable_thinking") and self.thinking_text else None

    def _usage(self) -> dict[str, int]:
        p, c = self.usage
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    def _envelope(self, body: dict[str, Any], obj: str) -> dict[str, Any]:
        return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": obj, "created": int(time.time()),
                "model": body.get("model", ""), "system_fingerprint": "fp_fake"}

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        out = self._envelope(body, "chat.completion")
        message: dict[str, Any] = {"role": "assistant", "content": self.reply_text, "refusal": None}
        finish = "stop"
        if (tool := self._wants_tool_call(body)) is not None:
            message["content"] = None
            message["tool_calls"] = [{"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                                      "function": {"name": tool, "arguments": json.dumps(self.tool_arguments)}}]
            finish = "tool_calls"
        if (thinking := self._thinking(body)) is not None:
            message["reasoning_content"] = thinking
        out["choices"] = [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}]
        out["usage"] = self._usage()
        return out

    def _stream_events(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        env = self._envelope(body, "chat.completion.chunk")
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            c = dict(env, choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])
            if include_usage:
                c["usage"] = None
            return c

        events = [chunk({"role": "assistant", "content": ""})]
        if (thinking := self._thinking(body)) is not None:
            events += [chunk({"reasoning_content": p}) for p in _pieces(thinking)]
        if (tool := self._wants_tool_call(body)) is not None:
            args = json.dumps(self.tool_arguments)
            events.append(chunk({"tool_calls": [{"index": 0, "id": f"call_{uuid.uuid4().hex[:24]}",
                                                 "type": "function",
                                                 "function": {"name": tool, "arguments": ""}}]}))
            step = max(1, len(args) // 3)
            events += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[i:i + step]}}]})
                       for i in range(0, len(args), step)]
            finish = "tool_calls"
        else:
            events += [chunk({"content": p}) for p in _pieces(self.reply_text)]
            finish = "stop"
        events.append(chunk({}, finish))
        if include_usage:
            events.append(dict(env, choices=[], usage=self._usage()))
        return events

    async def _chat_stream(self, request: web.Request, body: dict[str, Any],
                           drop_after: int | None) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)
        for i, event in enumerate(self._stream_events(body)):
            if drop_after is not None and i >= drop_after:
                break
            await resp.write(b"data: " + json.dumps(event).encode() + b"\n\n")
            if self.chunk_delay and not await sleep_unless_gone(request, self.chunk_delay):
                return resp
        if drop_after is not None:
            await sleep_unless_gone(request, 0.05)  # let the sent pieces reach the client first
            await drop_connection(request)
            return resp
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _chat_fixed(self, request: web.Request) -> web.StreamResponse:
        """Benchmark mode: read the body, answer with pre-encoded bytes, count the call."""
        raw = await request.read()
        self.calls["chat"] += 1
        stream = b'"stream":true' in raw or b'"stream": true' in raw
        if stream not in self._fixed:
            body = {"model": self.models[0], "stream_options": {"include_usage": True}}
            if stream:
                self._fixed[stream] = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n"
                                               for e in self._stream_events(body)) + b"data: [DONE]\n\n"
            else:
                self._fixed[stream] = json.dumps(self._completion(body)).encode()
        ctype = "text/event-stream" if stream else "application/json"
        return web.Response(body=self._fixed[stream], content_type=ctype)

    # ------------------------------------------------------------ embeddings, models, health
    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body, err = await self._read_json(request)
        self.record("embeddings", request, body)
        if err is not None or body is None:
            return err  # type: ignore[return-value]
        if (denied := self._check_auth(request)) is not None:
            return denied
        if (answered := await self._apply_fault(request, self.take_fault())) is not None:
            return answered
        model, inputs = body.get("model"), body.get("input")
        if not model:
            return self._error(400, "you must provide a model parameter", "invalid_request_error", param="model")
        if model not in self.models:
            return self._error(404, f"The model `{model}` does not exist or you do not have access to it.",
                               "invalid_request_error", code="model_not_found")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(s, str) and s for s in inputs):
            return self._error(400, "'$.input' is invalid. Please check the API reference.",
                               "invalid_request_error", param="input")
        b64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(inputs):
            vec = _vector(text)
            emb: Any = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode() if b64 else vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(len(s.split()) for s in inputs)
        return web.json_response({"object": "list", "data": data, "model": model,
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def _models(self, request: web.Request) -> web.StreamResponse:
        self.record("models", request, None)
        if (denied := self._check_auth(request)) is not None:
            return denied
        if (answered := await self._apply_fault(request, self.take_fault())) is not None:
            return answered
        data = []
        for mid in self.models:
            entry: dict[str, Any] = {"id": mid, "object": "model", "created": 1700000000,
                                     "owned_by": "vllm" if self.flavor == "vllm" else "system"}
            if self.flavor == "vllm":
                entry.update(root=mid, parent=None, max_model_len=self.max_model_len, permission=[])
            data.append(entry)
        return web.json_response({"object": "list", "data": data})

    async def _health(self, request: web.Request) -> web.StreamResponse:
        self.record("health", request, None)
        return web.Response(status=200 if self.healthy else 503)

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        self.record("metrics", request, None)
        lines = []
        label = f'{{model_name="{self.models[0] if self.models else ""}"}}'
        for name, value in self.metrics.items():
            lines += [f"# HELP vllm:{name} {name.replace('_', ' ')}", f"# TYPE vllm:{name} gauge",
                      f"vllm:{name}{label} {float(value)}"]
        return web.Response(body=("\n".join(lines) + "\n").encode(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def _pieces(text: str) -> list[str]:
    """Split into word pieces (keeping spaces) the way tokens trickle out."""
    return re.findall(r"\S+\s*|\s+", text) or [text]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _vector(text: str) -> list[float]:
    """Deterministic, distinct per text, unit-ish length."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round((b - 127.5) / 127.5, 6) for b in digest[:EMBED_DIM]]
