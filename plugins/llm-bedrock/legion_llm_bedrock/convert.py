"""Kernel types ↔ the Converse API's JSON.

Converse wants: system prompts in a top-level `system` list; strictly alternating `user` /
`assistant` turns starting with `user`; tool results inside a *user* turn; images as base64
bytes (no URLs); and a `toolConfig` whenever the history holds tool blocks.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from legion_core.errors import ProviderBadRequest
from legion_core.types import (
    ChatRequest,
    ContentBlock,
    ImageBlock,
    StopReason,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)

IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                 "image/webp": "webp"}
STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "end_turn", "tool_use": "tool_use", "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence", "model_context_window_exceeded": "max_tokens",
}
#: Stop reasons that mean the answer was withheld on content grounds.
REFUSALS = frozenset({"guardrail_intervened", "content_filtered"})


def _image(b: ImageBlock, provider: str) -> dict[str, Any]:
    fmt = IMAGE_FORMATS.get(b.media_type.lower())
    if fmt is None:
        raise ProviderBadRequest(f"{provider}: Bedrock accepts png, jpeg, gif or webp images, not {b.media_type}",
                                 provider=provider)
    if not b.data:
        raise ProviderBadRequest(f"{provider}: Bedrock needs image bytes (base64 `data`); image URLs "
                                 "are not supported", provider=provider)
    try:
        base64.b64decode(b.data, validate=True)
    except (binascii.Error, ValueError):
        raise ProviderBadRequest(f"{provider}: image data is not valid base64", provider=provider) from None
    return {"image": {"format": fmt, "source": {"bytes": b.data}}}


def _block(b: Any, role: str, provider: str) -> dict[str, Any] | None:
    if isinstance(b, TextBlock):
        return {"text": b.text} if b.text else None
    if isinstance(b, ImageBlock):
        return _image(b, provider)
    if isinstance(b, ToolUseBlock):
        return {"toolUse": {"toolUseId": b.id, "name": b.name, "input": b.input}}
    if isinstance(b, ToolResultBlock):
        if isinstance(b.content, str):
            content: list[dict[str, Any]] = [{"text": b.content or "(empty)"}]
        else:
            content = [{"text": x.text} if isinstance(x, TextBlock) else _image(x, provider) for x in b.content]
        return {"toolResult": {"toolUseId": b.tool_use_id, "content": content or [{"text": "(empty)"}],
                               "status": "error" if b.is_error else "success"}}
    if isinstance(b, ThinkingBlock):
        if role != "assistant" or not b.signature:
            return None  # unsigned reasoning cannot be replayed; the model does not need it
        return {"reasoningContent": {"reasoningText": {"text": b.thinking, "signature": b.signature}}}
    return None


def to_converse(request: ChatRequest, *, provider: str, default_max_tokens: int,
                thinking_budget: int) -> dict[str, Any]:
    system: list[dict[str, Any]] = []
    if request.system:
        system.append({"text": request.system})
    turns: list[dict[str, Any]] = []
    has_tool_blocks = False
    for m in request.messages:
        if m.role == "system":
            if m.text:
                system.append({"text": m.text})
            continue
        role = "assistant" if m.role == "assistant" else "user"  # tool results ride in a user turn
        blocks: list[dict[str, Any]] = []
        for b in m.blocks():
            if m.role == "tool" and isinstance(b, TextBlock):
                raise ProviderBadRequest(f"{provider}: a tool message must carry tool_result blocks "
                                         "(with tool_use_id)", provider=provider)
            out = _block(b, role, provider)
            if out is not None:
                has_tool_blocks |= "toolUse" in out or "toolResult" in out
                blocks.append(out)
        if role == "assistant":  # Bedrock wants reasoning first in an assistant turn
            blocks.sort(key=lambda x: "reasoningContent" not in x)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)  # Converse requires alternating roles
        else:
            turns.append({"role": role, "content": blocks})
    if not turns or turns[0]["role"] != "user":
        raise ProviderBadRequest(f"{provider}: a Bedrock conversation must start with a user message",
                                 provider=provider)
    body: dict[str, Any] = {"messages": turns}
    if system:
        body["system"] = system
    inf: dict[str, Any] = {"maxTokens": request.max_tokens or default_max_tokens}
    if request.temperature is not None and not request.thinking:
        inf["temperature"] = request.temperature
    if request.top_p is not None and not request.thinking:
        inf["topP"] = request.top_p
    if request.stop:
        inf["stopSequences"] = request.stop[:4]
    if request.thinking:
        # Claude on Bedrock: extended thinking through the model-specific fields; the output
        # budget must exceed the thinking budget.
        body["additionalModelRequestFields"] = {"thinking": {"type": "enabled", "budget_tokens": thinking_budget}}
        inf["maxTokens"] = max(inf["maxTokens"], 0) + thinking_budget
    body["inferenceConfig"] = inf
    if request.tools:
        tools = [{"toolSpec": {"name": t.name, "description": t.description or t.name,
                               "inputSchema": {"json": t.parameters}}} for t in request.tools]
        tc: dict[str, Any] = {"tools": tools}
        choice = request.tool_choice
        if choice == "required":
            tc["toolChoice"] = {"any": {}}
        elif choice and choice not in ("auto", "none"):
            tc["toolChoice"] = {"tool": {"name": choice}}
        elif choice == "auto":
            tc["toolChoice"] = {"auto": {}}
        body["toolConfig"] = tc
    elif has_tool_blocks:
        raise ProviderBadRequest(f"{provider}: the history holds tool calls, so Bedrock needs the tool "
                                 "definitions too (pass `tools`)", provider=provider)
    return body


def from_converse(data: dict[str, Any]) -> tuple[list[ContentBlock], str]:
    """Content blocks and the raw stopReason of a Converse response."""
    msg = ((data.get("output") or {}).get("message")) or {}
    content: list[Any] = []
    for b in msg.get("content") or []:
        if "text" in b:
            content.append(TextBlock(text=b["text"]))
        elif "toolUse" in b:
            tu = b["toolUse"]
            content.append(ToolUseBlock(id=tu.get("toolUseId", ""), name=tu.get("name", ""),
                                        input=tu.get("input") if isinstance(tu.get("input"), dict) else {}))
        elif "reasoningContent" in b:
            rt = (b["reasoningContent"] or {}).get("reasoningText") or {}
            if rt.get("text"):
                content.append(ThinkingBlock(thinking=rt["text"], signature=rt.get("signature")))
    return content, str(data.get("stopReason") or "end_turn")
