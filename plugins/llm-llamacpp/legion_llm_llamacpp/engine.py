"""One llama.cpp model in-process, driven from a single worker thread.

llama.cpp is CPU-bound and not re-entrant, and the event loop must never wait on it: every
call runs on one dedicated thread (a one-worker executor, plus a lock for belt and braces),
so requests queue instead of racing, and ctypes releases the GIL while llama.cpp computes.
Streaming tokens cross back to the loop through `call_soon_threadsafe` into an asyncio
queue; a consumer that stops early sets a flag the worker checks between tokens.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ModelLoadError(RuntimeError):
    """The GGUF could not be opened (missing file, not a GGUF, out of memory)."""


@dataclass(frozen=True)
class EngineConfig:
    model_path: Path
    n_ctx: int = 4096
    n_threads: int | None = None
    chat_format: str | None = None
    seed: int = 0
    #: Reuse the KV cache of a shared prompt prefix between calls (faster multi-turn chats on big
    #: models, but batch-vs-incremental evaluation makes greedy answers differ slightly).
    prefix_cache: bool = False
    #: llama.cpp's weight repacking into faster layouts ("extra buffer types"). None: on, except
    #: on CPUs with AMX, where its AMX matrix multiply segfaults on some hosts (llama.cpp#20824).
    repack: bool | None = None


_END = object()
#: Held while llama-cpp-python's default model params are swapped (see `_load`).
_PARAMS_LOCK = threading.Lock()


def cpu_has_amx() -> bool:
    """Whether llama.cpp runs with AMX here (its system info reports what it was built for and
    found on the CPU)."""
    try:
        import llama_cpp
    except ImportError:  # pragma: no cover - declared dependency
        return False
    return "AMX_INT8 = 1" in llama_cpp.llama_print_system_info().decode(errors="replace")


def default_threads() -> int:
    """Half the CPUs this process may use (at least one): leaves room for the event loop."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, n // 2)


def _load(llama_cpp: Any, kw: dict[str, Any], *, repack: bool) -> Any:
    """`llama_cpp.Llama(**kw)`; without repacking, with `use_extra_bufts` off. llama-cpp-python
    takes its model params only from `llama_model_default_params()`, so that function is
    swapped for the duration of the load (under a lock: engines load on their own threads)."""
    if repack:
        return llama_cpp.Llama(**kw)
    import llama_cpp.llama_cpp as low

    with _PARAMS_LOCK:
        default = low.llama_model_default_params

        def without_extra_buffers() -> Any:
            params = default()
            params.use_extra_bufts = False
            return params

        low.llama_model_default_params = without_extra_buffers
        try:
            return llama_cpp.Llama(**kw)
        finally:
            low.llama_model_default_params = default


class LlamaEngine:
    """Lazily loads the model on first use (or `preload()`), then serves calls in order."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="legion-llamacpp")
        self._lock = threading.Lock()
        self._llm: Any = None
        self._embedder: Any = None
        self.load_error: str | None = None
        self._closed = False
        #: Stop flags of the streams running now; `close()` sets them so shutdown need not wait
        #: for a long generation to run to `max_tokens`.
        self._active: set[threading.Event] = set()

    # ------------------------------------------------------------------ state
    @property
    def loaded(self) -> bool:
        return self._llm is not None

    @property
    def n_ctx(self) -> int:
        return int(self._llm.n_ctx()) if self._llm is not None else self.config.n_ctx

    @property
    def n_ctx_train(self) -> int | None:
        if self._llm is None:
            return None
        raw = self._llm.metadata.get(f"{self._llm.metadata.get('general.architecture', 'llama')}.context_length")
        return int(raw) if raw else None

    @property
    def n_embd(self) -> int | None:
        return int(self._llm.n_embd()) if self._llm is not None else None

    # ------------------------------------------------------------------ loading (worker thread)
    def _open(self, *, embedding: bool) -> Any:
        try:
            import llama_cpp
        except ImportError as e:  # pragma: no cover - declared dependency
            raise ModelLoadError("llama-cpp-python is not installed: pip install llama-cpp-python") from e
        path = self.config.model_path
        if not path.is_file():
            raise ModelLoadError(f"model_path {str(path)!r} does not exist or is not a file")
        kw: dict[str, Any] = {
            "model_path": str(path),
            "n_ctx": self.config.n_ctx,
            "seed": self.config.seed,
            "verbose": False,
        }
        # llama-cpp-python defaults to half the cores for generation but *all* cores for prompt
        # processing; on a shared machine the spinning batch threads then starve each other
        # (measured here: 16 tokens in 1.2 s with one thread, 8-18 s with two under load).
        threads = self.config.n_threads or default_threads()
        kw["n_threads"] = threads
        kw["n_threads_batch"] = threads
        if embedding:
            kw["embedding"] = True
            kw["pooling_type"] = llama_cpp.LLAMA_POOLING_TYPE_MEAN
        elif self.config.chat_format:
            kw["chat_format"] = self.config.chat_format
        try:
            return _load(llama_cpp, kw, repack=self.repack_enabled())
        except Exception as e:  # noqa: BLE001 - llama.cpp raises ValueError/RuntimeError/OSError
            raise ModelLoadError(f"could not load model_path {str(path)!r}: {e}") from e

    def repack_enabled(self) -> bool:
        """`repack` as configured; by default on unless the CPU has AMX."""
        return self.config.repack if self.config.repack is not None else not cpu_has_amx()

    def _chat_model(self) -> Any:
        if self._llm is None:
            try:
                self._llm = self._open(embedding=False)
                self.load_error = None
            except ModelLoadError as e:
                self.load_error = str(e)
                raise
        return self._llm

    def _ready_chat_model(self) -> Any:
        llm = self._chat_model()
        if not self.config.prefix_cache:
            llm.reset()  # same prompt, same greedy answer
        return llm

    def _embed_model(self) -> Any:
        # A second context over the same file: llama.cpp pools embeddings only in embedding mode,
        # and turning that on for the chat context would make every generation compute them too.
        if self._embedder is None:
            self._embedder = self._open(embedding=True)
        return self._embedder

    # ------------------------------------------------------------------ async API
    async def _run(self, fn: Any, *args: Any) -> Any:
        if self._closed:
            raise ModelLoadError("the llamacpp engine is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def preload(self) -> None:
        def load() -> None:
            with self._lock:
                self._chat_model()

        await self._run(load)

    async def complete(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        def call() -> dict[str, Any]:
            with self._lock:
                return self._ready_chat_model().create_chat_completion(stream=False, **kwargs)

        return await self._run(call)

    async def stream(self, kwargs: dict[str, Any]) -> AsyncIterator[tuple[str, Any]]:
        """Yields ("chunk", openai-style chunk) items, then ("end", tokens_in_context)."""
        if self._closed:
            raise ModelLoadError("the llamacpp engine is closed")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()
        self._active.add(cancelled)

        def put(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone; nobody is listening
                cancelled.set()

        def work() -> None:
            try:
                with self._lock:
                    llm = self._ready_chat_model()
                    for chunk in llm.create_chat_completion(stream=True, **kwargs):
                        if cancelled.is_set():
                            break
                        put(("chunk", chunk))
                    if cancelled.is_set() and self._closed:
                        put(("error", ModelLoadError("the llamacpp engine was closed during generation")))
                    else:
                        put(("end", int(llm.n_tokens)))
            except BaseException as e:  # noqa: BLE001 - re-raised on the loop side
                put(("error", e))
            finally:
                put(_END)

        fut = loop.run_in_executor(self._executor, work)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    break
                kind, value = item
                if kind == "error":
                    raise value
                yield kind, value
        finally:
            cancelled.set()
            self._active.discard(cancelled)
            if fut.done():
                fut.result()

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        def call() -> tuple[list[list[float]], int]:
            with self._lock:
                out = self._embed_model().create_embedding(texts)
            vectors = [list(map(float, d["embedding"])) for d in out["data"]]
            return vectors, int(out.get("usage", {}).get("prompt_tokens", 0))

        return await self._run(call)

    async def close(self) -> None:
        """Let the running call finish, then free the models (off the loop)."""
        if self._closed:
            return
        self._closed = True
        for flag in list(self._active):
            flag.set()

        def free() -> None:
            with self._lock:
                for m in (self._llm, self._embedder):
                    if m is not None and hasattr(m, "close"):
                        m.close()
                self._llm = self._embedder = None

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, free)
        await loop.run_in_executor(None, self._executor.shutdown)
