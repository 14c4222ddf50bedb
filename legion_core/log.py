"""Logging through structlog: readable on a terminal, JSON with `LEGION_LOG_FORMAT=json`.

Every resolved secret value is registered with `redact()`; a processor scrubs them from
every event, so a value that slips into a message still never reaches the output.
The request id is bound with `structlog.contextvars` by the pipeline and gateway.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRETS: set[str] = set()
_lock = threading.Lock()
_configured = False
MASK = "***"


def redact(value: str | None) -> None:
    """Remember a secret value so it is masked wherever it would be printed."""
    if value and len(value) >= 4:
        with _lock:
            _SECRETS.add(value)


def scrub(text: str) -> str:
    """Replace every known secret value in `text`."""
    if not _SECRETS or not text:
        return text
    for s in sorted(_SECRETS, key=len, reverse=True):
        if s in text:
            text = text.replace(s, MASK)
    return text


def scrub_obj(obj: Any) -> Any:
    if isinstance(obj, str):
        return scrub(obj)
    if isinstance(obj, dict):
        return {k: scrub_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(scrub_obj(v) for v in obj)
    return obj


def _scrub_processor(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if not _SECRETS:
        return event_dict
    return {k: scrub_obj(v) if isinstance(v, str | dict | list | tuple) else
            (scrub(str(v)) if isinstance(v, BaseException) else v) for k, v in event_dict.items()}


def configure(level: str | None = None, fmt: str | None = None, stream: Any = None) -> None:
    """Configure structlog once (idempotent; call again to change level or format)."""
    global _configured
    fmt = (fmt or os.environ.get("LEGION_LOG_FORMAT") or "console").lower()
    level_name = (level or os.environ.get("LEGION_LOG_LEVEL") or "warning").upper()
    lvl = getattr(logging, level_name, logging.WARNING)
    out = stream or sys.stderr
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _scrub_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    _configured = True


def get_logger(name: str = "legion") -> Any:
    if not _configured:
        configure()
    return structlog.get_logger(name)
