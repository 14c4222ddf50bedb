"""The Anthropic Messages API as a Legion provider: direct HTTP over the provider's pool (aiohttp's
client for messages, httpx for the calls off the hot path)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from legion_core.errors import (
    ContentPolicy,
    ProviderError,
    ProviderUnavailable,
    SettingsError,
    StreamInterrupted,
)
from legion_core.providers.http import TRANSPORT_ERRORS, transport_error
from legion_core.providers.pool import PooledProvider, release_stream
from legion_core.settings.models import ProviderSettings
from legion_core.types import (
    ChatRequest,
    ChatResponse,
    DoneChunk,
    Health,
    ModelInfo,
    StreamChunk,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    Usage,
    UsageChunk,
)
from legion_llm_anthropic import catalog
from legion_llm_anthropic.errors import from_error_body
from legion_llm_anthropic.sse import SSEDecoder
from legion_llm_anthropic.wire import (
    REDACTED,
    STOP_REASONS,
    request_to_wire,
    response_from_wire,
    usage_from_wire,
)

API_VERSION = "2023-06-01"


def _first_secret(value: Any) -> str | None:
    if isinstance(value, list):
        return next((v for v in value if v), None)
    return value or None


class AnthropicProvider(PooledProvider):
    """Options under `llm.providers.<name>` besides the common ones: `anthropic_version`,
    `beta` (list of `anthropic-beta` flags), `max_tokens_default`, `thinking_mode`
    (auto/enabled/adaptive), `thinking_budget_tokens`, `prompt_caching`, `health_timeout`."""

    kind = "anthropic"
    default_tier = "frontier"
    default_base_url = "https://api.anthropic.com"
    credential_keys = ("api_key",)
    needs_credentials = True

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        super().__init__(name, settings)
        #: model id -> "enabled"/"adaptive", as the Models API reported it (discovery).
        self.thinking_modes: dict[str, str] = {}
        self._max_tokens_default = self.number_option("max_tokens_default", 4096, integer=True, minimum=1)
        self._thinking_budget = self.number_option("thinking_budget_tokens", 4096, integer=True, minimum=1024)
        self._health_timeout = self.number_option("health_timeout", 5.0, minimum=0.01)
        self._prompt_caching = self.option("prompt_caching", False)
        if not isinstance(self._prompt_caching, bool):
            raise SettingsError("must be true or false", key=f"llm.providers.{name}.prompt_caching",
                                got=repr(self._prompt_caching), expected="a boolean")
        self._thinking_setting = str(self.option("thinking_mode", "auto"))
        if self._thinking_setting not in ("auto", "enabled", "adaptive"):
            raise SettingsError("must be auto, enabled or adaptive", key=f"llm.providers.{name}.thinking_mode",
                                got=repr(self._thinking_setting), expected="auto | enabled | adaptive")

    @classmethod
    def auto_settings(cls) -> ProviderSettings | None:
        return ProviderSettings(type=cls.kind, api_key="env://ANTHROPIC_API_KEY",
                                default_model=catalog.DEFAULT_MODEL)

    # ------------------------------------------------------------------ plumbing
    def _headers(self) -> dict[str, str]:
        h = {"anthropic-version": str(self.option("anthropic_version", API_VERSION)),
             "content-type": "application/json", "accept": "application/json"}
        key = _first_secret(self.settings.api_key)
        if key:
            h["x-api-key"] = key
        beta = self.option("beta")
        if beta:
            h["anthropic-beta"] = ",".join(beta) if isinstance(beta, list) else str(beta)
        return h


    def _body(self, request: ChatRequest, model: str, stream: bool) -> dict[str, Any]:
        mode = self._thinking_setting
        body = request_to_wire(request, model,
                               max_tokens_default=self._max_tokens_default,
                               thinking_budget=self._thinking_budget,
                               thinking_mode=self._thinking_mode(model) if mode == "auto" else mode,
                               prompt_caching=self._prompt_caching)
        if stream:
            body["stream"] = True
        return body


    def _thinking_mode(self, model: str) -> str:
        """What discovery learnt `model` accepts, else the catalog's mode for it."""
        known = self.thinking_modes.get(model)
        if known is None and (alias := catalog.lookup(model)) is not None:
            known = self.thinking_modes.get(alias[0])
        return known or catalog.thinking_mode(model)

    def _request_headers(self, request: ChatRequest) -> dict[str, str] | None:
        if request.pass_through_token:
            return {"x-api-key": request.pass_through_token}
        return None

    async def _raise_for(self, resp: httpx.Response) -> None:
        raise self._error_from(resp.status_code, await resp.aread(), resp.headers)

    def _transport(self, e: BaseException) -> ProviderError:
        return transport_error(e, self.name, self.base_url or None)

    async def _post(self, payload: bytes, headers: dict[str, str] | None) -> tuple[int, Any, bytes]:
        """POST /v1/messages and read the whole answer: (status, headers, raw body)."""
        try:
            return await self.pool().read("/v1/messages", payload, headers)
        except TRANSPORT_ERRORS as e:
            raise self._transport(e) from None

    def _error_from(self, status: int, raw: bytes, headers: Any) -> ProviderError:
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        return from_error_body(status, body, provider=self.name, headers=headers)

    # ------------------------------------------------------------------ operations
    async def chat(self, request: ChatRequest, model: str) -> ChatResponse:
        t0 = time.perf_counter()
        payload = orjson.dumps(self._body(request, model, stream=False))
        call = self._post(payload, self._request_headers(request))
        status, headers, raw = await self._bounded(call)
        if status != 200:
            raise self._error_from(status, raw, headers)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ProviderUnavailable(f"{self.name}: upstream sent invalid JSON",
                                      provider=self.name, upstream_status=status) from None
        if data.get("stop_reason") == "refusal":
            raise ContentPolicy(f"{self.name}: the model refused on policy grounds", provider=self.name)
        out = response_from_wire(data, provider=self.name, tier=self.tier)
        out.request_id = request.request_id
        out.model = out.model or model
        out.latency_ms = (time.perf_counter() - t0) * 1000
        return out

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[StreamChunk]:
        payload = orjson.dumps(self._body(request, model, stream=True))
        yielded = False
        try:
            resp = await self.pool().post("/v1/messages", payload, self._request_headers(request))
            state = _StreamState()
            try:
                if resp.status != 200:
                    raise self._error_from(resp.status, await resp.read(), resp.headers)
                dec = SSEDecoder()
                async for raw in resp.content.iter_any():
                    for ev in dec.feed(raw):
                        for chunk in state.on_event(ev.event, ev.data, provider=self.name):
                            yielded = True
                            yield chunk
                        if state.finished:
                            return
                # The body ended without `message_stop`: the upstream hung up on us.
                raise ProviderUnavailable(f"{self.name}: stream ended before message_stop",
                                          provider=self.name)
            finally:
                # the last event read: back to the pool; abandoned part-way: the connection closes
                await release_stream(resp, complete=state.finished)
        except TRANSPORT_ERRORS as e:
            err = self._transport(e)
            if yielded:
                raise StreamInterrupted(f"{self.name}: stream broke after it started ({err.kind})",
                                        provider=self.name) from None
            raise err from None
        except ProviderError as e:
            if yielded and not isinstance(e, StreamInterrupted):
                raise StreamInterrupted(f"{self.name}: stream broke after it started: {e}",
                                        provider=self.name) from None
            raise

    def static_models(self) -> list[ModelInfo]:
        return catalog.static_models(self.name, self.tier)

    async def discover(self) -> list[ModelInfo]:
        """The Models API (`GET /v1/models`, paginated, free): what this key can use, with context
        windows, output limits, vision and thinking support, and lifecycle. Every catalog alias whose
        model is live is reported too, so the router keeps the aliases the catalog publishes.
        Models the catalog does not know get a conservative price (see `catalog.conservative_price`).
        """
        live: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(50):  # pages of 100; a runaway `has_more` cannot loop forever
            params: dict[str, Any] = {"limit": 100}
            if after:
                params["after_id"] = after
            try:
                resp = await self.client().get("/v1/models", params=params)
            except httpx.HTTPError as e:
                raise self._transport(e) from None
            if resp.status_code != 200:
                raise self._error_from(resp.status_code, resp.content, resp.headers)
            page = orjson.loads(resp.content)
            live.extend(m for m in page.get("data") or [] if isinstance(m, dict) and m.get("id"))
            after = page.get("last_id")
            if not page.get("has_more") or not after:
                break
        out: dict[str, ModelInfo] = {}
        for m in live:
            info = self._model_from_wire(m)
            out[info.id] = info
            known = catalog.lookup(info.id)
            if known is not None and known[0] not in out:
                out[known[0]] = info.model_copy(update={"id": known[0]})
        return list(out.values())

    def _model_from_wire(self, m: dict[str, Any]) -> ModelInfo:
        mid = str(m["id"])
        fields: dict[str, Any] = {"id": mid, "available": m.get("lifecycle", "active") != "retired"}
        if isinstance(m.get("max_input_tokens"), int):
            fields["context_window"] = m["max_input_tokens"]
        if isinstance(m.get("max_tokens"), int):
            fields["max_output_tokens"] = m["max_tokens"]
        caps = m.get("capabilities")
        if isinstance(caps, dict):
            found = {"streaming", "json", "tools"}
            if (caps.get("image_input") or {}).get("supported"):
                found.add("vision")
            thinking = caps.get("thinking") or {}
            types = thinking.get("types") or {}
            if thinking.get("supported"):
                found.add("thinking")
                accepts = [t for t in ("enabled", "adaptive") if (types.get(t) or {}).get("supported")]
                if len(accepts) == 1:
                    self.thinking_modes[mid] = accepts[0]
                elif accepts:  # both: the catalog's preference (adaptive where the manual budget is deprecated)
                    self.thinking_modes[mid] = catalog.thinking_mode(mid)
            fields["capabilities"] = found
        if catalog.lookup(mid) is None:
            fields["input_price"], fields["output_price"] = catalog.conservative_price(mid, m.get("line"))
        return ModelInfo(**fields)

    async def health(self) -> Health:
        """GET /v1/models (free, authenticated): reachable *and* the key is accepted."""
        t0 = time.perf_counter()
        timeout = self._health_timeout
        try:
            resp = await self.client().get("/v1/models", params={"limit": 1}, timeout=timeout)
        except httpx.HTTPError:
            return Health(ok=False, detail=f"unreachable at {self.base_url}")
        ms = (time.perf_counter() - t0) * 1000
        if resp.status_code == 200:
            return Health(ok=True, latency_ms=ms, detail="ok")
        if resp.status_code in (401, 403):
            return Health(ok=False, latency_ms=ms, detail="credential rejected (check api_key)")
        return Health(ok=False, latency_ms=ms, detail=f"HTTP {resp.status_code}")

    async def count_tokens(self, request: ChatRequest, model: str) -> int:
        """Exact input token count from `/v1/messages/count_tokens` (free; used before long prompts)."""
        body = self._body(request, model, stream=False)
        body.pop("max_tokens", None)
        try:
            resp = await self.client().post("/v1/messages/count_tokens", content=orjson.dumps(body))
        except httpx.HTTPError as e:
            raise self._transport(e) from None
        if resp.status_code != 200:
            await self._raise_for(resp)
        return int(orjson.loads(resp.content)["input_tokens"])


class _StreamState:
    """Turns Messages API stream events into kernel chunks, one event at a time."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.stop_reason = "end_turn"
        self.finished = False
        self.tool_index: dict[int, int] = {}  # anthropic block index -> kernel tool-call index
        self.signatures: dict[int, str] = {}

    def on_event(self, event: str, data: str, *, provider: str) -> list[StreamChunk]:
        if event == "ping" or not data:
            return []
        try:
            ev = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise ProviderUnavailable(f"{provider}: malformed stream event {event!r}",
                                      provider=provider) from None
        etype = ev.get("type", event)
        if etype == "message_start":
            self.usage = usage_from_wire((ev.get("message") or {}).get("usage"))
            self.usage.output_tokens = 0
            return []
        if etype == "content_block_start":
            block = ev.get("content_block") or {}
            idx = int(ev.get("index", 0))
            if block.get("type") == "tool_use":
                n = self.tool_index.setdefault(idx, len(self.tool_index))
                return [ToolCallDelta(index=n, id=block.get("id"), name=block.get("name"),
                                      arguments_delta="")]
            if block.get("type") == "text" and block.get("text"):
                return [TextDelta(text=block["text"])]
            if block.get("type") == "thinking" and block.get("thinking"):
                return [ThinkingDelta(thinking=block["thinking"])]
            if block.get("type") == "redacted_thinking":
                return [ThinkingDelta(thinking="", signature=REDACTED + str(block.get("data", "")))]
            return []
        if etype == "content_block_delta":
            d = ev.get("delta") or {}
            dt = d.get("type")
            idx = int(ev.get("index", 0))
            if dt == "text_delta":
                return [TextDelta(text=d.get("text", ""))]
            if dt == "thinking_delta":
                return [ThinkingDelta(thinking=d.get("thinking", ""))]
            if dt == "input_json_delta":
                n = self.tool_index.setdefault(idx, len(self.tool_index))
                return [ToolCallDelta(index=n, arguments_delta=d.get("partial_json", ""))] \
                    if d.get("partial_json") else []
            if dt == "signature_delta":
                self.signatures[idx] = self.signatures.get(idx, "") + d.get("signature", "")
            return []
        if etype == "content_block_stop":
            sig = self.signatures.pop(int(ev.get("index", 0)), "")
            # the signature closes its thinking block: pass it on so the block can be replayed
            return [ThinkingDelta(thinking="", signature=sig)] if sig else []
        if etype == "message_delta":
            d = ev.get("delta") or {}
            if d.get("stop_reason") == "refusal":
                raise ContentPolicy(f"{provider}: the model refused on policy grounds", provider=provider)
            if d.get("stop_reason"):
                self.stop_reason = STOP_REASONS.get(d["stop_reason"], "end_turn")
            u = ev.get("usage") or {}
            if u.get("output_tokens") is not None:
                self.usage.output_tokens = int(u["output_tokens"])
            if u.get("input_tokens"):
                self.usage.input_tokens = usage_from_wire(u).input_tokens
            return []
        if etype == "message_stop":
            self.finished = True
            return [UsageChunk(usage=self.usage), DoneChunk(stop_reason=self.stop_reason)]  # type: ignore[arg-type]
        if etype == "error":
            raise from_error_body(None, ev, provider=provider)
        return []  # future event types
