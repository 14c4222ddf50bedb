"""Running the gateway: `serve()` for `legion serve`, `ServerThread` for tests and scripts.

Safe default: with auth disabled the gateway only binds to loopback unless the caller passes
`allow_unauthenticated=True` (`legion serve --allow-unauthenticated`).
"""

from __future__ import annotations

import asyncio
import importlib.util
import ipaddress
import socket
import threading
from typing import Any

from legion_core.errors import LegionError


class UnsafeBindError(LegionError):
    """Refusing to expose an unauthenticated gateway beyond this machine."""

    status = 500
    kind = "unsafe_bind"


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, auth_enabled: bool, allow_unauthenticated: bool) -> None:
    """Raise `UnsafeBindError` (explaining both ways out) for an open, unauthenticated bind."""
    if auth_enabled or allow_unauthenticated or is_loopback(host):
        return
    raise UnsafeBindError(
        f"refusing to listen on {host} with gateway auth disabled: anyone who can reach that "
        "address could spend your provider credits. Either enable auth (set llm.api.auth.enabled "
        'to true and llm.api.auth.api_keys to ["env://LEGION_API_KEY"], then export LEGION_API_KEY), '
        "or, on a network you trust, pass --allow-unauthenticated "
        "(serve(..., allow_unauthenticated=True)).")


def _have(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None


def uvicorn_options() -> dict[str, Any]:
    """The fastest server options installed here: httptools if present, no access log."""
    return {"http": "httptools" if _have("httptools") else "h11", "access_log": False,
            "lifespan": "on", "timeout_keep_alive": 30, "server_header": False}


def _as_legion(obj: Any) -> Any:
    from legion_core.lifecycle import Legion

    if obj is None:
        return Legion()
    if isinstance(obj, Legion):
        return obj
    if hasattr(obj, "pipeline") and hasattr(obj, "registry"):
        return obj
    return Legion(settings=obj)  # a Settings object or a settings dict


def serve(legion_or_settings: Any = None, host: str | None = None, port: int | None = None,
          allow_unauthenticated: bool = False, *, log_level: str = "warning") -> None:
    """Boot Legion and run the gateway until interrupted (blocking).

    :param legion_or_settings: a `Legion` (not yet started), a `Settings`, a settings dict, or
        None for the defaults from `LEGION_HOME`.
    :param host: bind address; default `llm.api.host` (127.0.0.1).
    :param port: port; default `llm.api.port` (4567).
    :param allow_unauthenticated: allow a non-loopback bind with auth disabled.
    :raises UnsafeBindError: for a non-loopback bind with auth disabled and no override.

    Uses uvloop when installed and httptools when installed; the access log is off. Once the
    server listens it tunes this process's garbage collector (`tune_gc`).
    """
    legion = _as_legion(legion_or_settings)
    loop_factory = None
    if _have("uvloop"):
        import uvloop

        loop_factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(_serve(legion, host, port, allow_unauthenticated, log_level))
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled; Legion is already shut down
        pass


async def _serve(legion: Any, host: str | None, port: int | None, allow_unauthenticated: bool,
                 log_level: str) -> None:
    import uvicorn

    from legion_core.server.app import create_app

    await legion.start()
    try:
        api = legion.settings.llm.api
        host = host or api.host
        port = port if port is not None else api.port
        check_bind(host, api.auth.enabled, allow_unauthenticated)
        app = create_app(legion, manage_lifecycle=False)
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level, **uvicorn_options())
        server = _QuietServer(config)
        task = asyncio.ensure_future(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started:
            tune_gc()
            _announce(host, port, api.auth.enabled, len(legion.registry.names()))
        await task
    finally:
        await legion.shutdown()


#: Collector thresholds for the gateway process (CPython's default is (700, 10, 10)).
GC_THRESHOLDS = (50_000, 20, 20)


def tune_gc() -> None:
    """Fewer cyclic-GC passes for a server that allocates many short-lived objects per request.

    Reference counting frees almost everything a request allocates; the cyclic collector only
    has to find cycles, yet by default it runs every 700 net allocations and, every 100 of those,
    walks every object in the process. Under load that was about a tenth of the gateway's CPU
    (bench/gateway_overhead.py). Objects alive after start-up (modules, settings, the catalog)
    are moved out of the collector's sight (`gc.freeze`), and passes are rarer. Only `serve()`
    does this: it owns its process; an embedding application keeps its own GC settings.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _quiet_server_class() -> type:
    import contextlib
    import signal
    import threading

    import uvicorn

    class QuietServer(uvicorn.Server):
        """uvicorn, minus re-raising the Ctrl-C it handled: `serve()` shuts Legion down itself,
        and a re-raised SIGINT would interrupt that shutdown with a traceback."""

        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def]
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            sigs = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in sigs}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return QuietServer


def _QuietServer(config: Any) -> Any:  # noqa: N802 - reads like the class it builds
    return _quiet_server_class()(config)


def _announce(host: str, port: int, auth: bool, providers: int) -> None:
    import sys

    base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    print(f"Legion gateway on {base}  (OpenAI SDKs: {base}/v1, Anthropic SDKs: {base}; "
          f"auth {'on' if auth else 'off'}; {providers} provider(s); Ctrl-C stops)", file=sys.stderr,
          flush=True)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ServerThread:
    """The gateway on 127.0.0.1:<free port> in a background thread (tests, docs, scripts).

    The app's lifespan boots Legion on the server's own loop. `url` is the base URL.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int | None = None) -> None:
        import uvicorn

        self.host = host
        self.port = port or free_port(host)
        opts = uvicorn_options()
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port, log_level="warning",
                                                    loop="asyncio", **opts))
        self.thread = threading.Thread(target=self.server.run, name="legion-gateway", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerThread:
        import time

        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the gateway failed to start (see the log above)")
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start in time")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
