"""The OpenAPI 3.1 document served at `/openapi.json`.

Request schemas are generated from the same pydantic models that parse the requests, so the
document cannot drift from what the gateway accepts. It is built per app (the configured
provider names and tiers appear as enums, so generated requests exercise real routes).
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from legion_core.server import anthropic_dialect as an
from legion_core.server import openai_dialect as oa
from legion_core.types import TIERS, ChatRequest

REF = "#/components/schemas/{model}"

_ERROR = {"type": "object", "description": "An error in the dialect of the endpoint called"}
_ANY_OBJ = {"type": "object"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    texts = {400: "Bad input: the message says what to fix", 401: "Missing or invalid API key",
             403: "Refused by a guard (e.g. a budget)", 404: "Unknown model or resource",
             413: "Body larger than llm.api.max_body_bytes", 429: "Rate limited",
             502: "The upstream failed", 503: "No provider available, or Legion still starting",
             504: "The upstream timed out"}
    return {str(c): _json(_ERROR, texts[c]) for c in codes}


_ROUTED_HEADERS = {
    "x-legion-provider": {"description": "Provider that answered", "schema": {"type": "string"}},
    "x-legion-model": {"description": "Model that answered", "schema": {"type": "string"}},
    "x-legion-tier": {"description": "Tier of that provider (`tier-0` for the cache)",
                      "schema": {"type": "string"}},
    "x-legion-cache": {"description": "hit, miss or bypass", "schema": {"type": "string"}},
    "x-legion-overhead-ms": {"description": "Gateway time outside the upstream call",
                             "schema": {"type": "string"}},
    "x-request-id": {"description": "The request id (also in the audit log)", "schema": {"type": "string"}},
}

_HEADER_PARAMS = [
    {"name": "x-legion-intent", "in": "header", "required": False,
     "description": "Routing intent, e.g. `privacy=strict,capability=reasoning`",
     "schema": {"type": "string", "enum": ["privacy=strict", "capability=reasoning",
                                           "privacy=normal,capability=basic", "cost=minimize"]}},
]


def _schemas(gw: Any) -> dict[str, Any]:
    _, defs = models_json_schema(
        [(oa.ChatCompletionRequest, "validation"), (oa.EmbeddingRequest, "validation"),
         (an.MessagesRequest, "validation"), (an.CountTokensRequest, "validation"),
         (ChatRequest, "validation")],
        ref_template=REF,
    )
    schemas: dict[str, Any] = defs.get("$defs", {})
    providers = sorted(gw.legion.registry.names()) if gw is not None else []
    extras = schemas.get("LegionExtras")
    if extras:
        props = extras["properties"]
        props["tier"] = {"anyOf": [{"type": "string", "enum": list(TIERS)}, {"type": "null"}],
                         "default": None}
        props["provider"] = {"anyOf": [{"type": "string", "enum": providers}, {"type": "null"}],
                             "default": None} if providers else {"type": "null", "default": None}
    chat = schemas.get("ChatRequest")
    if chat:
        chat["properties"].pop("pass_through_token", None)
        chat["properties"]["tier"] = {"anyOf": [{"type": "string", "enum": list(TIERS)}, {"type": "null"}],
                                      "default": None}
        chat["properties"]["provider"] = (
            {"anyOf": [{"type": "string", "enum": providers}, {"type": "null"}], "default": None}
            if providers else {"type": "null", "default": None})
    return schemas


def openapi_document(gw: Any = None) -> dict[str, Any]:
    schemas = _schemas(gw)

    def body(name: str) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": {"$ref": REF.format(model=name)}}}}

    def post(summary: str, schema: str, ok: str, *, routed: bool = True, stream: bool = False,
             codes: tuple[int, ...] = (400, 401, 403, 404, 413, 429, 502, 503, 504)) -> dict[str, Any]:
        content: dict[str, Any] = {"application/json": {"schema": _ANY_OBJ}}
        if stream:
            content["text/event-stream"] = {"schema": {"type": "string"}}
        ok_resp: dict[str, Any] = {"description": ok, "content": content}
        if routed:
            ok_resp["headers"] = _ROUTED_HEADERS
        return {"post": {"summary": summary, "parameters": _HEADER_PARAMS, "requestBody": body(schema),
                         "responses": {"200": ok_resp, **_errors(*codes)}}}

    def get(summary: str, ok: str, *, params: list[dict[str, Any]] | None = None,
            codes: tuple[int, ...] = (401,), security: bool = True) -> dict[str, Any]:
        op: dict[str, Any] = {"summary": summary, "responses": {"200": _json(_ANY_OBJ, ok), **_errors(*codes)}}
        if params:
            op["parameters"] = params
        if not security:
            op["security"] = []
        return {"get": op}

    path_param = lambda n: [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}]  # noqa: E731
    paths = {
        "/v1/chat/completions": post("OpenAI Chat Completions (stream with `stream: true`)",
                                     "ChatCompletionRequest", "A chat.completion, or SSE chunks", stream=True),
        "/v1/embeddings": post("OpenAI Embeddings", "EmbeddingRequest", "A list of embeddings"),
        "/v1/models": get("OpenAI models list: the catalog across providers plus `legion/auto`",
                          "A list of models"),
        "/v1/models/{model_id}": get("One model", "The model", params=path_param("model_id"),
                                     codes=(401, 404)),
        "/v1/messages": post("Anthropic Messages (stream with `stream: true`)", "MessagesRequest",
                             "A message, or typed SSE events", stream=True),
        "/v1/messages/count_tokens": post("Anthropic token count (an estimate)", "CountTokensRequest",
                                          "`{input_tokens}`", routed=False, codes=(400, 401, 404, 413)),
        "/api/llm/chat": post("Native chat: ChatRequest in, ChatResponse (with routing) out",
                              "ChatRequest", "A ChatResponse"),
        "/api/llm/inference": post("Native streaming: route, text-delta, thinking-delta, tool-call-*, "
                                   "usage, done", "ChatRequest", "Named SSE events", stream=True),
        "/api/llm/providers": get("Configured providers: health, circuit state, models (no credentials)",
                                  "Providers"),
        "/api/llm/providers/{name}": get("One provider", "The provider", params=path_param("name"),
                                         codes=(401, 404)),
        "/api/llm/models": get("The full model catalog (context windows, capabilities, prices)", "Models"),
        "/health": get("Liveness", "Alive", codes=(), security=False),
        "/ready": {"get": {"summary": "Readiness per subsystem", "security": [],
                           "responses": {"200": _json(_ANY_OBJ, "Ready"),
                                         "503": _json(_ANY_OBJ, "Not ready yet")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics",
                             "responses": {"200": {"description": "Text exposition format",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}},
                                           **_errors(401)}}},
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Legion gateway", "version": "1",
                 "description": "OpenAI- and Anthropic-compatible LLM gateway with routing. See docs/gateway.md."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
        },
    }
    auth = getattr(gw, "auth", None)
    if auth is not None and auth.enabled:
        doc["security"] = [{"bearer": []}, {"apiKey": []}]
    return doc
