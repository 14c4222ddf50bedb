"""What an Ollama server really has: `/api/tags` (pulled, with size), `/api/show` (context length and
capabilities, cached per digest since a digest never changes), `/api/ps` (loaded).

Results are cached for `ttl` seconds; concurrent callers share one refresh. This runs from the
discovery hook in the background: a request never waits on it (the router reads the registry).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from legion_core.types import ModelInfo
from legion_llm_ollama.wire import CAPABILITIES

if TYPE_CHECKING:
    from legion_llm_ollama.provider import OllamaProvider


def context_length(model_info: dict[str, Any]) -> int | None:
    """`<arch>.context_length`, with the architecture from `general.architecture`."""
    arch = model_info.get("general.architecture")
    if arch and isinstance(model_info.get(f"{arch}.context_length"), int):
        return int(model_info[f"{arch}.context_length"])
    for k, v in model_info.items():  # an architecture the key scheme did not anticipate
        if k.endswith(".context_length") and isinstance(v, int):
            return v
    return None


def modelfile_num_ctx(parameters: Any) -> int | None:
    """`num_ctx` from `/api/show`'s `parameters` text (one "name value" per line), if the
    Modelfile sets it."""
    if not isinstance(parameters, str):
        return None
    for line in parameters.splitlines():
        name, _, value = line.strip().partition(" ")
        if name == "num_ctx":
            try:
                return int(value.strip().strip('"'))
            except ValueError:
                return None
    return None


def capabilities(raw: list[str] | None) -> set[str]:
    caps: set[str] = set()
    for c in raw or ["completion"]:
        caps |= CAPABILITIES.get(c, set())
    return caps


class ModelDiscovery:
    def __init__(self, provider: OllamaProvider, *, ttl: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.provider = provider
        self.ttl = ttl
        self.clock = clock
        self._models: list[ModelInfo] | None = None
        self._at = 0.0
        self._show: dict[str, dict[str, Any]] = {}  # digest -> /api/show answer
        self._inflight: asyncio.Future[list[ModelInfo]] | None = None

    @property
    def cached(self) -> list[ModelInfo] | None:
        """The last result, however old (None before the first success)."""
        return self._models

    def fresh(self) -> bool:
        return self._models is not None and self.clock() - self._at < self.ttl

    async def get(self, *, force: bool = False) -> list[ModelInfo]:
        if not force and self.fresh():
            assert self._models is not None
            return self._models
        fut = self._inflight
        if fut is not None and not fut.done() and fut.get_loop() is asyncio.get_running_loop():
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self._inflight = fut
        try:
            models = await self._refresh()
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            self._inflight = None
        fut.set_result(models)
        return models

    async def _refresh(self) -> list[ModelInfo]:
        p = self.provider
        tags = await p._get_json("/api/tags")
        try:
            ps = await p._get_json("/api/ps")
            loaded = {m.get("name") or m.get("model") for m in ps.get("models") or []}
        except Exception:  # noqa: BLE001 - older servers lack /api/ps; loaded stays unknown
            loaded = None
        pulled = tags.get("models") or []
        sem = asyncio.Semaphore(p.show_concurrency)
        opts = p.option("options") or {}
        configured_ctx = opts.get("num_ctx") if isinstance(opts.get("num_ctx"), int) else None

        async def show(entry: dict[str, Any]) -> dict[str, Any]:
            digest = entry.get("digest") or entry.get("name", "")
            if digest in self._show:
                return self._show[digest]
            async with sem:
                info = await p._post_json("/api/show", {"model": entry.get("name") or entry.get("model")})
            self._show[digest] = info
            return info

        shows = await asyncio.gather(*(show(e) for e in pulled), return_exceptions=True)
        out: list[ModelInfo] = []
        for entry, info in zip(pulled, shows, strict=True):
            name = entry.get("name") or entry.get("model")
            if not name:
                continue
            fields: dict[str, Any] = {"id": name, "provider": p.name, "tier": p.tier, "available": True,
                                      "memory_bytes": entry.get("size"), "input_price": 0.0,
                                      "output_price": 0.0}
            if loaded is not None:
                fields["loaded"] = name in loaded
            if isinstance(info, dict):
                # Ollama truncates prompts beyond num_ctx *silently*: the usable window is the
                # configured num_ctx (provider options, else the Modelfile) when one is known.
                trained = context_length(info.get("model_info") or {})
                num_ctx = configured_ctx or modelfile_num_ctx(info.get("parameters"))
                ctx = min(trained, num_ctx) if trained and num_ctx else (trained or num_ctx)
                if ctx:
                    fields["context_window"] = ctx
                caps = capabilities(info.get("capabilities"))
                fields["capabilities"] = caps
                fields["embedding"] = "embeddings" in caps and "streaming" not in caps
            out.append(ModelInfo(**fields))
        self._models, self._at = out, self.clock()
        return out
