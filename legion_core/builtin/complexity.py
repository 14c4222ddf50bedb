"""The built-in complexity signal: `legion_request_signals` → {"complexity": 0..1}.

Registered `trylast`, so any plugin that reports "complexity" replaces it (the first value
reported for a key wins). The estimator is `legion_core.routing.estimate_complexity`.
"""

from __future__ import annotations

from legion_core.hookspecs import hookimpl
from legion_core.routing.complexity import estimate_complexity
from legion_core.routing.tokens import user_text
from legion_core.types import ChatRequest


@hookimpl(trylast=True)
def legion_request_signals(request: ChatRequest) -> dict[str, float]:
    return {"complexity": estimate_complexity(user_text(request))}
