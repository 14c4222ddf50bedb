"""Ollama's native API as a Legion provider: `/api/chat` (NDJSON streaming), `/api/embed`, and
discovery of pulled/loaded models through `/api/tags`, `/api/show` and `/api/ps`. POSTs (chat,
embed, show) go through the pool's aiohttp client (`Pool.post`), GETs through its httpx client."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from legion_core.errors import (
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
    EmbedResponse,
    Health,
    ModelInfo,
    StreamChunk,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    UsageChunk,
)
from legion_llm_ollama.discovery import ModelDiscovery
from legion_llm_ollama.errors import from_error
from legion_llm_ollama.ndjson import NDJSONDecoder
from legion_llm_ollama.wire import request_to_wire, response_from_wire, stop_reason, tool_uses, usage

DEFAULT_URL = "http://localhost:11434"


def normalize_host(raw: str) -> str:
    """`OLLAMA_HOST` as Ollama itself reads it: scheme and port optional (`0.0.0.0`, `host:port`)."""
    raw = raw.strip().rstrip("/")
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    host = parts.hostname or "localhost"
    if host in ("0.0.0.0", "::"):
        host = "localhost"  # a bind-all address, not a destination
    port = parts.port or (443 if parts.scheme == "https" else 11434)
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{port}{parts.path}"


def _listening(url: str, timeout: float = 0.2) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "localhost", parts.port or 11434), timeout=timeout):
            return True
    except OSError:
        return False


class OllamaProvider(PooledProvider):
    """Options under `llm.providers.<name>` besides the common ones: `keep_alive`, `options`
    (Ollama model options sent with every chat, e.g. `{"num_ctx": 8192}`), `health_timeout`,
    `discovery_ttl_seconds`, `show_concurrency`."""

    kind = "ollama"
    default_tier = "local"
    default_base_url = DEFAULT_URL
    credential_keys = ("api_key",)
    needs_credentials = False

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        super().__init__(name, settings)
        ttl = self.number_option("discovery_ttl_seconds", None)
        self._health_timeout = self.number_option("health_timeout", 2.0, minimum=0.01)
        self.show_concurrency = self.number_option("show_concurrency", 4, integer=True, minimum=1)
        options = self.option("options")
        if options is not None and not isinstance(options, dict):
            raise SettingsError("must be an object of Ollama model options", key=f"llm.providers.{name}.options",
                                got=type(options).__name__, expected='an object, e.g. {"num_ctx": 8192}')
        self.discovery = ModelDiscovery(self, ttl=ttl if ttl is not None else 60.0)
        self._ttl_from_settings = ttl is not None

    @classmethod
    def auto_settings(cls) -> ProviderSettings | None:
        """With nothing configured: `OLLAMA_HOST` when set, else a local Ollama if one is listening."""
        host = os.environ.get("OLLAMA_HOST")
        if host:
            return ProviderSettings(type=cls.kind, base_url=normalize_host(host))
        if _listening(DEFAULT_URL):
            return ProviderSettings(type=cls.kind)
        return None

    def set_discovery_ttl(self, seconds: float) -> None:
        """The kernel's `llm.discovery.ttl_seconds`, unless this provider set its own."""
        if not self._ttl_from_settings:
            self.discovery.ttl = float(seconds)

    # ------------------------------------------------------------------ plumbing
    def _headers(self) -> dict[str, str]:
        h = {"content-type": "application/json", "accept": "application/json"}
        key = self.settings.api_key
        if isinstance(key, list):
            key = next((k for k in key if k), None)
        if key:
            h["authorization"] = f"Bearer {key}"
        return h


    async def _raise_for(self, resp: httpx.Response) -> None:
        raise self._error_from(resp.status_code, await resp.aread(), resp.headers)

    def _error_from(self, status: int, raw: bytes, headers: Any) -> ProviderError:
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        return from_error(status, body, provider=self.name, headers=headers)

    def _transport(self, e: BaseException) -> ProviderError:
        return transport_error(e, self.name, self.base_url or DEFAULT_URL)

    async def _post_json(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        try:
            status, resp_headers, raw = await self.pool().read(path, orjson.dumps(body), headers)
        except TRANSPORT_ERRORS as e:
            raise self._transport(e) from None
        if status != 200:
            raise self._error_from(status, raw, resp_headers)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ProviderUnavailable(f"{self.name}: upstream sent invalid JSON on {path}",
                                      provider=self.name, upstream_status=status) from None

    async def _get_json(self, path: str, **kw: Any) -> Any:
        try:
            resp = await self.client().get(path, **kw)
        except httpx.HTTPError as e:
            raise self._transport(e) from None
        if resp.status_code != 200:
            await self._raise_for(resp)
        return orjson.loads(resp.content)

    def _body(self, request: ChatRequest, model: str, stream: bool) -> dict[str, Any]:
        return request_to_wire(request, model, stream=stream, options=self.option("options"),
                               keep_alive=self.option("keep_alive"))

    def _auth(self, request: ChatRequest) -> dict[str, str] | None:
        if request.pass_through_token:
            return {"authorization": f"Bearer {request.pass_through_token}"}
        return None

    # ------------------------------------------------------------------ operations
    async def chat(self, request: ChatRequest, model: str) -> ChatResponse:
        t0 = time.perf_counter()
        call = self._post_json("/api/chat", self._body(request, model, stream=False), self._auth(request))
        data = await self._bounded(call)
        if isinstance(data, dict) and data.get("error"):
            raise from_error(500, data, provider=self.name)
        out = response_from_wire(data, provider=self.name, tier=self.tier)
        out.request_id = request.request_id
        out.model = out.model or model
        out.latency_ms = (time.perf_counter() - t0) * 1000
        return out

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[StreamChunk]:
        payload = orjson.dumps(self._body(request, model, stream=True))
        yielded = False
        try:
            resp = await self.pool().post("/api/chat", payload, self._auth(request))
            state = _StreamState(self.name)
            try:
                if resp.status != 200:
                    raise self._error_from(resp.status, await resp.read(), resp.headers)
                dec = NDJSONDecoder()
                async for raw in resp.content.iter_any():
                    try:
                        objs = dec.feed(raw)
                    except orjson.JSONDecodeError:
                        raise ProviderUnavailable(f"{self.name}: malformed NDJSON line", provider=self.name) from None
                    for obj in objs:
                        for chunk in state.on_object(obj):
                            yielded = True
                            yield chunk
                        if state.finished:
                            return
                for obj in dec.flush():
                    for chunk in state.on_object(obj):
                        yielded = True
                        yield chunk
                if not state.finished:
                    raise ProviderUnavailable(f"{self.name}: stream ended before its `done` line",
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
        except orjson.JSONDecodeError:
            raise (StreamInterrupted if yielded else ProviderUnavailable)(
                f"{self.name}: malformed NDJSON line", provider=self.name) from None
        except ProviderError as e:
            if yielded and not isinstance(e, StreamInterrupted):
                raise StreamInterrupted(f"{self.name}: stream broke after it started: {e}",
                                        provider=self.name) from None
            raise

    async def embed(self, texts: list[str], model: str) -> EmbedResponse:
        data = await self._post_json("/api/embed", {"model": model, "input": texts,
                                                    **({"keep_alive": self.option("keep_alive")}
                                                       if self.option("keep_alive") is not None else {})})
        return EmbedResponse(embeddings=data.get("embeddings") or [], model=data.get("model", model),
                             provider=self.name, tier=self.tier,
                             usage=usage({"prompt_eval_count": data.get("prompt_eval_count")}))

    # ------------------------------------------------------------------ models
    def static_models(self) -> list[ModelInfo]:
        """Nothing is assumed: Ollama's models are whatever is pulled (see `discover`)."""
        return []

    async def list_models(self) -> list[ModelInfo]:
        return await self.discover()

    async def discover(self, *, force: bool = False) -> list[ModelInfo]:
        """Pulled models with context window, capabilities and memory (TTL-cached)."""
        return await self.discovery.get(force=force)

    async def health(self) -> Health:
        t0 = time.perf_counter()
        url = self.base_url or DEFAULT_URL
        try:
            resp = await self.client().get("/api/version", timeout=self._health_timeout)
        except httpx.HTTPError:
            return Health(ok=False, detail=f"unreachable at {url}")
        ms = (time.perf_counter() - t0) * 1000
        if resp.status_code != 200:
            return Health(ok=False, latency_ms=ms, detail=f"HTTP {resp.status_code} from {url}")
        try:
            version = orjson.loads(resp.content).get("version", "?")
        except (orjson.JSONDecodeError, AttributeError):
            return Health(ok=False, latency_ms=ms, detail=f"not an Ollama server at {url}")
        return Health(ok=True, latency_ms=ms, detail=f"ollama {version}")


class _StreamState:
    """Turns NDJSON chat objects into kernel chunks."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.finished = False
        self.tool_calls = 0

    def on_object(self, obj: Any) -> list[StreamChunk]:
        if not isinstance(obj, dict):
            return []
        if obj.get("error"):
            raise from_error(500, obj, provider=self.provider)
        out: list[StreamChunk] = []
        msg = obj.get("message") or {}
        if msg.get("thinking"):
            out.append(ThinkingDelta(thinking=msg["thinking"]))
        if msg.get("content"):
            out.append(TextDelta(text=msg["content"]))
        for block in tool_uses(msg.get("tool_calls")):
            out.append(ToolCallDelta(index=self.tool_calls, id=block.id, name=block.name,
                                     arguments_delta=orjson.dumps(block.input).decode()))
            self.tool_calls += 1
        if obj.get("done"):
            self.finished = True
            out.append(UsageChunk(usage=usage(obj)))
            out.append(DoneChunk(stop_reason=stop_reason(obj.get("done_reason"), self.tool_calls > 0)))  # type: ignore[arg-type]
        return out
