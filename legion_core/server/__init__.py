"""The gateway: OpenAI- and Anthropic-compatible HTTP API, native API, auth and metrics.

- `create_app(legion)` → the ASGI app (Starlette);
- `serve(legion_or_settings, host, port, allow_unauthenticated)` → boots Legion and runs it
  under uvicorn (what `legion serve` calls);
- `ServerThread(app)` → the same on a loopback port in a background thread (tests, scripts).

See docs/gateway.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve", "check_bind", "ServerThread", "UnsafeBindError"]


def __getattr__(name: str) -> Any:  # lazy: importing the package must not pull Starlette in
    if name == "create_app":
        from legion_core.server.app import create_app

        return create_app
    if name in ("serve", "check_bind", "ServerThread", "UnsafeBindError"):
        from legion_core.server import run

        return getattr(run, name)
    raise AttributeError(name)
