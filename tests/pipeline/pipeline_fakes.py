"""A scripted in-test provider plugin (registered through the real plugin manager) and a
factory for a real `Legion` on a temporary home: real SQLite, real router, real health."""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from legion_core.hookspecs import hookimpl
from legion_core.plugins.manager import PluginManager
from legion_core.providers.base import Provider
from legion_core.types import (
    ChatRequest,
    ChatResponse,
    DoneChunk,
    EmbedResponse,
    TextBlock,
    TextDelta,
    Usage,
    UsageChunk,
)


@dataclass
class BreakAfter:
    """Stream action: send `n` text deltas, then raise `error`."""

    n: int
    error: Exception


@dataclass
class StreamFn:
    """Stream action: `fn(request, model)` returns the async iterator of chunks to send."""

    fn: Callable[..., Any]


class Script:
    """What each named provider does next. Actions: str (reply), ChatResponse, Exception
    (raised), callable(request, model) -> any of those, BreakAfter (streams)."""

    def __init__(self) -> None:
        self.actions: dict[str, deque[Any]] = defaultdict(deque)
        self.calls: dict[str, list[tuple[str, ChatRequest]]] = defaultdict(list)
        self.embed_calls: dict[str, list[list[str]]] = defaultdict(list)
        self.usage: dict[str, Usage | None] = {}
        #: What to answer when a provider's queue is empty: callable(request, model) -> str.
        self.default: Callable[..., Any] | None = None

    def then(self, provider: str, *actions: Any) -> Script:
        self.actions[provider].extend(actions)
        return self

    def total(self) -> int:
        return sum(len(v) for v in self.calls.values())

    def next(self, provider: str, request: ChatRequest, model: str) -> Any:
        q = self.actions[provider]
        if q:
            a = q.popleft()
        elif self.default is not None:
            a = self.default
        else:
            a = f"{provider}:{model} says hello"
        if callable(a) and not isinstance(a, Exception | BreakAfter | StreamFn):
            a = a(request, model)
        return a


SCRIPT = Script()


class ScriptedProvider(Provider):
    kind = "scripted"
    default_tier = "local"
    needs_credentials = False

    def _usage(self) -> Usage:
        u = SCRIPT.usage.get(self.name, Usage(input_tokens=10, output_tokens=5))
        return u or Usage()

    async def chat(self, request: ChatRequest, model: str) -> ChatResponse:
        SCRIPT.calls[self.name].append((model, request))
        a = SCRIPT.next(self.name, request, model)
        if isinstance(a, Exception):
            raise a
        if isinstance(a, ChatResponse):
            return a
        if isinstance(a, BreakAfter):
            raise a.error
        return ChatResponse(model=model, content=[TextBlock(text=str(a))], usage=self._usage())

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[Any]:
        SCRIPT.calls[self.name].append((model, request))
        a = SCRIPT.next(self.name, request, model)
        if isinstance(a, Exception):
            raise a
        if isinstance(a, StreamFn):
            inner = a.fn(request, model)
            try:
                async for c in inner:
                    yield c
            finally:
                await inner.aclose()
            return
        text = a.text if isinstance(a, ChatResponse) else ("x " * 10 if isinstance(a, BreakAfter) else str(a))
        words = [w + " " for w in text.split(" ")]
        words[-1] = words[-1][:-1]
        for i, w in enumerate(words):
            if isinstance(a, BreakAfter) and i == a.n:
                raise a.error
            await asyncio.sleep(0)
            yield TextDelta(text=w)
        yield UsageChunk(usage=self._usage())
        yield DoneChunk(stop_reason="end_turn")

    async def embed(self, texts: list[str], model: str) -> EmbedResponse:
        SCRIPT.embed_calls[self.name].append(texts)
        q = SCRIPT.actions[self.name]
        if q and isinstance(q[0], Exception):
            raise q.popleft()
        return EmbedResponse(embeddings=[[float(len(t)), 1.0] for t in texts], model=model)


class ScriptedPlugin:
    @hookimpl
    def legion_register_providers(self, register: Callable[[type[Provider]], None]) -> None:
        register(ScriptedProvider)


def provider(tier: str, model: str, *, price: tuple[float, float] = (0.0, 0.0),
             caps: tuple[str, ...] = ("streaming", "tools"), **extra: Any) -> dict[str, Any]:
    """Settings for one scripted provider serving one model."""
    m: dict[str, Any] = {"input_price": price[0], "output_price": price[1], "capabilities": list(caps),
                         "context_window": 32000}
    m.update(extra.pop("model_extra", {}))
    return {"type": "scripted", "tier": tier, "default_model": model, "models": {model: m}, **extra}


#: local (free) -> cloud (3/15 per Mtok) -> frontier (15/75): a simple prompt starts local.
THREE_TIERS = {
    "loc": provider("local", "small"),
    "cld": provider("cloud", "big", price=(3.0, 15.0), caps=("streaming", "tools", "json")),
    "fro": provider("frontier", "huge", price=(15.0, 75.0), caps=("streaming", "tools", "json")),
}


def make_plugins(*extra: Any) -> PluginManager:
    pm = PluginManager()
    pm.load(entry_points=False)
    pm.register(ScriptedPlugin(), name="scripted-test")
    for i, obj in enumerate(extra):
        pm.register(obj, name=f"test-extra-{i}")
    return pm
