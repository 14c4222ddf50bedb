"""The `bedrock` provider: Amazon Bedrock's Converse and ConverseStream APIs.

Requests are signed with SigV4 (botocore's signer, service `bedrock`) or carry a Bedrock API key
as a bearer token. ConverseStream answers in the binary eventstream framing, decoded here frame
by frame with both CRCs checked.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from legion_core.errors import (
    ContentPolicy,
    ProviderBadRequest,
    ProviderError,
    ProviderUnavailable,
    StreamInterrupted,
)
from legion_core.providers.http import TRANSPORT_ERRORS, retry_after_seconds, transport_error
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
    Usage,
    UsageChunk,
)
from legion_llm_bedrock import catalog
from legion_llm_bedrock.auth import AwsAuth
from legion_llm_bedrock.convert import REFUSALS, STOP_REASONS, from_converse, to_converse
from legion_llm_bedrock.errors import error_type, map_error
from legion_llm_bedrock.eventstream import EventStreamDecoder, EventStreamError

DEFAULT_REGION = "us-east-2"
DEFAULT_MAX_TOKENS = 1024
DEFAULT_THINKING_BUDGET = 1024
DEFAULT_EMBEDDING_MODEL = "amazon.titan-embed-text-v2:0"
EVENTSTREAM = "application/vnd.amazon.eventstream"


def _str_option(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, list):  # an unresolved fallback chain never reaches us, but be safe
        value = next((v for v in value if v), None)
    return str(value) if value else None


class BedrockProvider(PooledProvider):
    kind: ClassVar[str] = "bedrock"
    default_tier: ClassVar[str] = "cloud"
    credential_keys: ClassVar[tuple[str, ...]] = ("api_key", "secret_key", "session_token", "bearer_token")
    needs_credentials: ClassVar[bool] = True

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        super().__init__(name, settings)
        self.region: str = str(self.option("region") or DEFAULT_REGION)
        if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d+", self.region):
            raise ValueError(f"providers.{name}.region: {self.region!r} is not an AWS region name "
                             "(expected e.g. us-east-2)")
        if not self.base_url:
            self.base_url = f"https://bedrock-runtime.{self.region}.amazonaws.com"
        bearer = _str_option(self.option("bearer_token"))
        access = _str_option(settings.api_key)
        secret = _str_option(self.option("secret_key"))
        if not bearer and not (access and secret):
            raise ValueError(f"providers.{name}: set bearer_token (a Bedrock API key), or api_key "
                             "(the AWS access key id) and secret_key")
        self.auth = AwsAuth(region=self.region, access_key=access, secret_key=secret,
                            session_token=_str_option(self.option("session_token")), bearer_token=bearer)
        self.max_tokens = self._int("max_tokens", DEFAULT_MAX_TOKENS)
        self.thinking_budget = max(1024, self._int("thinking_budget", DEFAULT_THINKING_BUDGET))
        self.embedding_model = str(self.option("embedding_model", DEFAULT_EMBEDDING_MODEL))
        self.embedding_dimensions = self._int("embedding_dimensions", 1024)
        if self.embedding_dimensions not in (256, 512, 1024):
            raise ValueError(f"providers.{name}.embedding_dimensions must be 256, 512 or 1024, "
                             f"got {self.embedding_dimensions}")
        prefix = self.option("inference_profile_prefix")
        self.profile_prefix: str | None = None if prefix is None else str(prefix)
        self._warm: Any = None

    def _int(self, key: str, default: int) -> int:
        raw = self.option(key, default)
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise ValueError(f"providers.{self.name}.{key} must be an integer, got {raw!r}") from None
        if value <= 0:
            raise ValueError(f"providers.{self.name}.{key} must be positive, got {value}")
        return value

    @classmethod
    def auto_settings(cls) -> ProviderSettings | None:
        """From the standard AWS environment: a Bedrock API key, else access key + secret (+ token).

        Only references that can resolve are named, so an unset optional `AWS_SESSION_TOKEN`
        does not keep the provider from being auto-enabled.
        """
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        s: dict[str, Any] = {"type": cls.kind}
        if os.environ.get("AWS_BEARER_TOKEN_BEDROCK"):
            s["bearer_token"] = "env://AWS_BEARER_TOKEN_BEDROCK"
        else:
            s["api_key"] = "env://AWS_ACCESS_KEY_ID"
            s["secret_key"] = "env://AWS_SECRET_ACCESS_KEY"
            if os.environ.get("AWS_SESSION_TOKEN"):
                s["session_token"] = "env://AWS_SESSION_TOKEN"
        s["region"] = region
        return ProviderSettings.model_validate(s)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "region": self.region, "auth": self.auth.mode}

    # ------------------------------------------------------------------ HTTP
    # Calls go through the pool (`providers.http1`), each signed for the exact path and body it
    # sends; `client()` (httpx) is for the reachability probe.
    async def startup(self) -> None:
        await super().startup()
        if self.auth.mode == "sigv4":
            # botocore's signer takes ~0.6 s to import; do it off the loop now rather than
            # inside the first request.
            self._warm = asyncio.get_running_loop().run_in_executor(None, _import_signer)

    @staticmethod
    def _path(model: str, action: str) -> str:
        # Sent exactly as signed: `:` unescaped, `/` inside an ARN as `%2F`.
        return f"/model/{quote(model, safe=':')}/{action}"

    def _signed(self, path: str, body: bytes, accept: str, request: ChatRequest | None = None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": accept}
        if request is not None and request.pass_through_token:
            return {**headers, "Authorization": f"Bearer {request.pass_through_token}"}
        return self.auth.headers("POST", f"{self.base_url}{path}", body, headers)

    def _http_error(self, status: int, headers: Any, raw: bytes) -> ProviderError:
        try:
            body: Any = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            body = None
        message = ""
        if isinstance(body, dict):
            message = str(body.get("message") or body.get("Message") or "")
        return map_error(error_type(headers, body), message or f"HTTP {status}", provider=self.name,
                         status=status, retry_after=retry_after_seconds(headers))

    def _body(self, request: ChatRequest) -> bytes:
        body = to_converse(request, provider=self.name, default_max_tokens=self.max_tokens,
                           thinking_budget=self.thinking_budget)
        return json.dumps(body, separators=(",", ":")).encode()

    # ------------------------------------------------------------------ catalog
    def static_models(self) -> list[ModelInfo]:
        return [m.model_copy(update={"provider": self.name, "tier": self.tier})
                for m in catalog.published_models(self.region, self.profile_prefix, self.tier)]

    async def health(self) -> Health:
        """Reachability only: Bedrock runtime has no free authenticated endpoint to probe."""
        t0 = time.perf_counter()
        try:
            resp = await self.client().get(f"{self.base_url}/", timeout=5.0)
        except httpx.HTTPError as e:
            return Health(ok=False, detail=f"unreachable at {self.base_url} ({type(e).__name__})")
        return Health(ok=True, latency_ms=(time.perf_counter() - t0) * 1000,
                      detail=f"reachable (HTTP {resp.status_code}); credentials are checked on first use")

    # ------------------------------------------------------------------ chat
    async def chat(self, request: ChatRequest, model: str) -> ChatResponse:
        t0 = time.perf_counter()
        body = self._body(request)
        path = self._path(model, "converse")
        headers = self._signed(path, body, "application/json", request)
        try:
            status, resp_headers, raw = await self.pool().read(path, body, headers)
        except TRANSPORT_ERRORS as e:
            raise transport_error(e, self.name) from None
        if status != 200:
            raise self._http_error(status, resp_headers, raw)
        try:
            data = json.loads(raw)
        except ValueError:
            raise ProviderUnavailable(f"{self.name}: Bedrock sent invalid JSON", provider=self.name,
                                      upstream_status=status) from None
        content, stop = from_converse(data)
        if stop in REFUSALS:
            raise ContentPolicy(f"{self.name}: Bedrock withheld the answer ({stop})", provider=self.name)
        u = data.get("usage") or {}
        return ChatResponse(request_id=request.request_id, model=model, provider=self.name, tier=self.tier,
                            content=content, stop_reason=STOP_REASONS.get(stop, "end_turn"),
                            usage=Usage(input_tokens=int(u.get("inputTokens", 0)),
                                        output_tokens=int(u.get("outputTokens", 0))),
                            latency_ms=(time.perf_counter() - t0) * 1000)

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[StreamChunk]:
        body = self._body(request)
        path = self._path(model, "converse-stream")
        headers = self._signed(path, body, EVENTSTREAM, request)
        state = _StreamState(self.name)
        try:
            resp = await self.pool().post(path, body, headers)
            try:
                if resp.status != 200:
                    raise self._http_error(resp.status, resp.headers, await resp.read())
                decoder = EventStreamDecoder()
                async for data in resp.content.iter_any():
                    for msg in decoder.feed(data):
                        for chunk in state.on_message(msg):
                            state.started = state.started or isinstance(
                                chunk, TextDelta | ThinkingDelta | ToolCallDelta)
                            yield chunk
                if not state.stopped:
                    raise ProviderUnavailable(f"{self.name}: stream ended before messageStop"
                                              + (f" ({decoder.pending} bytes of a partial frame)"
                                                 if decoder.pending else ""), provider=self.name)
            finally:
                # read to messageStop: back to the pool; abandoned part-way: the connection closes
                await release_stream(resp, complete=state.stopped)
            yield DoneChunk(stop_reason=STOP_REASONS.get(state.stop_reason, "end_turn"))
        except TRANSPORT_ERRORS as e:
            err: ProviderError = transport_error(e, self.name)
            if state.started:
                raise StreamInterrupted(f"{self.name}: stream broke after it started ({err.kind})",
                                        provider=self.name) from None
            raise err from None
        except EventStreamError as e:
            if state.started:
                raise StreamInterrupted(f"{self.name}: corrupt eventstream frame: {e}", provider=self.name) from None
            raise ProviderUnavailable(f"{self.name}: corrupt eventstream frame: {e}", provider=self.name) from None
        except ProviderError as e:
            if state.started and not isinstance(e, StreamInterrupted):
                raise StreamInterrupted(f"{self.name}: stream broke after it started: {e}",
                                        provider=self.name, cause_kind=e.kind) from None
            raise

    # ------------------------------------------------------------------ embeddings
    async def embed(self, texts: list[str], model: str) -> EmbedResponse:
        """Titan text embeddings through InvokeModel: one call per text, run concurrently."""
        if not texts:
            raise ProviderBadRequest(f"{self.name}: embed needs at least one input", provider=self.name)
        mid = model if "embed" in (model or "") else self.embedding_model
        path = self._path(mid, "invoke")
        pool = self.pool()

        async def one(text: str) -> tuple[list[float], int]:
            body = json.dumps({"inputText": text, "dimensions": self.embedding_dimensions,
                               "normalize": True}).encode()
            headers = self._signed(path, body, "application/json")
            try:
                status, resp_headers, raw = await pool.read(path, body, headers)
            except TRANSPORT_ERRORS as e:
                raise transport_error(e, self.name) from None
            if status != 200:
                raise self._http_error(status, resp_headers, raw)
            data = json.loads(raw)
            return [float(x) for x in data["embedding"]], int(data.get("inputTextTokenCount", 0))

        results = await asyncio.gather(*(one(t) for t in texts))
        return EmbedResponse(embeddings=[v for v, _ in results], model=mid, provider=self.name, tier=self.tier,
                             usage=Usage(input_tokens=sum(n for _, n in results)))


def _import_signer() -> None:
    import botocore.auth  # noqa: F401


class _StreamState:
    """Turns ConverseStream events into kernel chunks."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.started = False
        self.stopped = False
        self.stop_reason = "end_turn"
        self.tool_index: dict[int, int] = {}  # contentBlockIndex → tool call index
        self.signatures: dict[int, str] = {}  # contentBlockIndex → reasoning signature so far

    def on_message(self, msg: Any) -> list[StreamChunk]:
        if msg.message_type in ("exception", "error"):
            try:
                text = json.loads(msg.payload or b"{}").get("message", "")
            except ValueError:
                text = msg.payload.decode("utf-8", "replace")
            text = text or str(msg.headers.get(":error-message", ""))
            raise map_error(msg.exception_type or "", text, provider=self.provider)
        try:
            ev = json.loads(msg.payload or b"{}")
        except ValueError as e:
            raise ProviderUnavailable(f"{self.provider}: event {msg.event_type} is not JSON",
                                      provider=self.provider) from e
        et = msg.event_type
        if et == "contentBlockStart":
            tu = (ev.get("start") or {}).get("toolUse")
            if tu:
                idx = self.tool_index.setdefault(int(ev.get("contentBlockIndex", 0)), len(self.tool_index))
                return [ToolCallDelta(index=idx, id=tu.get("toolUseId"), name=tu.get("name"))]
        elif et == "contentBlockDelta":
            d = ev.get("delta") or {}
            if "text" in d:
                return [TextDelta(text=d["text"])] if d["text"] else []
            if "toolUse" in d:
                block = int(ev.get("contentBlockIndex", 0))
                idx = self.tool_index.setdefault(block, len(self.tool_index))
                return [ToolCallDelta(index=idx, arguments_delta=str(d["toolUse"].get("input", "")))]
            rc = d.get("reasoningContent")
            if rc and rc.get("text"):
                return [ThinkingDelta(thinking=rc["text"])]
            if rc and rc.get("signature"):
                block = int(ev.get("contentBlockIndex", 0))
                self.signatures[block] = self.signatures.get(block, "") + str(rc["signature"])
        elif et == "contentBlockStop":
            sig = self.signatures.pop(int(ev.get("contentBlockIndex", 0)), "")
            # the signature closes its reasoning block: pass it on so the block can be replayed
            return [ThinkingDelta(thinking="", signature=sig)] if sig else []
        elif et == "messageStop":
            self.stopped = True
            self.stop_reason = str(ev.get("stopReason") or "end_turn")
            if self.stop_reason in REFUSALS:
                raise ContentPolicy(f"{self.provider}: Bedrock withheld the answer ({self.stop_reason})",
                                    provider=self.provider)
            if self.tool_index and self.stop_reason == "end_turn":
                self.stop_reason = "tool_use"
        elif et == "metadata":
            u = ev.get("usage") or {}
            return [UsageChunk(usage=Usage(input_tokens=int(u.get("inputTokens", 0)),
                                           output_tokens=int(u.get("outputTokens", 0))))]
        return []
