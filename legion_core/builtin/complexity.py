"""The built-in complexity signal: `legion_request_signals` → {"complexity": <0..1, lazily>}.

Registered `trylast`, so any plugin that reports "complexity" replaces it (the first value
reported for a key wins). The estimator is `legion_core.routing.estimate_complexity`. The value
is lazy (a callable): the router calls it only when the complexity can change the decision, so
a request naming a model on one tier is not estimated.
"""

from __future__ import annotations

from collections.abc import Callable

from legion_core.hookspecs import hookimpl
from legion_core.routing.complexity import estimate_complexity
from legion_core.routing.tokens import user_text
from legion_core.types import ChatRequest


@hookimpl(trylast=True)
def legion_request_signals(request: ChatRequest) -> dict[str, Callable[[], float]]:
    return {"complexity": lambda: estimate_complexity(user_text(request))}
