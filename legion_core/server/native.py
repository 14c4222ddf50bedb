"""The native API: Legion's own types on the wire, for the Python API's daemon mode and tools.

- `POST /api/llm/chat`: body is a `ChatRequest` as JSON; the answer is the `ChatResponse`
  (routing decision, attempts, usage, cost included).
- `POST /api/llm/inference`: the same body, answered as a stream of named SSE events:
  `route`, `text-delta`, `thinking-delta`, `tool-call-start`, `tool-call-delta`,
  `tool-call-end`, `usage`, then `done` (carrying the full `ChatResponse`) or `error`.
- `GET /api/llm/providers[/{name}]`, `GET /api/llm/models`: what is configured, its health,
  circuit state and models. Built from `Provider.describe()`: credentials never appear.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from legion_core.log import scrub
from legion_core.types import (
    DoneChunk,
    ErrorChunk,
    RouteChunk,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    UsageChunk,
)


def _event(name: bytes, data: Any) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class StreamEncoder:
    """Pipeline chunks → native SSE events. Tool calls get start/delta/end events."""

    def __init__(self, route: RouteChunk) -> None:
        self.route = route
        self._tools: dict[int, dict[str, Any]] = {}
        self._open_tool: int | None = None

    def start(self) -> bytes:
        return _event(b"route", self.route.model_dump(mode="json"))

    def _end_tool(self) -> bytes:
        if self._open_tool is None:
            return b""
        t = self._tools[self._open_tool]
        raw = "".join(t["args"])
        try:
            args = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            args = {"_raw": raw}
        self._open_tool = None
        return _event(b"tool-call-end", {"index": t["index"], "id": t["id"], "name": t["name"],
                                         "arguments": args})

    def encode(self, chunk: Any) -> bytes | None:
        if isinstance(chunk, TextDelta):
            return self._end_tool() + b'event: text-delta\ndata: {"text":' + orjson.dumps(chunk.text) + b"}\n\n"
        if isinstance(chunk, ThinkingDelta):
            return self._end_tool() + _event(b"thinking-delta", {"thinking": chunk.thinking})
        if isinstance(chunk, ToolCallDelta):
            out = b""
            if chunk.index not in self._tools:
                out = self._end_tool()
                self._tools[chunk.index] = {"index": chunk.index, "id": chunk.id, "name": chunk.name,
                                            "args": []}
                self._open_tool = chunk.index
                out += _event(b"tool-call-start", {"index": chunk.index, "id": chunk.id, "name": chunk.name})
            t = self._tools[chunk.index]
            t["args"].append(chunk.arguments_delta)
            if chunk.arguments_delta:
                out += _event(b"tool-call-delta", {"index": chunk.index,
                                                   "arguments_delta": chunk.arguments_delta})
            return out or None
        if isinstance(chunk, UsageChunk):
            return _event(b"usage", chunk.usage.model_dump(mode="json"))
        if isinstance(chunk, DoneChunk):
            out = self._end_tool()
            resp = chunk.response.model_dump(mode="json") if chunk.response is not None else None
            return out + _event(b"done", {"stop_reason": chunk.stop_reason, "response": resp})
        if isinstance(chunk, ErrorChunk):
            return _event(b"error", {"kind": chunk.kind, "message": chunk.message})
        return None


# ------------------------------------------------------------------ providers and models
def safe_url(url: str | None) -> str | None:
    """A base URL without any user:password part or query string (which may carry keys)."""
    if not url:
        return url
    try:
        p = urlsplit(url)
    except ValueError:
        return None
    host = p.hostname or ""
    if p.port:
        host = f"{host}:{p.port}"
    return urlunsplit((p.scheme, host, p.path, "", ""))


def jsonable(obj: Any) -> Any:
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    dump = getattr(obj, "model_dump", None)
    if dump is not None:
        return dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [jsonable(v) for v in obj]
    return str(obj)


def _health_of(legion: Any, name: str) -> Any:
    health = getattr(legion, "health", None)
    if health is None:
        return None
    snap = getattr(health, "snapshot", None)
    if snap is None:
        return None
    try:
        data = snap()
    except Exception:  # noqa: BLE001 - a broken tracker must not break the listing
        return None
    if isinstance(data, dict):
        return jsonable(data.get(name))
    return None


def _circuit_of(legion: Any, name: str) -> str | None:
    """closed (healthy), open (failing, skipped until cooldown) or half_open (probing)."""
    state = getattr(getattr(legion, "health", None), "state", None)
    if state is None:
        return None
    try:
        return str(state(name))
    except Exception:  # noqa: BLE001
        return None


def provider_json(legion: Any, name: str, *, with_models: bool = True) -> dict[str, Any]:
    reg = legion.registry
    p = reg.providers[name]
    d = dict(p.describe())
    d["base_url"] = safe_url(d.get("base_url"))
    d["enabled"] = True
    d["reachable"] = reg.reachable.get(name)
    if reg.unreachable_detail.get(name):
        d["unreachable_detail"] = reg.unreachable_detail[name]
    d["health"] = _health_of(legion, name)
    d["circuit"] = _circuit_of(legion, name)
    if with_models:
        d["models"] = [m.model_dump(mode="json") for m in reg.models(name)]
    return scrub_json(d)


def providers_json(legion: Any) -> dict[str, Any]:
    reg = legion.registry
    return {
        "default_provider": reg.default_provider,
        "providers": [provider_json(legion, n, with_models=False) | {
            "models": [m.id for m in reg.models(n)]} for n in reg.names()],
        "skipped": [{"name": n, "enabled": False, "reason": scrub(r)} for n, r in reg.skipped.items()],
    }


def models_json(legion: Any) -> dict[str, Any]:
    return {"models": [m.model_dump(mode="json") for m in legion.registry.catalog()]}


def scrub_json(obj: Any) -> Any:
    if isinstance(obj, str):
        return scrub(obj)
    if isinstance(obj, dict):
        return {k: scrub_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrub_json(v) for v in obj]
    return obj
