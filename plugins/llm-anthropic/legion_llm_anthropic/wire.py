"""Kernel types <-> Anthropic Messages API JSON. Pure functions, no I/O."""

from __future__ import annotations

from typing import Any

from legion_core.errors import BadRequest
from legion_core.types import (
    ChatRequest,
    ChatResponse,
    ContentBlock,
    ImageBlock,
    Message,
    StopReason,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)

#: Anthropic stop reasons -> kernel stop reasons (`refusal` is raised as ContentPolicy instead).
STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "end_turn",
    "max_tokens": "max_tokens",
    "tool_use": "tool_use",
    "stop_sequence": "stop_sequence",
    "pause_turn": "end_turn",
    "model_context_window_exceeded": "max_tokens",
}

#: A `redacted_thinking` block travels as a ThinkingBlock whose signature carries this prefix
#: and the encrypted data, so that it is replayed as `redacted_thinking`, untouched.
REDACTED = "redacted_thinking:"

JSON_INSTRUCTION = "Respond with a single valid JSON value and nothing else."


def _image(block: ImageBlock) -> dict[str, Any]:
    if block.data:
        return {"type": "image", "source": {"type": "base64", "media_type": block.media_type,
                                            "data": block.data}}
    if block.url:
        if block.url.startswith("data:"):
            head, _, data = block.url.partition(",")
            media = head[5:].split(";")[0] or block.media_type
            return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
        return {"type": "image", "source": {"type": "url", "url": block.url}}
    raise BadRequest("image block needs `data` (base64) or `url`")


def block_to_wire(block: Any) -> dict[str, Any] | None:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text} if block.text else None
    if isinstance(block, ImageBlock):
        return _image(block)
    if isinstance(block, ToolUseBlock):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    if isinstance(block, ToolResultBlock):
        content: Any = block.content
        if isinstance(content, list):
            content = [b for b in (block_to_wire(x) for x in content) if b is not None]
        out: dict[str, Any] = {"type": "tool_result", "tool_use_id": block.tool_use_id, "content": content}
        if block.is_error:
            out["is_error"] = True
        return out
    if isinstance(block, ThinkingBlock):
        # The API only accepts thinking it signed itself; unsigned thinking (from another
        # provider) is dropped rather than rejected.
        if not block.signature:
            return None
        if block.signature.startswith(REDACTED):
            return {"type": "redacted_thinking", "data": block.signature[len(REDACTED):]}
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    raise BadRequest(f"unsupported content block {type(block).__name__}")


def _message_blocks(m: Message, i: int) -> list[dict[str, Any]]:
    if m.role == "tool":
        blocks = m.blocks()
        if not all(isinstance(b, ToolResultBlock) for b in blocks):
            raise BadRequest(f"messages[{i}]: a `tool` message must hold tool_result blocks "
                             "(with the tool_use_id they answer)")
    out = []
    for b in m.blocks():
        w = block_to_wire(b)
        if w is not None:
            out.append(w)
    return out


def request_to_wire(request: ChatRequest, model: str, *, max_tokens_default: int = 4096,
                    thinking_budget: int = 4096, thinking_mode: str = "enabled",
                    prompt_caching: bool = False) -> dict[str, Any]:
    """The `/v1/messages` body for `request`.

    System messages (and `request.system`) become the top-level `system`; `tool` messages become
    user turns of tool_result blocks; consecutive turns of one role are merged, as the API wants.
    `request.thinking` becomes `{"type": "enabled", "budget_tokens": ...}`, or `{"type": "adaptive"}`
    for models that decide their own budget (`thinking_mode`). `prompt_caching` marks the tools and
    the system prompt as cache breakpoints (`cache_control: ephemeral`).
    """
    system_parts: list[str] = [request.system] if request.system else []
    messages: list[dict[str, Any]] = []
    for i, m in enumerate(request.messages):
        if m.role == "system":
            system_parts.append(m.text)
            continue
        role = "assistant" if m.role == "assistant" else "user"
        blocks = _message_blocks(m, i)
        if not blocks:
            continue
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})
    if not messages:
        raise BadRequest("the request has no user or assistant message to send")
    if request.response_format:
        system_parts.append(JSON_INSTRUCTION)
        schema = request.response_format.get("schema") or (
            request.response_format.get("json_schema") or {}).get("schema")
        if schema:
            import json

            system_parts.append("The JSON must match this schema: " + json.dumps(schema))
    max_tokens = request.max_tokens or max_tokens_default
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens}
    if system_parts:
        body["system"] = "\n\n".join(system_parts)
        if prompt_caching:  # a cache breakpoint after the system prompt (tools come before it)
            body["system"] = [{"type": "text", "text": body["system"], "cache_control": {"type": "ephemeral"}}]
    if request.thinking and thinking_mode == "adaptive":
        body["thinking"] = {"type": "adaptive"}
    elif request.thinking:
        # Manual extended thinking: the budget (>= 1024) counts toward max_tokens, which must
        # exceed it, so the caller's max_tokens is kept as room for the answer on top.
        budget = max(1024, thinking_budget)
        if max_tokens <= budget:
            body["max_tokens"] = budget + max_tokens
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    elif request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None and not request.thinking:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.tools:
        # Tools stay declared even with tool_choice "none": the API rejects a conversation holding
        # tool_use/tool_result blocks when no tools are defined.
        body["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters}
                         for t in request.tools]
        if prompt_caching:
            body["tools"][-1]["cache_control"] = {"type": "ephemeral"}
        if request.tool_choice == "required":
            body["tool_choice"] = {"type": "any"}
        elif request.tool_choice == "none":
            body["tool_choice"] = {"type": "none"}
        elif request.tool_choice and request.tool_choice != "auto":
            body["tool_choice"] = {"type": "tool", "name": request.tool_choice}
    return body


def usage_from_wire(u: dict[str, Any] | None) -> Usage:
    u = u or {}
    return Usage(input_tokens=int(u.get("input_tokens") or 0) + int(u.get("cache_creation_input_tokens") or 0)
                 + int(u.get("cache_read_input_tokens") or 0),
                 output_tokens=int(u.get("output_tokens") or 0))


def block_from_wire(b: dict[str, Any]) -> ContentBlock | None:
    t = b.get("type")
    if t == "text":
        return TextBlock(text=b.get("text", ""))
    if t == "tool_use":
        return ToolUseBlock(id=b["id"], name=b["name"], input=b.get("input") or {})
    if t == "thinking":
        return ThinkingBlock(thinking=b.get("thinking", ""), signature=b.get("signature"))
    if t == "redacted_thinking":
        return ThinkingBlock(thinking="", signature=REDACTED + str(b.get("data", "")))
    return None


def response_from_wire(data: dict[str, Any], *, provider: str, tier: str) -> ChatResponse:
    blocks = [x for x in (block_from_wire(b) for b in data.get("content") or []) if x is not None]
    ident = {"id": data["id"]} if data.get("id") else {}
    return ChatResponse(
        **ident, model=data.get("model", ""), provider=provider, tier=tier,
        content=blocks, stop_reason=STOP_REASONS.get(data.get("stop_reason") or "end_turn", "end_turn"),
        usage=usage_from_wire(data.get("usage")),
    )
