"""The Python API: one process-wide Legion, sync and async.

    import legion_core as legion
    legion.start()
    r = legion.ask("What day comes after Tuesday?")
    print(r.text, r.provider, r.routing.reason)

The kernel runs on an event loop in a background thread, so the sync forms (`ask`, `chat`,
`embed`, `structured`) work from plain scripts, repeatedly, and even from inside someone else's
event loop; the async forms (`aask`, ...) hop onto that same loop. `start()` is implicit on first
use. Daemon mode (`llm.daemon.enabled` + `llm.daemon.url`) sends `ask()`/`chat()` to a running
gateway's `POST /api/llm/chat` instead, with in-process routing as the fallback when the gateway's
`GET /health` fails (cached for `llm.daemon.health_ttl_seconds`, 30 s).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from legion_core.errors import BadRequest, LegionError
from legion_core.hooktypes import QualityCheck
from legion_core.types import (
    ChatRequest,
    ChatResponse,
    EmbedRequest,
    EmbedResponse,
    Intent,
    Message,
)

if TYPE_CHECKING:
    from legion_core.lifecycle import Legion
    from legion_core.sessions import Session

T = TypeVar("T")

__all__ = ["start", "shutdown", "started", "get_legion", "ask", "chat", "embed", "structured", "session",
           "aask", "achat", "aembed", "astructured", "StructuredResult", "build_request"]


# ====================================================================== the background loop
class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="legion-api-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            coro.close()
            raise RuntimeError("the sync Legion API was called from Legion's own loop; await the async form")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        if asyncio.get_running_loop() is self.loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.loop.is_running():
            self.loop.close()


_lock = threading.RLock()
_runner: _LoopThread | None = None
_legion: Legion | None = None
_daemon: DaemonClient | None = None


def _run(coro: Coroutine[Any, Any, T]) -> T:
    _ensure()
    assert _runner is not None
    return _runner.run(coro)


async def _arun(coro: Coroutine[Any, Any, T]) -> T:
    if _runner is None:
        await asyncio.get_running_loop().run_in_executor(None, _ensure)
    assert _runner is not None
    return await _runner.arun(coro)


# ====================================================================== lifecycle
def start(home: str | Path | None = None, settings: dict[str, Any] | None = None, *,
          plugins: Any = None, load_entry_points: bool = True) -> Legion:
    """Boot the process-wide Legion (idempotent: a second call returns the running one)."""
    global _runner, _legion, _daemon
    with _lock:
        if _legion is not None and _legion.started():
            return _legion
        from legion_core.lifecycle import Legion

        if _runner is None:
            _runner = _LoopThread()
            _register_atexit()
        lg = Legion(home=home, settings=settings, plugins=plugins, load_entry_points=load_entry_points)
        try:
            _runner.run(lg.start())
        except BaseException:
            _runner.stop()
            _runner = None
            raise
        _legion = lg
        d = lg.settings.llm.daemon
        _daemon = DaemonClient(d.url, d.health_ttl_seconds, api_key=_daemon_key(lg)) \
            if d.enabled and d.url else None
        return lg


_atexit_registered = False


def _register_atexit() -> None:
    """Flush the audit log, cache and sessions when a script ends without calling shutdown()."""
    global _atexit_registered
    if not _atexit_registered:
        import atexit

        atexit.register(shutdown)
        _atexit_registered = True


def _ensure() -> Legion:
    lg = _legion
    if lg is not None and lg.started():
        return lg
    if _runner is not None and threading.current_thread() is _runner.thread:
        # e.g. an extension calling the API from its start(): start() holds the lock, waiting on us
        raise RuntimeError("Legion is still starting: use the `legion` object passed to your "
                           "extension (legion.pipeline.chat) instead of the process-wide API")
    return start()


def started() -> bool:
    return _legion is not None and _legion.started()


def get_legion() -> Legion:
    """The running kernel (started on first use)."""
    return _ensure()


def shutdown() -> None:
    """Stop the process-wide Legion and its loop (flushes the audit log and the cache)."""
    global _runner, _legion, _daemon
    with _lock:
        lg, runner, daemon = _legion, _runner, _daemon
        _legion = _runner = _daemon = None
        if runner is None:
            return
        try:
            if daemon is not None:
                runner.run(daemon.aclose())
            if lg is not None:
                runner.run(lg.shutdown())
        finally:
            runner.stop()


# ====================================================================== requests
_INTENT_KEYS = ("privacy", "capability", "cost")


def build_request(message: str | Message | None = None, messages: list[Any] | None = None,
                  **kw: Any) -> ChatRequest:
    """A ChatRequest from friendly arguments: `message="..."` or `messages=[...]` (dicts or
    Messages), routing fields (`tier=`, `provider=`, `model=`, `escalate=`...), the intent
    either as `intent={...}` or as `privacy=`/`capability=`/`cost=` shortcuts, and `tools=True`
    for every tool plugins registered (`legion_register_tools`)."""
    if (message is None) == (messages is None):
        raise BadRequest("pass exactly one of message='...' or messages=[...]")
    if messages is not None:
        try:
            msgs = [m if isinstance(m, Message) else Message.model_validate(m) for m in messages]
        except ValidationError as e:
            raise BadRequest(f"messages: {_first_error(e)}") from None
    else:
        msgs = [message if isinstance(message, Message) else Message(role="user", content=str(message))]
    intent = dict(kw.pop("intent", None) or {}) if not isinstance(kw.get("intent"), Intent) else \
        kw.pop("intent").model_dump()
    for k in _INTENT_KEYS:
        if k in kw:
            intent[k] = kw.pop(k)
    if kw.get("tools") is True:  # every tool the installed plugins offer
        kw["tools"] = list(get_legion().pipeline.tools.values())
    try:
        return ChatRequest(messages=msgs, intent=Intent.model_validate(intent), **kw)
    except ValidationError as e:
        raise BadRequest(f"invalid argument: {_first_error(e)}") from None


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err.get("loc", ()))
    if err.get("type") == "extra_forbidden":
        return f"unknown argument {loc!r}"
    return f"{loc}: {err.get('msg')}"


async def _achat(req: ChatRequest, quality_check: QualityCheck | None) -> ChatResponse:
    lg = _ensure()
    if _daemon is not None and quality_check is None:
        resp = await _daemon.chat(req)
        if resp is not None:
            return resp
    return await lg.pipeline.chat(req, quality_check=quality_check)


def chat(message: str | Message | None = None, messages: list[Any] | None = None, *,
         quality_check: QualityCheck | None = None, **kw: Any) -> ChatResponse:
    """Answer one message (or a whole conversation). `kw` are ChatRequest fields."""
    req = build_request(message, messages, **kw)
    return _run(_achat(req, quality_check))


def ask(prompt: str, *, quality_check: QualityCheck | None = None, **kw: Any) -> ChatResponse:
    """Ask one question; the response carries its routing decision (`.routing`)."""
    return chat(message=prompt, quality_check=quality_check, **kw)


async def achat(message: str | Message | None = None, messages: list[Any] | None = None, *,
                quality_check: QualityCheck | None = None, **kw: Any) -> ChatResponse:
    req = build_request(message, messages, **kw)
    return await _arun(_achat(req, quality_check))


async def aask(prompt: str, *, quality_check: QualityCheck | None = None, **kw: Any) -> ChatResponse:
    return await achat(message=prompt, quality_check=quality_check, **kw)


def _embed_request(texts: str | list[str], kw: dict[str, Any]) -> EmbedRequest:
    items = [texts] if isinstance(texts, str) else list(texts)
    try:
        return EmbedRequest(input=items, **kw)
    except ValidationError as e:
        raise BadRequest(f"invalid argument: {_first_error(e)}") from None


async def _aembed(req: EmbedRequest) -> EmbedResponse:
    return await _ensure().pipeline.embed(req)


def embed(texts: str | list[str], **kw: Any) -> EmbedResponse:
    """Embeddings, routed to embedding-capable models with a fallback chain."""
    return _run(_aembed(_embed_request(texts, kw)))


async def aembed(texts: str | list[str], **kw: Any) -> EmbedResponse:
    return await _arun(_aembed(_embed_request(texts, kw)))


# ====================================================================== structured
@dataclass
class StructuredResult:
    """`data` is the parsed, schema-valid value; `response` the full answer (routing, cost...)."""

    data: Any
    response: ChatResponse

    @property
    def routing(self) -> Any:
        return self.response.routing


async def _astructured(req: ChatRequest, quality_check: QualityCheck | None) -> StructuredResult:
    from legion_core.pipeline import structured as st

    resp = await _ensure().pipeline.chat(req, quality_check=quality_check)
    value, errors = st.check(req, resp)
    if errors:
        raise st.StructuredOutputInvalid("the answer does not match the JSON schema: " + "; ".join(errors[:5]),
                                         errors=errors, text=resp.text)
    return StructuredResult(value, resp)


def _structured_request(prompt: str, schema: dict[str, Any], kw: dict[str, Any]) -> ChatRequest:
    if not isinstance(schema, dict):
        raise BadRequest(f"schema must be a JSON schema dict, got {type(schema).__name__}")
    return build_request(prompt, None, response_format={"type": "json_schema", "schema": schema}, **kw)


def structured(prompt: str, schema: dict[str, Any], *, quality_check: QualityCheck | None = None,
               **kw: Any) -> StructuredResult:
    """An answer that matches `schema` (native JSON mode or a prompt fallback; one repair)."""
    return _run(_astructured(_structured_request(prompt, schema, kw), quality_check))


async def astructured(prompt: str, schema: dict[str, Any], *, quality_check: QualityCheck | None = None,
                      **kw: Any) -> StructuredResult:
    return await _arun(_astructured(_structured_request(prompt, schema, kw), quality_check))


# ====================================================================== sessions
def session(instructions: str | None = None, id: str | None = None) -> Session:
    """A conversation that keeps its history; pass `id=` to resume one (also after a restart)."""
    from legion_core.sessions import open_session

    return open_session(_ensure(), instructions=instructions, id=id)


# ====================================================================== daemon mode
def _daemon_key(lg: Any) -> str | None:
    """`llm.daemon.api_key`, resolved like any credential (and registered for redaction)."""
    ref = lg.settings.llm.daemon.api_key
    if not ref:
        return None
    from legion_core.log import redact
    from legion_core.secrets import resolve, schemes_for

    key = resolve(ref, schemes_for(lg.plugins))
    redact(key)
    return key



class DaemonClient:
    """Talks to a running gateway. Its health is cached for `ttl` seconds; a failed call marks it
    down for the same time, so `ask()` falls back to in-process routing without retrying each time."""

    def __init__(self, url: str, ttl: float = 30.0, api_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.ttl = ttl
        self._headers = {"content-type": "application/json"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._ok: bool | None = None
        self._checked = 0.0
        self._client: Any = None
        self.health_checks = 0

    def _http(self) -> Any:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=2.0))
        return self._client

    async def healthy(self) -> bool:
        now = time.monotonic()
        if self._ok is not None and now - self._checked < self.ttl:
            return self._ok
        self.health_checks += 1
        try:
            r = await self._http().get(f"{self.url}/health", timeout=2.0)
            self._ok = r.status_code == 200
        except Exception:  # noqa: BLE001 - any transport failure means "down"
            self._ok = False
        self._checked = now
        return self._ok

    def mark_down(self) -> None:
        self._ok, self._checked = False, time.monotonic()

    async def chat(self, req: ChatRequest) -> ChatResponse | None:
        """The gateway's answer, or None when the gateway is unavailable (caller falls back)."""
        if not await self.healthy():
            return None
        import httpx

        try:
            r = await self._http().post(f"{self.url}/api/llm/chat",
                                        content=req.model_dump_json(exclude_none=True),
                                        headers=self._headers)
        except httpx.TransportError:
            self.mark_down()
            return None
        if r.status_code == 200:
            return ChatResponse.model_validate_json(r.content)
        if r.status_code in (502, 503, 504) and not _is_legion_error(r):
            self.mark_down()
            return None
        raise _error_from(r)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _is_legion_error(r: Any) -> bool:
    try:
        return isinstance(r.json().get("error"), dict)
    except Exception:  # noqa: BLE001
        return False


def _error_from(r: Any) -> LegionError:
    msg, kind = f"gateway answered {r.status_code}", "internal"
    try:
        err = r.json().get("error") or {}
        msg = err.get("message") or msg
        kind = err.get("type") or err.get("kind") or kind
    except Exception:  # noqa: BLE001
        pass
    from legion_core import errors as E

    cls = {"refused": E.RequestRefused, "invalid_request": E.BadRequest, "bad_request": E.BadRequest,
           "no_provider": E.NoProviderAvailable, "escalation_exhausted": E.EscalationExhausted,
           "context_overflow": E.ContextOverflow,
           "authentication": E.AuthenticationFailed}.get(kind)
    e = cls(msg) if cls is not None else LegionError(msg)
    e.status = r.status_code
    e.kind = kind
    return e
