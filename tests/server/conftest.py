"""The gateway under test: a real `Legion` (real router, pipeline, SQLite) served by uvicorn on
127.0.0.1:<free port> in a thread, with an in-test provider plugin registered through the real
plugin manager. What the provider does is steered by the last user message:

- `use the tool` (with tools offered): calls the first tool with {"city": "Paris"};
- a tool result as the last message: answers `tool said: <result>`;
- `think`: a thinking block, then the answer;
- `fail <kind>`: raises the typed provider error of that kind (`legion_core.errors`);
- `fail@<provider> <kind>`: only that provider fails, the others answer `answered by <name>`;
- `slow`: streams one chunk, then one every 50 ms for 10 s (disconnect tests);
- `break` (streaming): two text deltas, then the connection "resets";
- `boom`: raises a plain RuntimeError (an unexpected bug);
- anything else: `echo: <text>`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from legion_core.errors import PROVIDER_ERROR_KINDS
from legion_core.hookspecs import hookimpl
from legion_core.lifecycle import Legion
from legion_core.plugins.manager import PluginManager
from legion_core.providers.base import Provider
from legion_core.server import ServerThread, create_app
from legion_core.types import (
    ChatRequest,
    ChatResponse,
    DoneChunk,
    EmbedResponse,
    Health,
    ModelInfo,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ThinkingDelta,
    ToolCallDelta,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
    UsageChunk,
)

ALL_CAPS = ["streaming", "tools", "json", "vision", "thinking", "embeddings"]


class Recorder:
    """What the in-test providers saw (shared across threads)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, ChatRequest]] = []
        self.cancelled = threading.Event()
        self.slow_chunks = 0
        self.boot_gate: threading.Event | None = None


REC = Recorder()


def _last(request: ChatRequest) -> tuple[str, Any]:
    m = request.messages[-1]
    for b in m.blocks():
        if isinstance(b, ToolResultBlock):
            return "tool_result", b
    return "text", m.text


def _plan(request: ChatRequest, name: str = "") -> tuple[list[Any], str]:
    """The content blocks to answer with, and the stop reason."""
    kind, val = _last(request)
    if kind == "tool_result":
        return [TextBlock(text=f"tool said: {val.text}")], "end_turn"
    text = str(val)
    if text.startswith("fail@"):  # `fail@<provider> <kind>`: only that provider fails
        target, _, k = text[5:].partition(" ")
        if target == name:
            raise PROVIDER_ERROR_KINDS[k.strip()](f"injected {k}", provider=name)
        return [TextBlock(text=f"answered by {name}")], "end_turn"
    if text.startswith("fail "):
        k = text.split(" ", 1)[1].strip()
        raise PROVIDER_ERROR_KINDS[k](f"injected {k}", provider="gw")
    if text == "boom":
        raise RuntimeError("an unexpected bug")
    if "use the tool" in text and request.tools:
        return [ToolUseBlock(id="call_1", name=request.tools[0].name, input={"city": "Paris"})], "tool_use"
    if "think" in text:
        return [ThinkingBlock(thinking="Let me think.", signature="sig-1"), TextBlock(text="42")], "end_turn"
    return [TextBlock(text=f"echo: {text}")], "end_turn"


class GwProvider(Provider):
    kind = "gwtest"
    default_tier = "local"
    needs_credentials = False

    def static_models(self) -> list[ModelInfo]:
        model = self.settings.default_model or "gw-model"
        return [ModelInfo(id=model, context_window=100_000, capabilities=set(ALL_CAPS)),
                ModelInfo(id=f"{model}-embed", capabilities={"embeddings"}, embedding=True)]

    async def startup(self) -> None:
        gate = REC.boot_gate
        if gate is not None:
            await asyncio.to_thread(gate.wait, 20)

    async def health(self) -> Health:
        return Health(ok=True)

    async def chat(self, request: ChatRequest, model: str) -> ChatResponse:
        REC.requests.append((self.name, model, request))
        blocks, stop = _plan(request, self.name)
        return ChatResponse(model=model, content=blocks, stop_reason=stop,
                            usage=Usage(input_tokens=7, output_tokens=3))

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[Any]:
        REC.requests.append((self.name, model, request))
        if request.last_user_text() == "slow":
            try:
                for i in range(200):
                    REC.slow_chunks += 1
                    yield TextDelta(text=f"{i} ")
                    await asyncio.sleep(0.05)
            except (asyncio.CancelledError, GeneratorExit):
                REC.cancelled.set()
                raise
            yield DoneChunk(stop_reason="end_turn")
            return
        if request.last_user_text() == "break":
            yield TextDelta(text="partial ")
            yield TextDelta(text="answer ")
            raise PROVIDER_ERROR_KINDS["unavailable"]("connection reset mid-stream", provider=self.name)
        blocks, stop = _plan(request, self.name)
        for b in blocks:
            if isinstance(b, ThinkingBlock):
                yield ThinkingDelta(thinking=b.thinking)
            elif isinstance(b, TextBlock):
                for w in b.text.split(" "):
                    yield TextDelta(text=w + " ")
            elif isinstance(b, ToolUseBlock):
                yield ToolCallDelta(index=0, id=b.id, name=b.name, arguments_delta='{"city": ')
                yield ToolCallDelta(index=0, arguments_delta='"Paris"}')
        yield UsageChunk(usage=Usage(input_tokens=7, output_tokens=3))
        yield DoneChunk(stop_reason=stop)

    async def embed(self, texts: list[str], model: str) -> EmbedResponse:
        return EmbedResponse(embeddings=[[float(len(t)), 1.0, 0.5] for t in texts], model=model,
                             usage=Usage(input_tokens=len(texts)))


class GwPlugin:
    @hookimpl
    def legion_register_providers(self, register: Callable[[type[Provider]], None]) -> None:
        register(GwProvider)


def gw_provider(tier: str = "local", model: str = "gw-model", **extra: Any) -> dict[str, Any]:
    return {"type": "gwtest", "tier": tier, "default_model": model, **extra}


def make_legion(home: Any, providers: dict[str, Any] | None = None, *, extra_plugins: tuple[Any, ...] = (),
                entry_point_plugins: bool = False, **llm: Any) -> Legion:
    pm = PluginManager()
    pm.load(entry_points=entry_point_plugins)
    pm.register(GwPlugin(), name="gateway-test-provider")
    for i, p in enumerate(extra_plugins):
        pm.register(p, name=f"gateway-test-extra-{i}")
    settings = {"llm": {"providers": providers if providers is not None else {"gw": gw_provider()},
                        "discovery": {"enabled": False}, **llm}}
    return Legion(home=home, settings=settings, plugins=pm, load_entry_points=entry_point_plugins)


@pytest.fixture
def rec() -> Recorder:
    REC.__init__()  # type: ignore[misc]
    yield REC
    if REC.boot_gate is not None:
        REC.boot_gate.set()
    REC.__init__()  # type: ignore[misc]


@pytest.fixture
def serve_legion(tmp_path: Any, rec: Recorder) -> Any:
    """`serve_legion(providers=None, **llm) -> ServerThread` (stopped at teardown)."""
    started: list[ServerThread] = []

    def start(providers: dict[str, Any] | None = None, *, legion: Legion | None = None,
              wait: bool = True, **llm: Any) -> ServerThread:
        lg = legion or make_legion(tmp_path / f"home{len(started)}", providers, **llm)
        st = ServerThread(create_app(lg))
        started.append(st)
        if wait:
            st.start()
        return st

    yield start
    for st in started:
        if st.thread.is_alive():
            st.stop()


@pytest.fixture
def gateway(serve_legion: Any) -> ServerThread:
    """A gateway with one local in-test provider `gw` serving `gw-model` (auth off)."""
    return serve_legion()
