"""Legion: a small LLM-routing kernel; providers, guards and signals are plugins.

Only `hookimpl` is needed to write a plugin. The Python API (`start`, `ask`, `chat`, `embed`,
`structured`, `session`, and their async forms) is imported lazily so that `import legion_core`
stays cheap for plugins and the CLI.
"""

from __future__ import annotations

from typing import Any

from legion_core.hookspecs import hookimpl

__version__ = "0.1.0"

_API = {
    "start", "shutdown", "started", "ask", "chat", "embed", "structured", "session",
    "aask", "achat", "aembed", "astructured", "get_legion",
}

__all__ = ["hookimpl", "__version__", *sorted(_API)]


def __getattr__(name: str) -> Any:
    if name in _API:
        from legion_core import api

        return getattr(api, name)
    raise AttributeError(f"module 'legion_core' has no attribute {name!r}")
