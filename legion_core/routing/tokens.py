"""Token estimates without a tokenizer: about 4 characters per token, plus small fixed
overheads per message, tool and image. Used for the context-window filter, `tokens_*` rule
conditions and cost estimates, so it only needs to be the right order of magnitude."""

from __future__ import annotations

from typing import Any

import orjson

from legion_core.types import ChatRequest, ImageBlock, TextBlock, ThinkingBlock, ToolResultBlock, ToolUseBlock

CHARS_PER_TOKEN = 4
PER_MESSAGE = 4
PER_TOOL = 8
PER_IMAGE = 765  # a 512x512-ish image on common vision models


def _json_len(obj: Any) -> int:
    try:
        return len(orjson.dumps(obj))
    except TypeError:
        return len(str(obj))


def estimate_tokens(request: ChatRequest) -> int:
    """Input tokens of the whole request: system prompt, every message and tool schemas."""
    chars = len(request.system or "")
    extra = 0
    for m in request.messages:
        extra += PER_MESSAGE
        c = m.content
        if isinstance(c, str):
            chars += len(c)
            continue
        for b in c:
            if isinstance(b, TextBlock | ToolResultBlock):
                chars += len(b.text)
            elif isinstance(b, ToolUseBlock):
                chars += len(b.name) + _json_len(b.input)
            elif isinstance(b, ThinkingBlock):
                chars += len(b.thinking)
            elif isinstance(b, ImageBlock):
                extra += PER_IMAGE
    for tool in request.tools:
        extra += PER_TOOL
        chars += len(tool.name) + len(tool.description) + _json_len(tool.parameters)
    return extra + (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def estimate_text_tokens(texts: list[str]) -> int:
    return sum((len(t) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN for t in texts)


def user_text(request: ChatRequest) -> str:
    """The last user message's text (what complexity is judged on), fast for plain strings."""
    for m in reversed(request.messages):
        if m.role != "user":
            continue
        c = m.content
        if isinstance(c, str):
            return c
        return "".join(b.text for b in c if isinstance(b, TextBlock | ToolResultBlock))
    return ""
