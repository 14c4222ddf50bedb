"""The gateway's ASGI app: `create_app(legion)`.

Every endpoint goes through `_endpoint`, which times the request, checks auth, reads the
body under the size limit and turns any exception into an error in the caller's dialect
(never a bare 500: unexpected errors carry the request id and are logged with their
traceback). Routed answers carry `x-legion-provider`, `x-legion-model`, `x-legion-tier`,
`x-legion-cache`, `x-legion-overhead-ms` and `x-request-id`.

Hot path: the dialect's pydantic model parses the raw bytes once (`model_validate_json`),
the internal request is built without re-validation, responses are serialised by orjson.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from legion_core.hooktypes import RequestContext
from legion_core.log import get_logger
from legion_core.server import anthropic_dialect as an
from legion_core.server import hints, native
from legion_core.server import openai_dialect as oa
from legion_core.server.auth import Authenticator, AuthResult
from legion_core.server.errors import (
    GatewayError,
    bad_request,
    describe,
    error_bytes,
    not_found,
    too_large,
    unauthorized,
    validation_message,
)
from legion_core.server.metrics import Metrics
from legion_core.server.streaming import SSEResponse, StreamOutcome
from legion_core.types import (
    AUTO_MODEL,
    TIERS,
    ChatRequest,
    EmbedRequest,
    Message,
    RouteChunk,
    is_auto_model,
    new_id,
)

log = get_logger("legion.gateway")

#: Endpoints whose rejected requests get an audit row (the ones that would reach a model).
AUDITED = frozenset({"chat_completions", "embeddings", "messages", "chat", "inference"})
_RID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
JSON_CT = (b"content-type", b"application/json")
#: The auth result when auth is off and nothing is passed through.
OPEN = AuthResult(True)


class Call:
    """Per-request facts shared by the wrapper and the handler."""

    __slots__ = ("rid", "t0", "auth", "dialect", "endpoint", "request", "h")

    def __init__(self, rid: str, t0: float, dialect: str, endpoint: str, request: Request,
                 h: dict[str, str] | None = None) -> None:
        self.h = h if h is not None else headers_of(request.scope)
        self.rid = rid
        self.t0 = t0
        self.auth: AuthResult | None = None
        self.dialect = dialect
        self.endpoint = endpoint
        self.request = request

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1000.0


class JSONBytes(Response):
    media_type = "application/json"

    def __init__(self, body: bytes, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status_code = status
        self.background = None
        self.body = body
        self.raw_headers = [JSON_CT, (b"content-length", str(len(body)).encode())] + (headers or [])


class Gateway:
    """State shared by all requests of one app: the kernel, auth, metrics and limits."""

    def __init__(self, legion: Any) -> None:
        self.legion = legion
        self.metrics = Metrics()
        self.auth: Authenticator | None = None
        self.max_body = 10 * 1024 * 1024
        self.aliases: frozenset[str] = frozenset()
        self.owns_legion = False
        self.configured = False
        self._known: frozenset[str] = frozenset()
        self._known_key: tuple[int, int] = (0, -1)

    # ------------------------------------------------------------ lifecycle
    async def startup(self) -> None:
        if not self.legion.started():
            await self.legion.start()
            self.owns_legion = True
        self.configure()

    async def shutdown(self) -> None:
        if self.owns_legion:
            await self.legion.shutdown()

    def configure(self) -> None:
        """Read limits and resolve API keys (once, at boot)."""
        api = self.legion.settings.llm.api
        self.max_body = api.max_body_bytes
        self.auth = Authenticator.from_settings(api.auth, self.legion.plugins)
        self.aliases = frozenset(self.legion.settings.llm.routing.aliases)
        self.configured = True

    @property
    def ready(self) -> bool:
        return self.configured and self.legion.started()

    # ------------------------------------------------------------ request plumbing
    def authenticate(self, call: Call) -> AuthResult:
        assert self.auth is not None
        if not self.auth.enabled and not self.auth.pass_through:
            return OPEN
        h = call.h
        res = self.auth.check(h.get("authorization"), h.get("x-api-key"))
        if not res.ok:
            raise unauthorized(res.reason)
        return res

    async def read_body(self, call: Call) -> bytes:
        """The body, refused (413) past the limit: by Content-Length first, else while reading."""
        cl = call.h.get("content-length")
        if cl is not None:
            try:
                n = int(cl)
            except ValueError:
                raise bad_request("content-length header is not a number") from None
            if n > self.max_body:
                raise too_large(self.max_body)
        receive = call.request.receive
        parts: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":  # http.disconnect: the client is gone
                raise GatewayError("the client disconnected while sending the body", status=400)
            chunk = msg.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body:
                    raise too_large(self.max_body)
                parts.append(chunk)
            if not msg.get("more_body", False):
                break
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def context(self, call: Call, caller: str | None) -> RequestContext:
        return RequestContext(request_id=call.rid, caller=caller,
                              api_key_id=call.auth.key_id if call.auth else None, dialect=call.dialect)

    def check_target(self, model: str | None, provider: str | None = None, tier: str | None = None) -> None:
        """Unknown models → 404, unknown providers/tiers → 400, each naming what to do instead."""
        reg = self.legion.registry
        if provider is not None and provider not in reg.providers:
            names = ", ".join(reg.names()) or "none"
            raise bad_request(f"legion.provider: no provider named {provider!r} is configured "
                              f"(configured: {names})", param="legion.provider")
        if tier is not None and tier not in TIERS:
            raise bad_request(f"legion.tier: unknown tier {tier!r}; use one of {', '.join(TIERS)}",
                              param="legion.tier")
        if is_auto_model(model) or model in self.aliases:
            return
        if model in self.known_models() or reg.find_model(model):
            return
        raise not_found(f"model {model!r} is not served by any configured provider; GET /v1/models "
                        "lists the models, or send 'legion/auto' to let Legion choose",
                        code="model_not_found")

    def known_models(self) -> frozenset[str]:
        """Every model id in the catalog, as a set; rebuilt only when the registry's `version`
        says its catalog may have changed (a provider added or removed, a discovery result)."""
        reg = self.legion.registry
        key = (id(reg), reg.version)
        if key != self._known_key:
            self._known = frozenset(m.id for n in reg.names() for m in reg.models(n))
            self._known_key = key
        return self._known

    def route_headers(self, call: Call, provider: str, model: str, tier: str, cache: str,
                      overhead_ms: float) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-legion-provider", provider.encode()),
            (b"x-legion-model", model.encode()),
            (b"x-legion-tier", tier.encode()),
            (b"x-legion-cache", cache.encode()),
            (b"x-legion-overhead-ms", f"{overhead_ms:.3f}".encode()),
            (b"x-request-id", call.rid.encode()),
        ]

    def routed_json(self, call: Call, payload: dict[str, Any], resp: Any, cache_requested: bool) -> Response:
        elapsed = call.elapsed_ms()
        upstream = sum(a.duration_ms for a in resp.attempts if a.outcome in ("ok", "failed",
                                                                              "quality_failed"))
        overhead = max(0.0, elapsed - upstream)
        cache = "hit" if resp.cache_hit else ("miss" if cache_requested else "bypass")
        headers = self.route_headers(call, resp.provider, resp.model, str(resp.tier), cache, overhead)
        self.metrics.observe_chat(call.dialect, call.endpoint, 200, resp, elapsed / 1000.0, overhead)
        return JSONBytes(orjson.dumps(payload), 200, headers)

    async def stream(self, call: Call, creq: ChatRequest, ctx: RequestContext,
                     make_encoder: Callable[[RouteChunk], Any]) -> Response:
        agen = self.legion.pipeline.stream(creq, ctx)
        try:
            first = await agen.__anext__()
        except StopAsyncIteration:
            raise GatewayError("the upstream ended the stream before it started", status=502,
                               kind="provider") from None
        pending: list[Any] = []
        if isinstance(first, RouteChunk):
            route = first
            # The pipeline announces the route once the provider's first delta is in hand, and
            # yields that delta right after: send it with the headers, in one write.
            with contextlib.suppress(StopAsyncIteration):
                pending.append(await agen.__anext__())
        else:  # a pipeline that did not announce its route: headers from the request
            route = RouteChunk(provider="", model=creq.model or "", tier="")
            pending.append(first)
        cache = "hit" if route.cache_hit else ("miss" if creq.cache else "bypass")
        overhead = call.elapsed_ms()
        headers = self.route_headers(call, route.provider, route.model, str(route.tier), cache, overhead)
        self.metrics.in_flight += 1

        def finish(out: StreamOutcome) -> None:
            self.metrics.in_flight -= 1
            secs = call.elapsed_ms() / 1000.0
            if out.done is not None and out.done.response is not None:
                self.metrics.observe_chat(call.dialect, call.endpoint, 200, out.done.response, secs, None)
            elif out.disconnected:
                self.metrics.observe_error(call.dialect, call.endpoint, 499, "client_disconnected", secs)
            else:
                kind = getattr(out.error, "kind", "internal") if out.error is not None else "incomplete"
                self.metrics.observe_error(call.dialect, call.endpoint, 200, kind, secs)

        return SSEResponse(agen, make_encoder(route), headers, first=pending, on_finish=finish)

    def error_response(self, call: Call, exc: BaseException) -> Response:
        info = describe(exc, call.rid)
        if info.status >= 500 and info.kind == "internal":
            log.error("unexpected error while serving a request", request_id=call.rid,
                      endpoint=call.endpoint, error=repr(exc), exc_info=exc)
        body = error_bytes(call.dialect, info, call.rid)
        headers = [(b"x-request-id", call.rid.encode())]
        headers += [(k.encode(), v.encode()) for k, v in info.headers.items()]
        if info.status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="legion"'))
        self.metrics.observe_error(call.dialect, call.endpoint, info.status, info.kind,
                                   call.elapsed_ms() / 1000.0)
        if isinstance(exc, GatewayError) and call.endpoint in AUDITED:
            self.audit_rejection(call, info)
        return JSONBytes(body, info.status, headers)

    def audit_rejection(self, call: Call, info: Any) -> None:
        """Requests the gateway refused before the pipeline saw them (bad input, auth, size)
        still get their audit row; the pipeline audits everything that reached it."""
        audit = getattr(getattr(self.legion, "pipeline", None), "audit", None)
        if audit is None:
            return
        try:
            from legion_core.pipeline.audit import build_row

            req = ChatRequest(messages=[Message(role="user", content="")], request_id=call.rid)
            audit.record(build_row(
                request=req, response=None, decision=None, attempts=[], latency_ms=call.elapsed_ms(),
                status="error", error=f"{info.kind}: {info.message}", dialect=call.dialect,
                stream=False, caller=call.auth.key_id if call.auth else None))
        except Exception as e:  # noqa: BLE001 - auditing must never fail the response
            log.warning("could not audit a rejected request", request_id=call.rid, error=repr(e))


# ---------------------------------------------------------------------- helpers
def parse(model_cls: Any, body: bytes) -> Any:
    """The dialect's one validation pass, with errors that say what to fix."""
    if not body.strip():
        raise bad_request("the request body is empty; send a JSON object")
    try:
        return model_cls.model_validate_json(body)
    except ValidationError as e:
        errs = e.errors(include_url=False)
        if errs and errs[0].get("type") == "json_invalid":
            why = (errs[0].get("ctx") or {}).get("error", "invalid JSON")
            raise bad_request(f"malformed JSON body ({why}); send a valid JSON object") from None
        if errs and errs[0].get("type") == "model_type" and not errs[0].get("loc"):
            raise bad_request("the request body must be a JSON object") from None
        msg, param = validation_message(e)
        raise bad_request(msg, param=param) from None


def request_id(header: str | None) -> str:
    if header and _RID_OK.match(header):
        return header
    return new_id("req")


def headers_of(scope: Any) -> dict[str, str]:
    """Request headers as a plain dict (lower-case names), built once: O(1) lookups after."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


def caller_for(call: Call, request: Request, given: str | None) -> str | None:
    """With auth on, the caller is the key that authenticated (budgets can't be dodged)."""
    if call.auth is not None and call.auth.key_id is not None:
        return call.auth.key_id
    return given or call.h.get("x-legion-caller")


Handler = Callable[[Gateway, Request, bytes, Call], Awaitable[Response]]


def _endpoint(dialect: str, name: str, handler: Handler, *, auth: bool = True, body: bool = True,
              needs_ready: bool = True) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        gw: Gateway = request.app.state.gateway
        h = headers_of(request.scope)
        call = Call(request_id(h.get("x-request-id")), time.perf_counter(), dialect, name, request, h)
        gw.metrics.in_flight += 1
        try:
            if needs_ready and not gw.ready:
                raise GatewayError("Legion is still starting; retry shortly (GET /ready says when)",
                                   status=503, kind="unavailable", headers={"retry-after": "1"})
            if auth and gw.auth is not None:
                call.auth = gw.authenticate(call)
            raw = await gw.read_body(call) if body else b""
            return await handler(gw, request, raw, call)
        except Exception as e:  # noqa: BLE001 - every failure becomes a dialect error
            return gw.error_response(call, e)
        finally:
            gw.metrics.in_flight -= 1  # a stream holds its own count until it ends

    endpoint.__name__ = f"{dialect}_{name}"
    return endpoint


def internal_request(to_internal: Any, gw: Gateway, body: Any, request: Request,
                     call: Call) -> tuple[ChatRequest, RequestContext]:
    """What both chat dialects do before the pipeline: check the target, translate with the
    routing hints (intent header, Cache-Control, pass-through key), name the caller."""
    ext = body.legion
    gw.check_target(body.model, ext.provider if ext else None, ext.tier if ext else None)
    h = call.h
    creq = to_internal(body, request_id=call.rid, intent_header=h.get("x-legion-intent"),
                       no_cache=hints.no_cache(h.get("cache-control")),
                       pass_through_token=call.auth.forward_token if call.auth else None)
    creq.caller = caller_for(call, request, creq.caller)
    return creq, gw.context(call, creq.caller)


# ---------------------------------------------------------------------- OpenAI dialect
async def openai_chat(gw: Gateway, request: Request, raw: bytes, call: Call) -> Response:
    body = parse(oa.ChatCompletionRequest, raw)
    creq, ctx = internal_request(oa.to_internal, gw, body, request, call)
    if creq.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        cid = "chatcmpl-" + call.rid.removeprefix("req_")
        return await gw.stream(call, creq, ctx, lambda r: oa.StreamEncoder(r, include_usage, cid))
    resp = await gw.legion.pipeline.chat(creq, ctx)
    return gw.routed_json(call, oa.response_json(resp), resp, creq.cache)


async def openai_embeddings(gw: Gateway, request: Request, raw: bytes, call: Call) -> Response:
    body = parse(oa.EmbeddingRequest, raw)
    ext = body.legion
    gw.check_target(body.model, ext.provider if ext else None, ext.tier if ext else None)
    texts = oa.embed_input(body)
    ereq = EmbedRequest(
        input=texts, model=None if is_auto_model(body.model) else body.model,
        provider=ext.provider if ext else None, tier=ext.tier if ext else None,
        intent=hints.build_intent(call.h.get("x-legion-intent"), ext),
        caller=caller_for(call, request, ext.caller if ext else None), request_id=call.rid)
    resp = await gw.legion.pipeline.embed(ereq)
    elapsed = call.elapsed_ms()
    headers = gw.route_headers(call, resp.provider, resp.model, str(resp.tier), "bypass", 0.0)
    gw.metrics.observe_other(call.dialect, call.endpoint, 200, elapsed / 1000.0, resp.provider,
                             resp.model, str(resp.tier))
    return JSONBytes(orjson.dumps(oa.embedding_json(resp, body.encoding_format, body.dimensions)), 200,
                     headers)


def _catalog(gw: Gateway) -> list[tuple[str, str]]:
    seen: dict[str, str] = {AUTO_MODEL: "legion"}
    for a in sorted(gw.aliases):
        seen.setdefault(a, "legion")
    for m in gw.legion.registry.catalog():
        seen.setdefault(m.id, m.provider)
    return list(seen.items())


def _anthropic_client(call: Call) -> bool:
    """Anthropic SDKs send `anthropic-version`: answer /v1/models in their shape and errors."""
    if "anthropic-version" in call.h:
        call.dialect = "anthropic"
        return True
    return False


async def openai_models(gw: Gateway, request: Request, raw: bytes, call: Call) -> Response:
    cat = _catalog(gw)
    if _anthropic_client(call):
        data = [an.model_json(mid, owner) for mid, owner in cat]
        payload: dict[str, Any] = {"data": data, "has_more": False,
                                   "first_id": data[0]["id"] if data else None,
                                   "last_id": data[-1]["id"] if data else None}
    else:
        payload = {"object": "list", "data": [oa.model_json(mid, owner) for mid, owner in cat]}
    return JSONBytes(orjson.dumps(payload), 200, [(b"x-request-id", call.rid.encode())])


async def openai_model(gw: Gateway, request: Request, raw: bytes, call: Call) -> Response:
    mid = request.path_params["model_id"]
    shape = an.model_json if _anthropic_client(call) else oa.model_json
    if is_auto_model(mid) or mid in gw.aliases:
        return JSONBytes(orjson.dumps(shape(mid, "legion")))
    found = gw.legion.registry.find_model(mid)
    if not found:
        raise not_found(f"model {mid!r} is not served by any configured provider; GET /v1/models lists "
                        "the models", code="model_not_found")
    return JSONBytes(orjson.dumps(shape(mid, found[0][0])), 200, [(b"x-request-id", call.rid.encode())])


# ---------------------------------------------------------------------- Anthropic dialect
async def anthropic_messages(gw: Gateway, request: Request, raw: bytes, call: Call) -> Response:
    body = parse(an.MessagesRequest, raw)
    creq, ctx = internal_request(an.to_internal, gw, body, request, call)
    if creq.stream:
        from legion_core.routing.tokens import estimate_tokens

        mid = "msg_" + call.rid.removeprefix("req_")
        est = estimate_tokens(creq)
        return await gw.stream(call, creq, ctx, lambda r: an.StreamEncoder(r, mid, est))
    resp = await gw.legion.pipeline.chat(creq, ctx)
    return gw.routed_json(call, an.response_json(resp), resp, creq.cache)


async def anthropic_count_tokens(gw: Gateway, request: Request, raw: bytes, call: Call) -> Response:
    from legion_core.routing.tokens import estimate_tokens

    body = parse(an.CountTokensRequest, raw)
    gw.check_target(body.model)
    creq = hints.chat_request(messages=an.convert_messages(body.messages),
                              system=an.system_text(body.system), tools=an.convert_tools(body.tools))
    return JSONBytes(orjson.dumps({"input_tokens": estimate_tokens(creq)}), 200,
                     [(b"x-request-id", call.rid.encode())])


# ---------------------------------------------------------------------- native
def _native_request(gw: Gateway, request: Request, raw: bytes, call: Call, stream: bool) -> ChatRequest:
    creq: ChatRequest = parse(ChatRequest, raw)
    gw.check_target(creq.model, creq.provider, creq.tier)
    if "request_id" in creq.model_fields_set:
        call.rid = request_id(creq.request_id)
    creq.request_id = call.rid
    if is_auto_model(creq.model):
        creq.model = None
    h = call.h
    if "intent" not in creq.model_fields_set and h.get("x-legion-intent"):
        creq.intent = hints.build_intent(h.get("x-legion-intent"), None)
    if hints.no_cache(h.get("cache-control")):
        creq.cache = False
    creq.stream = stream
    # the client's token is forwarded only under pass_through, never taken from the body
    creq.pass_through_token = call.auth.forward_token if call.auth else None
    # `system` profile skips guards (budgets): only an authenticated key may ask for it
    if creq.profile == "system" and not (call.auth and call.auth.key_id):
        creq.profile = "user"
    creq.caller = caller_for(call, request, creq.caller)
    return creq


async def native_chat(gw: Gateway, request: Request, raw: bytes, call: Call) -> Response:
    creq = _native_request(gw, request, raw, call, stream=False)
    resp = await gw.legion.pipeline.chat(creq, gw.context(call, creq.caller))
    return gw.routed_json(call, resp.model_dump(mode="json"), resp, creq.cache)


async def native_inference(gw: Gateway, request: Request, raw: bytes, call: Call) -> Response:
    creq = _native_request(gw, request, raw, call, stream=True)
    return await gw.stream(call, creq, gw.context(call, creq.caller), native.StreamEncoder)


async def native_providers(gw: Gateway, request: Request, raw: bytes, call: Call) -> Response:
    return JSONBytes(orjson.dumps(native.providers_json(gw.legion)))


async def native_provider(gw: Gateway, request: Request, raw: bytes, call: Call) -> Response:
    name = request.path_params["name"]
    reg = gw.legion.registry
    if name in reg.providers:
        return JSONBytes(orjson.dumps(native.provider_json(gw.legion, name)))
    if name in reg.skipped:
        return JSONBytes(orjson.dumps({"name": name, "enabled": False,
                                       "reason": native.scrub(reg.skipped[name])}))
    raise not_found(f"no provider named {name!r}; GET /api/llm/providers lists them")


async def native_models(gw: Gateway, request: Request, raw: bytes, call: Call) -> Response:
    return JSONBytes(orjson.dumps(native.models_json(gw.legion)))


# ---------------------------------------------------------------------- operations
async def health(gw: Gateway, request: Request, raw: bytes, call: Call) -> Response:
    return JSONBytes(orjson.dumps({"status": "ok", "started": bool(gw.legion.started())}))


async def ready(gw: Gateway, request: Request, raw: bytes, call: Call) -> Response:
    legion = gw.legion
    subsystems = dict(legion.readiness)
    ok = gw.ready and all(v == "ready" for v in subsystems.values())
    reg = legion.registry
    payload = {
        "ready": ok,
        "subsystems": subsystems,
        "providers": {"configured": reg.names(),
                      "reachable": [n for n in reg.names() if reg.reachable.get(n) is not False],
                      "skipped": {n: native.scrub(r) for n, r in reg.skipped.items()}},
        "extensions_skipped": dict(getattr(legion, "skipped_extensions", {}) or {}),
    }
    return JSONBytes(orjson.dumps(payload), 200 if ok else 503)


async def metrics(gw: Gateway, request: Request, raw: bytes, call: Call) -> Response:
    return Response(gw.metrics.render(gw.legion), 200,
                    media_type="text/plain; version=0.0.4; charset=utf-8")


async def openapi(gw: Gateway, request: Request, raw: bytes, call: Call) -> Response:
    from legion_core.server.openapi import openapi_document

    return JSONBytes(orjson.dumps(openapi_document(gw)))


# ---------------------------------------------------------------------- app
def _log_boot_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("Legion failed to boot; the gateway stays not ready", error=repr(task.exception()),
                  exc_info=task.exception())


def _dialect_for(path: str) -> str:
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/v1/"):
        return "openai"
    return "native"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    call = Call(request_id(headers_of(request.scope).get("x-request-id")), time.perf_counter(),
                _dialect_for(request.url.path), "unknown", request)
    if exc.status_code == 405:
        err: Exception = GatewayError(f"method {request.method} is not allowed on {request.url.path}",
                                      status=405, kind="method_not_allowed")
    elif exc.status_code == 404:
        err = not_found(f"no endpoint at {request.url.path}; GET /openapi.json lists the endpoints")
    else:
        err = GatewayError(str(exc.detail), status=exc.status_code, kind="invalid_request")
    return request.app.state.gateway.error_response(call, err)


ROUTES: list[tuple[str, str, str, str, Handler, dict[str, Any]]] = [
    # path, method, dialect, metric name, handler, options
    ("/v1/chat/completions", "POST", "openai", "chat_completions", openai_chat, {}),
    ("/v1/embeddings", "POST", "openai", "embeddings", openai_embeddings, {}),
    ("/v1/models", "GET", "openai", "models", openai_models, {"body": False}),
    ("/v1/models/{model_id:path}", "GET", "openai", "model", openai_model, {"body": False}),
    ("/v1/messages", "POST", "anthropic", "messages", anthropic_messages, {}),
    ("/v1/messages/count_tokens", "POST", "anthropic", "count_tokens", anthropic_count_tokens, {}),
    ("/api/llm/chat", "POST", "native", "chat", native_chat, {}),
    ("/api/llm/inference", "POST", "native", "inference", native_inference, {}),
    ("/api/llm/providers", "GET", "native", "providers", native_providers, {"body": False}),
    ("/api/llm/providers/{name}", "GET", "native", "provider", native_provider, {"body": False}),
    ("/api/llm/models", "GET", "native", "models", native_models, {"body": False}),
    ("/health", "GET", "native", "health", health,
     {"auth": False, "body": False, "needs_ready": False}),
    ("/ready", "GET", "native", "ready", ready, {"auth": False, "body": False, "needs_ready": False}),
    ("/metrics", "GET", "native", "metrics", metrics, {"body": False, "needs_ready": False}),
    ("/openapi.json", "GET", "native", "openapi", openapi,
     {"auth": False, "body": False, "needs_ready": False}),
]


class GatewayApp(Starlette):
    """Starlette, plus a fast lane: a request for one of the fixed-path endpoints goes straight
    to it, skipping Starlette's middleware stack and route matching (about 5% of a routed
    request's CPU). That is safe because every endpoint already turns any exception into an
    error in its caller's dialect; everything else (path parameters, 404/405) takes the full stack."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast_lane: dict[tuple[str, str], Callable[[Request], Awaitable[Response]]] = {}
        for r in self.routes:
            if isinstance(r, Route) and not r.param_convertors:  # fixed paths only
                for method in r.methods or ():
                    if method != "HEAD":  # Starlette adds HEAD to GET routes: it keeps those
                        self.fast_lane[(method, r.path)] = r.endpoint

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            endpoint = self.fast_lane.get((scope["method"], scope["path"]))
            if endpoint is not None:
                scope["app"] = self
                response = await endpoint(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(legion: Any, *, manage_lifecycle: bool = True, background_boot: bool = False) -> Starlette:
    """The gateway as an ASGI app.

    :param legion: a `legion_core.lifecycle.Legion`, started or not. If it is not started, the
        app's lifespan starts it (on the server's event loop) and shuts it down at exit.
    :param manage_lifecycle: False to leave starting/stopping the kernel to the caller.
    :param background_boot: bind at once and boot in the background: `/health` answers, `/ready`
        and every routed endpoint say 503 until boot is complete.
    """
    gw = Gateway(legion)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        boot: asyncio.Task[None] | None = None
        if manage_lifecycle and background_boot:
            boot = asyncio.ensure_future(gw.startup())
            boot.add_done_callback(_log_boot_failure)
        elif manage_lifecycle:
            await gw.startup()
        elif legion.started():
            gw.configure()
        try:
            yield
        finally:
            if boot is not None and not boot.done():
                boot.cancel()
                with contextlib.suppress(BaseException):
                    await boot
            if manage_lifecycle:
                await gw.shutdown()

    routes = [Route(path, _endpoint(dialect, name, handler, **opts), methods=[method])
              for path, method, dialect, name, handler, opts in ROUTES]
    app = GatewayApp(routes=routes, lifespan=lifespan,
                     exception_handlers={404: _http_error, 405: _http_error})
    app.state.gateway = gw
    if legion.started():
        gw.configure()
    return app
