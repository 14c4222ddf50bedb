"""Built-in response quality checks, used by escalation (`llm.routing.escalation.checks`).

Each check is `check(request, response) -> list[str]` (failure names; empty = passed) and is
registered through the same `legion_quality_checks` hook a plugin would use.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from legion_core.hookspecs import hookimpl
from legion_core.types import ChatRequest, ChatResponse


def empty(request: ChatRequest, response: ChatResponse) -> list[str]:
    """No text and no tool call."""
    if response.text.strip() or response.tool_calls:
        return []
    return ["empty"]


def too_short(request: ChatRequest, response: ChatResponse, min_length: int = 2) -> list[str]:
    """Fewer than `min_length` non-blank characters (answers that are only tool calls pass)."""
    if response.tool_calls or not response.text.strip():
        return []  # empty is `empty`'s job
    return ["too_short"] if len(response.text.strip()) < min_length else []


_WORD = re.compile(r"\w+", re.U)


def repetition(request: ChatRequest, response: ChatResponse) -> list[str]:
    """A degenerate loop: the same line 3+ times making up most of the answer, or one 4-word
    sequence repeated so often it covers over half of the words."""
    text = response.text
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) >= 3:
        (line, n), = Counter(lines).most_common(1)
        if n >= 3 and n * len(line) > 0.5 * sum(len(x) for x in lines):
            return ["repetition"]
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) >= 16:
        grams = Counter(tuple(words[i:i + 4]) for i in range(len(words) - 3))
        (_, n), = grams.most_common(1)
        if n >= 4 and n * 4 > 0.5 * len(words):
            return ["repetition"]
    return []


def invalid_json(request: ChatRequest, response: ChatResponse) -> list[str]:
    """When JSON was asked for (response_format), the answer must parse and match the schema."""
    from legion_core.pipeline import structured

    if not structured.wants_json(request) or response.tool_calls:
        return []
    _, errors = structured.check(request, response)
    return ["invalid_json"] if errors else []


BUILTIN_CHECKS: dict[str, Callable[..., list[str]]] = {
    "empty": empty, "too_short": too_short, "repetition": repetition, "invalid_json": invalid_json,
}


@hookimpl
def legion_quality_checks(register: Callable[[str, Callable[..., Any]], None]) -> None:
    for name, fn in BUILTIN_CHECKS.items():
        register(name, fn)
